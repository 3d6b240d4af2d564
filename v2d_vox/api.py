"""The public entry points, in one place for ``v2d_vox`` and the CLI."""

from .jobs.download import download
from .jobs.presets import presets
from .jobs.recipe import recipe
from .jobs.report import report
from .jobs.reprocess import reprocess
from .jobs.retry import retry
from .jobs.scan import scan
from .jobs.stats import stats

__all__ = ["download", "reprocess", "scan", "recipe", "retry", "stats", "report", "presets"]
