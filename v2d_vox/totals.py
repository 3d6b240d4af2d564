"""Job-level statistics: the totals of every done shard's ``NNNNN_stats.json``, written by the run loop as
``_job_summary.json`` at the end of every run (also on resume and retry, so it always covers the whole
folder) and read back by ``v2d-vox stats`` and ``v2d-vox report``.

Totals come from the per-shard stats only, never from a process's memory, so they are the same whichever
distributor ran the shards and however many runs it took; they equal the sums over the metadata parquets.
Folders written by video2dataset (``NNNNN_stats.json`` with ``count``, ``successes``,
``failed_to_download``, ``failed_to_resize``, ``status_dict``...) aggregate the same way."""

from __future__ import annotations

import contextlib
import importlib.metadata
import platform
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from statistics import median
from typing import Any

from . import __version__
from .errors import FAILED_TO_SUBSAMPLE, STATUSES, SUCCESS
from .layout import JOB_SUMMARY, STATS_RE, Layout

_NOT_SUMMED = {"shard_id", "start_time", "end_time", "duration"}
_NESTED = ("status_dict", "media_seconds", "seconds")  # dicts of numbers, summed key by key
_ALIASES = {"failed_to_resize": FAILED_TO_SUBSAMPLE}  # video2dataset's older name
TOP_ERRORS = 10
MAX_RUNS = 100


def read_shard_stats(layout: Layout) -> dict[int, dict[str, Any]]:
    """Shard id -> its stats, for every stats file in the folder (one listing, reads in parallel)."""
    if not layout.fs.exists(layout.root):
        return {}
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in layout.fs.ls(layout.root, detail=False)]
    ids = {int(m[1]): m[0] for m in map(STATS_RE.match, names) if m}
    with ThreadPoolExecutor(16) as pool:
        loaded = pool.map(layout.read_json, ids.values())
        return {sid: st for sid, st in zip(ids, loaded) if isinstance(st, dict)}


def aggregate(per_shard: dict[int, dict[str, Any]], shard_ids: list[int] | None = None) -> dict[str, Any]:
    """Totals over the shards' stats. ``shard_ids``: the job's shards (those without stats are failed)."""
    ids = sorted(per_shard) if shard_ids is None else sorted(shard_ids)
    stats = [per_shard[s] for s in ids if s in per_shard]
    sums: Counter = Counter()
    nested: dict[str, Counter] = {k: Counter() for k in _NESTED}
    for st in stats:
        for k, v in st.items():
            if k in _NESTED and isinstance(v, dict):
                nested[k].update({n: x for n, x in v.items() if isinstance(x, int | float)})
            elif isinstance(v, int | float) and not isinstance(v, bool) and k not in _NOT_SUMMED:
                sums[_ALIASES.get(k, k)] += v
    shard_seconds = sum(st.get("duration") or 0.0 for st in stats)
    rates = [st["count"] / st["duration"] for st in stats if st.get("duration")]
    out: dict[str, Any] = {
        "shards_total": len(ids), "shards_done": len(stats),
        "shards_failed": [s for s in ids if s not in per_shard],
        "samples": sums["count"], "outputs": sums.get("outputs", sums.get("successes", 0)),
        "bytes_downloaded": sums["bytes_downloaded"], "source_bytes": sums["source_bytes"],
        "bytes_written": sums["bytes_written"],
        "tasks": sorted({st.get("task", "curate") for st in stats}),
        "shard_seconds": round(shard_seconds, 3),
        "samples_per_shard_second": round(sums["count"] / shard_seconds, 3) if shard_seconds else None,
        "shard_throughput": {"min": round(min(rates), 3), "median": round(median(rates), 3),
                             "max": round(max(rates), 3)} if rates else None,
        "media_seconds": {k: round(v, 3) for k, v in sorted(nested["media_seconds"].items())},
        "stage_seconds": {k: round(v, 3) for k, v in sorted(nested["seconds"].items())},
        "totals": {k: round(v, 3) for k, v in sorted(sums.items())},
        "shard_versions": dict(Counter(st.get("v2d_vox_version", "unknown") for st in stats)),
    }
    if any("status_dict" in st or "successes" in st for st in stats):
        out["status"] = {s: sums["successes" if s == SUCCESS else s] for s in STATUSES}
        errors = Counter({k: v for k, v in nested["status_dict"].items() if k != SUCCESS})
        out["top_errors"] = dict(errors.most_common(TOP_ERRORS))
        out["distinct_errors"] = len(errors)
    return out


