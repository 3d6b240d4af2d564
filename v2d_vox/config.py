"""Typed job configuration, saved as ``_job.json`` in the output folder so any worker on any
distributor (a forked process, a Spark executor, a Slurm task) rebuilds the same job from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PRESETS = Path(__file__).parent / "presets"
OUTPUT_FORMATS = ("webdataset", "files", "parquet")
NO_OUTPUT = "none"  # a job that writes only metadata (scan)
SOURCES = ("table", "shards")
TASKS = ("curate", "scan", "clean")
INCREMENTAL_MODES = ("incremental", "overwrite")


@dataclass
class ReaderConfig:
    connect_timeout: float = 10.0
    timeout: float = 30.0  # read timeout between bytes, and the whole download's deadline is 4x this
    retries: int = 3  # on 5xx, resets and timeouts; never on 4xx
    backoff: float = 0.5  # seconds, doubled at each retry
    max_size_mb: float = 1024.0
    user_agent: str = "v2d_vox/0.1 (+dataset curation; respects robots and 4xx)"

    def __post_init__(self):
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ConfigError(f"timeouts must be positive, got {self.connect_timeout}, {self.timeout}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")


@dataclass
class Job:
    output_folder: str
    subsamplers: list[dict[str, Any]] = field(default_factory=list)
    output_format: str = "webdataset"
    thread_count: int = 8
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    source: str = "table"  # "table": rows from _inputs/*.arrow; "shards": samples from existing tars
    input_shards: list[str] = field(default_factory=list)  # for source == "shards"
    task: str = "curate"  # curate: run the subsamplers; scan: check samples; clean: copy the good ones
    options: dict[str, Any] = field(default_factory=dict)  # the task's own: scan's checks, clean's report
    retry: list[str] = field(default_factory=list)  # statuses whose rows ``retry`` fetches again; [] otherwise

    def __post_init__(self):
        if isinstance(self.reader, dict):
            self.reader = ReaderConfig(**self.reader)
        if self.output_format not in (*OUTPUT_FORMATS, NO_OUTPUT):
            raise ConfigError(f"output_format={self.output_format!r}; choose one of {OUTPUT_FORMATS}")
        if self.source not in SOURCES or self.task not in TASKS:
            raise ConfigError(f"source={self.source!r}, task={self.task!r}; choose from {SOURCES}, {TASKS}")
        if self.thread_count < 1:
            raise ConfigError(f"thread_count must be >= 1, got {self.thread_count}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def same_dataset(self, other: Job) -> bool:
        """Whether resuming ``other`` with this job keeps one dataset in the folder."""
        key = ("task", "subsamplers", "output_format", "options")
        return all(getattr(self, k) == getattr(other, k) for k in key)


def load_config(config: str | dict | None) -> dict[str, Any]:
    """A preset name, a YAML path, or a dict -> ``{"subsamplers": [...]}``, validated for unknown keys."""
    if config is None:
        config = "default"
    if isinstance(config, str):
        path = Path(config)
        if not path.suffix and (PRESETS / f"{config}.yaml").exists():
            path = PRESETS / f"{config}.yaml"
        if not path.exists():
            names = sorted(p.stem for p in PRESETS.glob("*.yaml"))
            raise ConfigError(f"config {config!r} is neither a preset ({', '.join(names)}) nor a YAML file")
        config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a mapping with a 'subsamplers' list, got {type(config).__name__}")
    unknown = set(config) - {"subsamplers", "description"}
    if unknown:
        raise ConfigError(f"unknown config key(s) {sorted(unknown)}; expected 'subsamplers' (and 'description')")
    subs = config.get("subsamplers") or []
    if not isinstance(subs, list):
        raise ConfigError("config 'subsamplers' must be a list of {name: ..., args...} entries")
    return {"subsamplers": subs}


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def preset_descriptions() -> dict[str, str]:
    """Preset name -> the ``description`` in its YAML."""
    return {name: " ".join(str((yaml.safe_load((PRESETS / f"{name}.yaml").read_text()) or {}).get(
        "description", "")).split()) for name in presets()}
