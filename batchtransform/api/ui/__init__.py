"""The web dashboard at ``/ui/``: jobs, their logs and charts, models; see ``dashboard``."""

from batchtransform.api.ui.dashboard import Dashboard

__all__ = ["Dashboard"]
