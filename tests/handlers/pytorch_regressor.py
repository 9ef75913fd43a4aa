"""A small PyTorch regressor served by SageMaker's PyTorch image: the weights as a state
dict, decoding and encoding by the image's default handler."""

import os

import torch
from sagemaker_pytorch_serving_container.default_pytorch_inference_handler import (
    DefaultPytorchInferenceHandler,
)

_defaults = DefaultPytorchInferenceHandler()


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(4, 8)
        self.out = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def model_fn(model_dir):
    model = Regressor()
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        model.load_state_dict(torch.load(f))
    return model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))


def input_fn(request_body, request_content_type):
    return _defaults.default_input_fn(request_body, request_content_type)


def predict_fn(input_data, model):
    return _defaults.default_predict_fn(input_data, model)


def output_fn(prediction, accept):
    return _defaults.default_output_fn(prediction, accept), accept
