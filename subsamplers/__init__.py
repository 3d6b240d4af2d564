"""Built-in subsamplers. Importing this package registers them (see v2d_vox.subsampler)."""

from . import clip, corrupt, filters, resample, spectrogram, streams

__all__ = ["clip", "corrupt", "filters", "resample", "spectrogram", "streams"]
