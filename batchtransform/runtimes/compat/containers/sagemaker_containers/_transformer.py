"""sagemaker-containers' ``transformer`` (``beta.framework.transformer``): the default
handler functions the scikit-learn image falls back on.

``default_input_fn`` decodes with ``encoders.decode``, ``default_output_fn`` answers a
``worker.Response`` of ``encoders.encode``; ``default_model_fn`` and ``default_predict_fn``
raise NotImplementedError asking for the user's own, as in the original. The
``Transformer`` class that drove them inside the Flask worker is not provided: the runtime
runs the handler chain itself.
"""

from __future__ import annotations

from typing import Any

from . import _encoders, _worker

__all__ = ["default_input_fn", "default_model_fn", "default_output_fn", "default_predict_fn"]


def default_model_fn(model_dir: str) -> Any:
    """There is no default: the user module must define ``model_fn``."""
    raise NotImplementedError(
        "Please provide a model_fn implementation.\n"
        "See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk"
    )


def default_input_fn(input_data: Any, content_type: str) -> Any:
    """The request body as a numpy array (``encoders.decode``)."""
    return _encoders.decode(input_data, content_type)


def default_predict_fn(data: Any, model: Any) -> Any:
    """There is no default: the user module must define ``predict_fn``."""
    raise NotImplementedError(
        "Please provide a predict_fn implementation.\n"
        "See documentation for predict_fn at https://github.com/aws/sagemaker-python-sdk"
    )


def default_output_fn(prediction: Any, accept: str) -> _worker.Response:
    """The prediction encoded for ``accept``, as a Response of that mimetype."""
    return _worker.Response(response=_encoders.encode(prediction, accept), mimetype=accept)
