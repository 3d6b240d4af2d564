"""Streaming training loader for v2d_vox shards (see docs/loader.md)."""

from .batch import collate, fit
from .decode import DecodeConfig, decode_sample, read_audio, read_video, video_id
from .pipeline import ClipDataset, Loader, LoaderConfig, make_dataset, make_loader, to_device
from .scan import build_label_map, compute_stats
from .state import LoaderStats, Progress
from .transforms import (
    AddNoise,
    BrightnessContrast,
    Compose,
    DropFrames,
    GaussianBlur,
    GaussianNoise,
    LogMel,
    Normalize,
    Occlusion,
    RandomApply,
    SpecAugment,
    apply,
)

__all__ = [
    "AddNoise", "BrightnessContrast", "ClipDataset", "Compose", "DecodeConfig", "DropFrames", "GaussianBlur",
    "GaussianNoise", "Loader", "LoaderConfig", "LoaderStats", "LogMel", "Normalize", "Occlusion", "Progress",
    "RandomApply", "SpecAugment", "apply", "build_label_map", "collate", "compute_stats", "decode_sample",
    "fit", "make_dataset", "make_loader", "read_audio", "read_video", "to_device", "video_id",
]
