"""The HTTP API: SageMaker's JSON 1.1 protocol (``X-Amz-Target``), so boto3 works as is,
and CloudWatch Logs' beside it on the same port, for the jobs' logs.

Start a server, then point any SageMaker or Logs client at its ``endpoint_url``::

    from batchtransform.api import ApiServer, ServerConfig

    with ApiServer(ServerConfig(port=0, credentials={"AKID": "secret"})) as server:
        boto3.client("sagemaker", endpoint_url=server.endpoint_url, ...)
"""

from batchtransform.api.auth import Verifier
from batchtransform.api.protocol import ApiError
from batchtransform.api.server import ApiServer, Router, ServerConfig, credentials_from

__all__ = ["ApiError", "ApiServer", "Router", "ServerConfig", "Verifier", "credentials_from"]
