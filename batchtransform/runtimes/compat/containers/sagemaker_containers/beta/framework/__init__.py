"""``sagemaker_containers.beta.framework``: the modules handler scripts import, under the
names the original gives them (``content_types``, ``encoders``, ``env``, ``errors``,
``modules``, ``transformer``, ``worker``). The original's training modules (``trainer``,
``mpi``, ``runner``, ``entry_point``, ...) and ``server`` are not provided.
"""

from ... import _content_types as content_types
from ... import _encoders as encoders
from ... import _env as env
from ... import _errors as errors
from ... import _modules as modules
from ... import _transformer as transformer
from ... import _worker as worker

__all__ = ["content_types", "encoders", "env", "errors", "modules", "transformer", "worker"]
