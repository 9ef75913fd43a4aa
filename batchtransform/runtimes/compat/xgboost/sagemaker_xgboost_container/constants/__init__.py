"""``sagemaker_xgboost_container.constants``."""
