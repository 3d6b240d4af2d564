"""Built-in subsamplers. Importing this package registers them (see ``v2d_vox.subsampler``);
the engine builds every chain through ``build_chain`` so the built-ins are always registered."""

from typing import Any

from v2d_vox.errors import ConfigError
from v2d_vox.subsampler import Chain

from . import clip, corrupt, drop_media, face_crop, filters, flow, models, resample, scenes, spectrogram, streams


def build_chain(specs: list[dict[str, Any]]) -> Chain:
    """A config's ``subsamplers`` list -> a Chain; unknown names or arguments fail here (ConfigError), and so
    does a step that needs another the chain lacks."""
    chain = Chain.from_specs(specs)
    names = {s.name for s in chain.steps}
    if any(getattr(s, "scenes_as_clips", False) for s in chain.steps) and "scene_cuts" not in names:
        raise ConfigError("clip: scenes_as_clips needs the scene_cuts step in the chain")
    return chain


__all__ = ["build_chain", "clip", "corrupt", "drop_media", "face_crop", "filters", "flow", "models", "resample",
           "scenes", "spectrogram", "streams"]
