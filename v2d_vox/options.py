"""Typed, documented parameters: the one place the API's help text lives.

Every parameter of an entry point is annotated ``Annotated[type, Help("...")]``. Options shared by
several entry points are aliases defined here and used in their signatures, e.g.
``processes_count: ProcessesCount = None``. `documented` writes a function's ``Args:`` section from
these annotations (for ``help()``), and `v2d_vox.cli` builds the argument parser from the same types
and text, so the API and ``v2d-vox CMD --help`` cannot drift apart.

To add a shared option: define ``Name = Annotated[type, Help("...")]`` here and use it in the
signatures. The CLI understands str, int, float, bool, dict, list[str], ``str | list[str]``,
``str | dict`` and any of those ``| None``."""

from __future__ import annotations

import inspect
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from distributors import NAMES as DISTRIBUTORS

from .config import INCREMENTAL_MODES, OUTPUT_FORMATS, presets

ARGS_HEADER = "\n\nArgs:\n"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Help:
    """A parameter's help text, and the values it accepts when they are a fixed few."""

    text: str
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.text} ({' | '.join(self.choices)})" if self.choices else self.text


def help_of(hint: Any) -> Help | None:
    """The `Help` in an ``Annotated[...]`` hint, if any."""
    return next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Help)), None)


def documented(fn: F) -> F:
    """Append an ``Args:`` section written from the parameters' `Help` annotations to fn's docstring.
    Raises TypeError for a parameter without one, so every option is documented."""
    hints = typing.get_type_hints(fn, include_extras=True)
    lines = []
    for name in inspect.signature(fn).parameters:
        text = help_of(hints.get(name))
        if text is None:
            raise TypeError(f"{fn.__qualname__}: parameter {name!r} needs an Annotated[..., Help(...)] hint")
        lines.append(textwrap.fill(f"{name}: {text}", 100, initial_indent="    ", subsequent_indent="        "))
    fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + ARGS_HEADER + "\n".join(lines)
    return fn


Config = Annotated[str | dict, Help(
    f"a preset name ({', '.join(presets())}), a YAML path, or a dict {{'subsamplers': [...]}} "
    "(on the command line: a JSON object)")]
OutputFormat = Annotated[str, Help(
    "how samples are stored: a tar, a folder or a parquet file of media bytes per shard", OUTPUT_FORMATS)]
ProcessesCount = Annotated[int | None, Help("processes working on shards in parallel (None: one per core)")]
ThreadCount = Annotated[int, Help("threads per process, each reading and processing one sample at a time")]
IncrementalMode = Annotated[str, Help(
    "shards already done are skipped, or what v2d_vox wrote there is cleared first", INCREMENTAL_MODES)]
MaxShardRetry = Annotated[int, Help("times a failed shard is retried")]
Distributor = Annotated[str, Help(
    "what runs the shards: processes_count processes here, a Spark cluster or Slurm jobs", DISTRIBUTORS)]
DistributorArgs = Annotated[dict[str, Any] | None, Help(
    "keyword arguments for the distributor (on the command line: a JSON object)")]
EnableWandb = Annotated[bool, Help("log per-shard stats and the summary to Weights & Biases")]
WandbProject = Annotated[str, Help("the wandb project to log to")]
Progress = Annotated[bool, Help("show progress bars (the summary is printed either way)")]
ResourceLimits = Annotated[dict[str, Any] | None, Help(
    "overrides of the resource limits (v2d_vox.config.Limits): max_duration (s, default 14400), max_pixels "
    "(default 7680x4320), max_clips_per_source (256), max_member_mb (1024), max_tar_gb (64); on the command "
    "line a JSON object")]
