"""A stand-in for ``sagemaker_containers`` (sagemaker-containers 2.8.6), for handler scripts.

SageMaker's scikit-learn and XGBoost images ship this library and scripts import from it,
mostly ``sagemaker_containers.beta.framework`` (``worker.Response``, ``encoders``,
``content_types``, ``env``). The published package pins Flask 1.1.1 and old gevent, so it
cannot be installed beside the service; this package provides what handler scripts use,
with the original's names and behaviour. The training side (``TrainingEnv``, ``trainer``,
``mpi``, ``entry_point``, the Flask ``Worker`` and gunicorn ``server``) is not provided.

It is importable only inside the runtimes of those images, and only when the original is
not installed (see ``batchtransform.runtimes.compat``).
"""
