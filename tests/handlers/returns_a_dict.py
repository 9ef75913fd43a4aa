"""A scikit-learn script that answers with a Python object and its content type, leaving
the encoding to the serving stack (as scripts do that fall back when
sagemaker_containers is missing)."""

import os

import joblib

try:
    from sagemaker_containers.beta.framework import worker
except ImportError:  # outside SageMaker's images
    worker = None


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def output_fn(prediction, accept):
    return {"predictions": prediction.tolist()}, accept
