"""A scikit-learn classifier served through the SageMaker inference toolkit's own decoder,
encoder and errors, as handlers written for the toolkit's images do."""

import os

import joblib
import numpy as np
from sagemaker_inference import content_types, decoder, encoder, errors
from sagemaker_inference.default_inference_handler import DefaultInferenceHandler


class ClassifierHandler(DefaultInferenceHandler):
    """Default input and output handling from the toolkit; probabilities as predictions."""

    def default_model_fn(self, model_dir, context=None):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def default_predict_fn(self, data, model, context=None):
        rows = np.atleast_2d(data)
        if rows.shape[1] != model.n_features_in_:
            raise errors.GenericInferenceToolkitError(
                400, "expected {} features, got {}".format(model.n_features_in_, rows.shape[1])
            )
        return model.predict_proba(rows)


_handler = ClassifierHandler()


def model_fn(model_dir):
    return _handler.default_model_fn(model_dir)


def input_fn(input_data, content_type):
    if content_type not in (content_types.CSV, content_types.JSON, content_types.NPY):
        raise errors.UnsupportedFormatError(content_type)
    return decoder.decode(input_data, content_type)


def predict_fn(data, model):
    return _handler.default_predict_fn(data, model)


def output_fn(prediction, accept):
    return encoder.encode(prediction, accept), accept
