"""v2d_vox: curate audio+video datasets into webdataset shards and stream them to training."""

__version__ = "0.1.0"

from .api import download, reprocess, scan  # noqa: E402  (functions; they shadow their submodules)

__all__ = ["download", "reprocess", "scan", "__version__"]


def __getattr__(name: str):
    """`v2d_vox.loader` imports torch: load it only when asked for."""
    if name == "loader":
        import importlib

        return importlib.import_module(".loader", __name__)
    raise AttributeError(name)
