"""The last step of a metadata-only reprocess: outputs keep their json (and txt), not media or arrays."""

from __future__ import annotations

from dataclasses import dataclass

from v2d_vox.sample import JSON, TXT, Sample
from v2d_vox.subsampler import Subsampler, register


@register("drop_media")
@dataclass
class DropMedia(Subsampler):
    stage = "array"

    def apply(self, sample: Sample) -> None:
        sample.files = {ext: data for ext, data in sample.files.items() if ext in (JSON, TXT)}
