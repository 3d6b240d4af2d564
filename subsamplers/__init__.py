"""Built-in subsamplers. Importing this package registers them (see v2d_vox.subsampler)."""

from . import clip, filters, resample, spectrogram, streams

__all__ = ["clip", "filters", "resample", "spectrogram", "streams"]
