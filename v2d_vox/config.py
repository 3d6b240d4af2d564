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
    timeout: float = 30.0  # read timeout between bytes; one sample's whole deadline, all retries included, is 4x this
    retries: int = 3  # on 5xx, 429, resets and timeouts; never on other 4xx
    backoff: float = 0.5  # seconds, doubled at each retry
    max_size_mb: float = 1024.0
    user_agent: str = "v2d_vox/0.1 (+dataset curation; respects robots and 4xx)"
    max_retry_after: float = 60.0  # a Retry-After up to this (and within the deadline) is waited; longer fails
    schemes: list[str] = field(default_factory=lambda: ["http", "https"])  # "file" (local paths), "s3", ...
    cross_host_redirects: bool = True  # False: a redirect to another host (or scheme) fails the sample

    def __post_init__(self):
        numbers = {"connect_timeout": self.connect_timeout, "timeout": self.timeout, "max_size_mb": self.max_size_mb}
        for name, value in numbers.items():
            if not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.retries < 0 or not 0 <= self.backoff < float("inf") or not 0 <= self.max_retry_after < float("inf"):
            raise ConfigError(f"retries, backoff and max_retry_after must be >= 0 and finite, got "
                              f"{self.retries}, {self.backoff}, {self.max_retry_after}")
        self.schemes = [str(s).lower().removesuffix("://") for s in self.schemes]

    @property
    def deadline(self) -> float:
        return 4 * self.timeout


@dataclass
class Limits:
    """What one source or shard may cost, so a small hostile file cannot take a worker's memory or time.
    A source over a limit fails with a message naming the limit; raise it for data that needs more."""

    max_duration: float = 4 * 3600.0  # seconds of media per source (declared or found)
    max_pixels: int = 7680 * 4320  # width x height of a video stream (8K); checked before any frame decodes
    max_clips_per_source: int = 256  # clips one source may become (each clip is a branch of one ffmpeg pass)
    max_member_mb: float = 1024.0  # one tar member, as its header declares it (sparse and .tar.gz bombs)
    max_tar_gb: float = 64.0  # all members of one tar together, decompressed

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigError(f"limits.{f.name} must be a positive finite number, got {value!r}")

    @property
    def max_member_bytes(self) -> int:
        return int(self.max_member_mb * 2**20)

    @property
    def max_tar_bytes(self) -> int:
        return int(self.max_tar_gb * 2**30)


READ_WITH = ("auto", "http", "yt-dlp")


@dataclass
class YtdlpConfig:
    """The yt-dlp reader's options (``v2d_vox.ytdlp``); kept apart from ReaderConfig, which is HTTP's."""

    format: str | None = None  # yt-dlp format selector; None: <= 360p H.264 mp4 + m4a (audio only if video dropped)
    cookie_file: str | None = None
    proxy: str | None = None
    rate_limit: int | None = None  # bytes per second
    sleep: float = 0.0  # seconds between requests
    retries: int = 3
    max_blocked: int = 5  # 429/403 answers in a row from one host before the shard stops
    backoff: float = 2.0  # seconds before the next request to a host after its first 429/403, doubled each time
    subtitle_langs: list[str] = field(default_factory=list)  # fetch the first of these with subtitles; []: none
    captions_are_subtitles: bool = False  # the subtitle text becomes the sample's txt (else only its json)
    sections: bool = True  # a row with clip spans downloads only the sections holding them (else the whole file)

    def __post_init__(self):
        if self.retries < 0 or self.max_blocked < 1 or self.sleep < 0 or self.backoff < 0:
            raise ConfigError("yt-dlp options: retries, sleep and backoff must be >= 0, max_blocked >= 1")


@dataclass
class Job:
    output_folder: str
    subsamplers: list[dict[str, Any]] = field(default_factory=list)
    output_format: str = "webdataset"
    thread_count: int = 8
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    read_with: str = "auto"  # per row: "auto" (yt-dlp for sites it knows), "http" (and fsspec) or "yt-dlp"
    url_template: str | None = None  # "https://www.youtube.com/watch?v={url}": the url column holds ids
    ytdlp: YtdlpConfig = field(default_factory=YtdlpConfig)
    source: str = "table"  # "table": rows from _inputs/*.arrow; "shards": samples from existing tars
    input_shards: list[str] = field(default_factory=list)  # for source == "shards"
    task: str = "curate"  # curate: run the subsamplers; scan: check samples; clean: copy the good ones
    options: dict[str, Any] = field(default_factory=dict)  # the task's own: scan's checks, clean's report
    limits: Limits = field(default_factory=Limits)
    retry: list[str] = field(default_factory=list)  # statuses whose rows ``retry`` fetches again; [] otherwise

    def __post_init__(self):
        if isinstance(self.reader, dict):
            self.reader = ReaderConfig(**self.reader)
        if isinstance(self.limits, dict):
            self.limits = make_limits(self.limits)
        if isinstance(self.ytdlp, dict):
            self.ytdlp = YtdlpConfig(**self.ytdlp)
        if self.read_with not in READ_WITH:
            raise ConfigError(f"reader={self.read_with!r}; choose one of {READ_WITH}")
        if self.url_template is not None and "{url}" not in self.url_template:
            raise ConfigError(f"url_template={self.url_template!r} must contain {{url}}")
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


def make_limits(limits: dict[str, Any] | Limits | None) -> Limits:
    """A ``Limits`` from a partial dict of overrides, with one line naming an unknown key."""
    if isinstance(limits, Limits):
        return limits
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(limits or {}) - known)
    if unknown:
        raise ConfigError(f"unknown limit(s) {unknown}; known: {sorted(known)}")
    return Limits(**(limits or {}))


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
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config {str(path)!r}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") \
                from None
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
