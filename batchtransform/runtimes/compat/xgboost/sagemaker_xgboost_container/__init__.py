"""A stand-in for ``sagemaker_xgboost_container``, the library of SageMaker's XGBoost image.

The image's library is not published to the registry, and XGBoost scripts import its
``encoder`` (``libsvm_to_dmatrix``, ``csv_to_dmatrix``, ``decode``, ...) in their
``input_fn``. This package provides ``encoder``, ``constants.xgb_content_types`` and the
content-type helper of ``data_utils`` with the original's names and behaviour; the
training, distributed and algorithm-mode modules are not provided (the runtime has its own
algorithm mode). Importable only inside the XGBoost image's runtime, and only when the
original is not installed (see ``batchtransform.runtimes.compat``).
"""
