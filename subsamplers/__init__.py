"""Built-in subsamplers. Importing this package registers them (see ``v2d_vox.subsampler``);
the engine builds every chain through ``build_chain`` so the built-ins are always registered."""

from typing import Any

from v2d_vox.subsampler import Chain

from . import clip, corrupt, drop_media, face_crop, filters, resample, spectrogram, streams


def build_chain(specs: list[dict[str, Any]]) -> Chain:
    """A config's ``subsamplers`` list -> a Chain; unknown names or arguments fail here (ConfigError)."""
    return Chain.from_specs(specs)


__all__ = ["build_chain", "clip", "corrupt", "drop_media", "face_crop", "filters", "resample", "spectrogram", "streams"]
