"""``sagemaker_containers.beta``, as in the original: the home of ``framework``."""
