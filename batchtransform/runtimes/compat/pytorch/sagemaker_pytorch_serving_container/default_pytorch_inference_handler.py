"""``DefaultPytorchInferenceHandler``: the PyTorch image's default handlers, which scripts
subclass or call (``default_input_fn`` and friends).

As in the original: ``default_model_fn`` loads TorchScript ``model.pt`` (else the one
``.pt``/``.pth`` file) onto the GPU when there is one; ``default_input_fn`` decodes with
``sagemaker_inference.decoder`` into a float tensor (CSV and JSON) or a tensor of the array's
type (NPY); ``default_predict_fn`` runs the model in eval mode without gradients;
``default_output_fn`` turns a tensor into a list and encodes it with
``sagemaker_inference.encoder`` for the first supported Accept type, as bytes for CSV.
Difference: Elastic Inference (``SAGEMAKER_INFERENCE_ACCELERATOR_PRESENT``), which AWS has
retired, is not supported.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from sagemaker_inference import (
    content_types,
    decoder,
    default_inference_handler,
    encoder,
    errors,
    utils,
)

__all__ = ["DEFAULT_MODEL_FILENAME", "DefaultPytorchInferenceHandler", "ModelLoadError"]

DEFAULT_MODEL_FILENAME = "model.pt"


class ModelLoadError(Exception):
    """The model file is not a TorchScript model."""


def _device() -> Any:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class DefaultPytorchInferenceHandler(default_inference_handler.DefaultInferenceHandler):  # type: ignore[misc]
    """The PyTorch image's default model_fn, input_fn, predict_fn and output_fn."""

    VALID_CONTENT_TYPES = (content_types.JSON, content_types.NPY)

    @staticmethod
    def _is_model_file(filename: str) -> bool:
        return os.path.isfile(filename) and os.path.splitext(filename)[1] in (".pt", ".pth")

    def default_model_fn(self, model_dir: str) -> Any:
        """The TorchScript model of the model folder, on the GPU if there is one."""
        model_path = os.path.join(model_dir, DEFAULT_MODEL_FILENAME)
        if not os.path.exists(model_path):
            found = [
                name
                for name in os.listdir(model_dir)
                if self._is_model_file(os.path.join(model_dir, name))
            ]
            if len(found) != 1:
                raise ValueError(
                    f"Exactly one .pth or .pt file is required for PyTorch models: {found}"
                )
            model_path = os.path.join(model_dir, found[0])
        device = _device()
        load: Any = torch.jit.load  # untyped in torch's stubs
        try:
            model = load(model_path, map_location=device)
        except RuntimeError as exc:
            raise ModelLoadError(
                f"Failed to load {model_path}. Please ensure model is saved using torchscript."
            ) from exc
        return model.to(device)

    def default_input_fn(self, input_data: Any, content_type: str) -> Any:
        """The body as a tensor on the model's device."""
        array = decoder.decode(input_data, content_type)
        tensor: Any
        if content_type in content_types.UTF8_TYPES:
            tensor = torch.FloatTensor(array)
        else:
            tensor = torch.from_numpy(array)
        return tensor.to(_device())

    def default_predict_fn(self, data: Any, model: Any) -> Any:
        """``model(data)`` in eval mode, without gradients."""
        device = _device()
        with torch.no_grad():
            model = model.to(device)
            model.eval()
            return model(data.to(device))

    def default_output_fn(self, prediction: Any, accept: str) -> Any:
        """The prediction in the first Accept type the toolkit's encoder writes."""
        if type(prediction) is torch.Tensor:
            prediction = prediction.detach().cpu().numpy().tolist()
        for content_type in utils.parse_accept(accept):
            if content_type in encoder.SUPPORTED_CONTENT_TYPES:
                encoded = encoder.encode(prediction, content_type)
                if content_type == content_types.CSV:
                    encoded = encoded.encode("utf-8")
                return encoded
        raise errors.UnsupportedFormatError(accept)
