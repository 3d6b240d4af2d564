"""Built-in subsamplers. Importing this package registers them (see v2d_vox.subsampler)."""

from . import clip, filters, resample, streams

__all__ = ["clip", "filters", "resample", "streams"]
