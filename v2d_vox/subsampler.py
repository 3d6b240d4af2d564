"""The one Subsampler interface, its registry, and chain building from names + arguments.

A subsampler is a dataclass whose fields are its arguments, registered under a name. It declares
its `stage`, which decides the one hook the engine calls:

- ``meta``  -> ``check(sample)``: look at the source before anything is planned: inspect ``sample.meta``
  (probe results) and raise ``Filtered``, or add facts for later steps (``scene_cuts`` adds cut times).
- ``media`` -> ``plan(plan, sample)``: add to the shared ``MediaPlan``; the engine compiles every
  media step of the chain into ONE ffmpeg process per source.
- ``array`` -> ``apply(sample)``: work on each output sample (e.g. add ``mel.npy``). A step with
  ``batched = True`` (a model step) is handed the outputs of several sources at once through
  ``apply_batch(samples)``; the worker runs it, and every array step after it, over such groups.

A step whose ``check``/``plan`` reads only the probe and the row, never the source's media bytes, says so
with ``reads_source = False``; a clip step tells from the row alone where its clips lie
(``source_spans``). When every meta and media step of a chain says so, a reader may fetch only those spans
of a source (``Chain.source_spans``); the rest of its bytes are then zeros that nothing reads.

A user adds a subsampler in one file: decorate the class with ``@register("name")`` and refer to it
in a config as ``name`` (after importing the file) or as ``"package.module:ClassName"``. The built-ins
register when the ``subsamplers`` package is imported; the engine builds chains through
``subsamplers.build_chain``, so this module never imports the package that imports it.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .errors import ConfigError

if TYPE_CHECKING:
    from .plan import MediaPlan
    from .sample import Sample

Stage = Literal["meta", "media", "array"]
STAGES: tuple[Stage, ...] = ("meta", "media", "array")
REGISTRY: dict[str, type[Subsampler]] = {}


@dataclass
class Subsampler:
    name: ClassVar[str]
    stage: ClassVar[Stage]
    batched: ClassVar[bool] = False  # array steps: wants samples from several sources per apply_batch call
    reads_source: ClassVar[bool] = True  # check/plan may decode sample.media anywhere (False: probe and row only)

    def source_spans(self, row: dict[str, Any]) -> list[tuple[float, float]] | None:
        """The source time ranges this step's outputs lie in, from the table row alone; None: not narrowed."""
        return None

    def check(self, sample: Sample) -> None:
        raise NotImplementedError

    def plan(self, plan: MediaPlan, sample: Sample) -> None:
        raise NotImplementedError

    def apply(self, sample: Sample) -> None:
        raise NotImplementedError

    def apply_batch(self, samples: list[Sample]) -> None:
        """Array steps: work on several output samples at once; by default one by one."""
        for sample in samples:
            self.apply(sample)

    def describe(self) -> dict[str, Any]:
        """Name and arguments, recorded in each output's json for provenance."""
        return {"name": self.name, **dataclasses.asdict(self)}


def register(name: str):
    def deco(cls: type[Subsampler]) -> type[Subsampler]:
        if getattr(cls, "stage", None) not in STAGES:
            raise TypeError(f"subsampler {cls.__name__} must set stage to one of {STAGES}")
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


def _lookup(name: str) -> type[Subsampler]:
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot load subsampler {name!r}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Subsampler)):
            raise ConfigError(f"{name!r} is not a Subsampler subclass")
        return cls
    raise ConfigError(f"unknown subsampler {name!r}; known: {', '.join(sorted(REGISTRY))}")


def build(spec: dict[str, Any]) -> Subsampler:
    """One chain entry, ``{"name": "clip", "clip_seconds": 2}``, to an instance; bad keys fail here."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ConfigError(f"each subsampler entry needs a 'name' key, got {spec!r}")
    args = {k: v for k, v in spec.items() if k != "name"}
    cls = _lookup(spec["name"])
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(
            f"subsampler {spec['name']!r}: unknown argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(known)) or 'none'}"
        )
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"subsampler {spec['name']!r}: {e}") from e


@dataclass
class Chain:
    """A built chain, split by stage in config order."""

    steps: list[Subsampler]

    @classmethod
    def from_specs(cls, specs: list[dict[str, Any]]) -> Chain:
        return cls([build(s) for s in specs])

    def stage(self, stage: Stage) -> list[Subsampler]:
        return [s for s in self.steps if s.stage == stage]

    def array_split(self) -> tuple[list[Subsampler], list[Subsampler]]:
        """The array steps run per source, and those from the first batched one on (run over groups)."""
        steps = self.stage("array")
        first = next((i for i, s in enumerate(steps) if s.batched), len(steps))
        return steps[:first], steps[first:]

    def source_spans(self, row: dict[str, Any]) -> list[tuple[float, float]] | None:
        """The source time ranges every output of ``row`` comes from (the last media step that narrows them
        sets the clips), when no meta or media step reads the source itself; None: all of the source."""
        if any(s.reads_source for s in self.steps if s.stage != "array"):
            return None
        found = [spans for s in self.stage("media") if (spans := s.source_spans(row)) is not None]
        return found[-1] if found else None