def versions() -> dict[str, str]:
    """What made the data: v2d_vox, Python and the packages that shape its bytes."""
    found = {"v2d_vox": __version__, "python": platform.python_version()}
    for package in ("av", "imageio-ffmpeg", "pyarrow", "webdataset", "numpy", "torch"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def job_stats(layout: Layout, per_shard: dict[int, dict[str, Any]], shard_ids: list[int],
              run: dict[str, Any]) -> dict[str, Any]:
    """The job's totals over ``shard_ids`` (``per_shard``: the stats of those done) with this run appended
    to the run history, written as ``_job_summary.json``; the previous file's runs are kept (resume, retry)."""
    previous = layout.read_json(JOB_SUMMARY) if layout.exists(JOB_SUMMARY) else {}
    stats = aggregate(per_shard, shard_ids)
    runs = [*previous.get("runs", []), run][-MAX_RUNS:]
    stats.update(folder=layout.folder, updated=time.time(), versions=versions(), runs=runs)
    layout.write_json(JOB_SUMMARY, stats)
    return stats


def folder_stats(folder: str, per_shard: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Totals of any output folder (ours or video2dataset's), fresh from its shard stats (``per_shard`` when
    the caller has read them); the failed shards and run history come from ``_job_summary.json``."""
    layout = Layout(folder)
    per_shard = read_shard_stats(layout) if per_shard is None else per_shard
    saved = layout.read_json(JOB_SUMMARY) if layout.exists(JOB_SUMMARY) else {}
    ids = sorted(set(per_shard) | set(saved.get("shards_failed", [])))
    stats = aggregate(per_shard, ids)
    stats.update(folder=folder, runs=saved.get("runs", []), versions=saved.get("versions"))
    return stats


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _of_sources(s: dict[str, Any]) -> str:
    """`` of 27.0 MB of sources (0.21)`` when only parts of the sources were fetched (HTTP ranges)."""
    fetched, sources = s["bytes_downloaded"], s.get("source_bytes") or 0
    return f" of {_size(sources)} of sources ({fetched / sources:.2f})" if fetched < sources else ""


def format_stats(s: dict[str, Any]) -> str:
    """The human summary ``v2d-vox stats`` prints."""
    failed = s["shards_failed"]
    lines = [f"{s['folder']}: {s['shards_done']}/{s['shards_total']} shards done, {len(failed)} failed"
             + (f" {failed[:20]}{' ...' if len(failed) > 20 else ''}" if failed else ""),
             f"samples: {s['samples']}" + (" (" + ", ".join(f"{k}={v}" for k, v in s["status"].items()) + ")"
                                           if "status" in s else "") + f"; outputs: {s['outputs']}",
             f"bytes: {_size(s['bytes_downloaded'])} fetched{_of_sources(s)}, {_size(s['bytes_written'])} written"]
    m = s["media_seconds"]
    if m:
        lines.append(f"media: video {m.get('video_in', 0):.1f} s in -> {m.get('video_out', 0):.1f} s out, "
                     f"audio {m.get('audio_in', 0):.1f} s in -> {m.get('audio_out', 0):.1f} s out")
    if s["stage_seconds"]:
        lines.append("busy seconds per stage: " + ", ".join(f"{k} {v:.2f}" for k, v in s["stage_seconds"].items()))
    if s["samples_per_shard_second"]:
        lines.append(f"throughput: {s['samples_per_shard_second']} samples/s per shard worker "
                     f"({s['shard_seconds']:.1f} s of shard time)")
    for run in s.get("runs", [])[-3:]:
        lines.append(f"run {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(run['started']))}: "
                     f"{run['shards_run']} shards, {run['samples']} samples in {run['wall_seconds']} s "
                     f"({run['samples_per_s']} samples/s, {run['distributor']})")
    if s.get("top_errors"):
        lines.append(f"top errors ({s['distinct_errors']} distinct):")
        lines += [f"  {n:>6} x {msg}" for msg, n in s["top_errors"].items()]
    return "\n".join(lines)
