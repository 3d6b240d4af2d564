"""The public entry points, in one place for `v2d_vox` and the CLI."""

from .download import download
from .reprocess import reprocess
from .scan import scan

__all__ = ["download", "reprocess", "scan"]
