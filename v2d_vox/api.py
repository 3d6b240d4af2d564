"""The public entry points, in one place for ``v2d_vox`` and the CLI."""

from .jobs.download import download
from .jobs.recipe import recipe
from .jobs.reprocess import reprocess
from .jobs.scan import scan

__all__ = ["download", "recipe", "reprocess", "scan"]
