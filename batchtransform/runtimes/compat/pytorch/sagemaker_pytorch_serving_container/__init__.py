"""A stand-in for ``sagemaker_pytorch_serving_container``, the PyTorch image's library
(sagemaker-pytorch-inference 2.0): its ``default_pytorch_inference_handler``.

The published package also installs its own copy of ``sagemaker_inference`` over the real
one, so it is not installed; this module builds on the real ``sagemaker_inference``, as the
original does. The TorchServe launcher (``serving``, ``torchserve``, ``handler_service``) is
not provided: the runtime serves requests itself. Importable only inside the PyTorch image's
runtime, and only when the original is not installed (see ``batchtransform.runtimes.compat``).
"""
