"""The CloudWatch Logs API beside the SageMaker one: the same port, store and credentials.

Requests carry ``X-Amz-Target: Logs_20140328.<Operation>`` and are signed for the ``logs``
service, so a boto3 ``logs`` client (and the SageMaker SDK's log follower, and ``aws
logs``) reach it with ``endpoint_url`` or ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``. The
operations themselves, and the files they read, are the service's
(``Service.call_logs``, ``batchtransform.cloudwatch_logs``); errors carry the Logs API's
own codes (``ResourceNotFoundException``, ``InvalidParameterException``).
"""

from __future__ import annotations

from batchtransform.api.auth import LOGS_SIGNING_NAME
from batchtransform.api.protocol import LOGS_TARGET_PREFIX, JsonApi
from batchtransform.service import LOGS_OPERATIONS, Service

__all__ = ["logs_api"]


def logs_api(service: Service) -> JsonApi:
    """The Logs API over ``service``."""
    return JsonApi(LOGS_TARGET_PREFIX, LOGS_SIGNING_NAME, LOGS_OPERATIONS, service.call_logs)
