"""Handler for the demo model, written as for a SageMaker scikit-learn container."""

import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    # the probability of the "benign" class, one per input row
    return model.predict_proba(data.reshape(-1, model.n_features_in_))[:, 1]
