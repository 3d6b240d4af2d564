"""The public entry points, in one place for ``v2d_vox`` and the CLI."""

from .jobs.download import download
from .jobs.reprocess import reprocess
from .jobs.scan import scan

__all__ = ["download", "reprocess", "scan"]
