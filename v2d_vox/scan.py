"""Scan shards for samples a training run cannot use: decode every frame with PyAV, check lengths and
streams, find duplicate keys across shards and identities without a positive or a negative.

Per-sample checks run in a process pool, one shard per task; the cross-shard checks (duplicates,
identities) run on the collected records. Every bad sample gets all its reasons as
``"category: detail"`` strings, so the summary counts categories and the parquet keeps the details."""

from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import av
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from .errors import ConfigError
from .options import Help, ProcessesCount, documented
from .runner import guard_spawn
from .sample import MEDIA_EXTS
from .shards import Members, check_not_inputs, list_shards, read_tar, write_tar
from .writers import TMP

Record = dict[str, Any]


@dataclass(frozen=True)
class Checks:
    min_duration: float = 0.0
    require_audio: bool = False
    require_video: bool = False
    av_tolerance: float | None = 0.1
    identity_field: str | None = None


def decoded_durations(data: bytes) -> dict[str, float]:
    """Decode every frame of the first audio and video stream -> seconds covered per stream type.
    Raises PyAV's error on broken data; cover art (attached pictures) is not video."""
    spans: dict[str, tuple[float, float]] = {}
    with av.open(io.BytesIO(data), metadata_errors="ignore") as c:
        video = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        for packet in c.demux(*(video[:1] + list(c.streams.audio[:1]))):
            for frame in packet.decode():
                if frame.pts is None:
                    continue
                start = float(frame.pts * frame.time_base)
                end = start + float((frame.duration or 0) * frame.time_base)
                lo, hi = spans.get(packet.stream.type, (start, end))
                spans[packet.stream.type] = (min(lo, start), max(hi, end))
    return {kind: round(hi - lo, 3) for kind, (lo, hi) in spans.items()}


def check_sample(key: str, members: Members, checks: Checks) -> Record:
    """Per-sample checks -> a record with `reasons` (empty when the sample is fine)."""
    reasons, durations = [], {}
    media = [ext for ext in MEDIA_EXTS if ext in members]
    if not media:
        reasons.append(f"no media: members {', '.join(sorted(members))}")
    for ext in media:
        try:
            found = decoded_durations(members[ext])
        except (av.error.FFmpegError, ValueError, IndexError) as e:
            message = getattr(e, "strerror", None) or str(e)  # without addresses: equal errors group
            reasons.append(f"decode error: {ext}: {type(e).__name__}: {message[:160]}")
            continue
        if not found:
            reasons.append(f"decode error: {ext}: no audio or video frames")
        for kind, seconds in found.items():
            durations[kind] = max(durations.get(kind, 0.0), seconds)
    audio, video = durations.get("audio"), durations.get("video")
    decoded = not any(r.startswith("decode error") for r in reasons)
    if decoded and media:
        if checks.require_audio and audio is None:
            reasons.append("no audio: no decodable audio stream")
        if checks.require_video and video is None:
            reasons.append("no video: no decodable video stream")
        duration = min(durations.values())
        if duration < checks.min_duration:
            reasons.append(f"too short: {duration:.2f} s < {checks.min_duration:g} s")
        if None not in (audio, video, checks.av_tolerance) and abs(audio - video) > checks.av_tolerance:
            reasons.append(f"audio/video mismatch: audio {audio:.2f} s, video {video:.2f} s")
    try:
        meta = json.loads(members.get("json", b"{}"))
    except ValueError:
        meta = {}
        reasons.append("bad json: not valid JSON")
    meta = meta if isinstance(meta, dict) else {}
    identity = None
    if checks.identity_field:
        identity = meta.get(checks.identity_field)
        if identity is None:
            reasons.append(f"no identity: json has no {checks.identity_field!r}")
    video_id = meta.get("video_id") or meta.get("source_key") or key.rsplit("_", 1)[0]
    return {"key": key, "reasons": reasons, "audio_duration": audio, "video_duration": video,
            "identity": None if identity is None else str(identity), "video_id": str(video_id)}


def scan_shard(url: str, checks: Checks) -> list[Record]:
    return [{"shard": url, "index": i, **check_sample(key, members, checks)}
            for i, (key, members) in enumerate(read_tar(url))]


def flag_duplicates(records: list[Record]) -> None:
    """Every occurrence of a key after its first (shards in sorted order, then tar order) is a duplicate."""
    first: dict[str, Record] = {}
    for r in records:
        if r["key"] in first:
            shard, index = first[r["key"]]["shard"].rsplit("/", 1)[-1], first[r["key"]]["index"]
            r["reasons"].append(f"duplicate key: first in {shard} #{index}")
        else:
            first[r["key"]] = r


def flag_identities(records: list[Record]) -> None:
    """Triplet coverage among the samples still usable: each anchor needs a positive (a clip of its
    identity from another video) and a negative (another identity). Dropping samples can take away
    another's negative, so repeat until nothing changes: the clean set then passes a rescan."""
    usable = [r for r in records if not r["reasons"]]
    while usable:
        videos: dict[str, set[str]] = defaultdict(set)
        for r in usable:
            videos[r["identity"]].add(r["video_id"])
        for r in usable:
            if len(videos[r["identity"]]) < 2:
                r["reasons"].append(f"no positive: identity {r['identity']} has clips of one video only")
            elif len(videos) < 2:
                r["reasons"].append(f"no negative: {r['identity']} is the only identity")
        kept = [r for r in usable if not r["reasons"]]
        if len(kept) == len(usable):
            break
        usable = kept


def _pool(processes_count: int | None, n: int) -> ProcessPoolExecutor:
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    return ProcessPoolExecutor(max(1, min(processes_count or os.cpu_count() or 1, n)), mp_context=ctx)


def _clean_members(url: str, bad: set[int]) -> Iterator[tuple[str, Members]]:
    return ((key, m) for i, (key, m) in enumerate(read_tar(url)) if i not in bad)


def _write_clean(url: str, folder: str, bad: set[int]) -> int:
    return write_tar(f"{folder.rstrip('/')}/{url.rsplit('/', 1)[-1]}", _clean_members(url, bad))


def _write_report(folder: str, summary: dict[str, Any], bad: list[Record]) -> None:
    fs, root = fsspec.core.url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    schema = pa.schema([("shard", pa.string()), ("index", pa.int64()), ("key", pa.string()),
                        ("reasons", pa.list_(pa.string())), ("audio_duration", pa.float64()),
                        ("video_duration", pa.float64()), ("identity", pa.string()),
                        ("video_id", pa.string())])
    with fs.open(f"{root}/bad_samples.parquet", "wb") as f:
        pq.write_table(pa.Table.from_pylist(bad, schema=schema), f)
    with fs.open(f"{root}/summary.json", "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)


def format_scan(s: dict[str, Any]) -> str:
    lines = [f"scanned {s['samples']} samples in {s['shards']} shards ({s['wall_seconds']} s): "
             f"{s['bad_samples']} bad", *(f"  {n:>6} x {reason}" for reason, n in s["reasons"].items())]
    if s["shards_failed"]:
        lines.append(f"unreadable shards: {s['shards_failed']}")
    if s.get("clean"):
        lines.append(f"clean shards: {s['clean']['samples']} samples in {s['clean']['folder']}")
    return "\n".join(lines)


@documented
def scan(
    shards: Annotated[str | list[str], Help(
        "a brace pattern, a list of tars or a folder of them; local paths or fsspec URLs")],
    report_folder: Annotated[str, Help(
        "gets summary.json and bad_samples.parquet (shard, index, key, reasons, ...)")] = "scan_report",
    *,
    min_duration: Annotated[float, Help(
        "required clip length in seconds (the shortest decoded stream counts)")] = 0.0,
    require_audio: Annotated[bool, Help("flag samples without a decodable audio stream")] = False,
    require_video: Annotated[bool, Help("flag samples without a decodable video stream")] = False,
    av_tolerance: Annotated[float | None, Help(
        "largest allowed gap in seconds between audio and video durations (None: no check)")] = 0.1,
    identity_field: Annotated[str | None, Help(
        "json field naming the speaker/identity; when given, every sample needs a positive (same identity, "
        "other video: json video_id, else source_key, else the key without its _NNNNN clip suffix) and a "
        "negative (another identity)")] = None,
    write_clean: Annotated[str | None, Help(
        "a folder to write the shards again without the bad samples (same names, members copied byte for "
        "byte into deterministic tars)")] = None,
    processes_count: ProcessesCount = None,
    progress: Annotated[bool, Help("show a progress bar and print the summary")] = True,
) -> dict[str, Any]:
    """Decode every sample of some shards and report the corrupt, too short or otherwise unusable ones."""
    guard_spawn()
    checks = Checks(min_duration, require_audio, require_video, av_tolerance, identity_field)
    urls = list_shards(shards)
    if write_clean:
        check_not_inputs(write_clean, urls)
        names = Counter(u.rsplit("/", 1)[-1] for u in urls)
        repeated = sorted(n for n, count in names.items() if count > 1)
        if repeated:
            raise ConfigError(f"write_clean keeps shard names, but some repeat: {repeated}")
    start = time.time()
    per_shard: dict[str, list[Record]] = {}
    failed: list[str] = []
    with _pool(processes_count, len(urls)) as pool:
        futures = {url: pool.submit(scan_shard, url, checks) for url in urls}
        for url, fut in tqdm(futures.items(), desc="shards", unit="shard", disable=not progress):
            try:
                per_shard[url] = fut.result()
            except Exception as e:  # an unreadable shard is reported, the others still count
                failed.append(url)
                tqdm.write(f"{url}: cannot read: {type(e).__name__}: {str(e)[:160]}")
    records = [r for url in urls for r in per_shard.get(url, [])]
    flag_duplicates(records)
    if identity_field:
        flag_identities(records)
    bad = [r for r in records if r["reasons"]]
    categories = Counter(reason.split(":", 1)[0] for r in bad for reason in r["reasons"])
    summary: dict[str, Any] = {
        "shards": len(urls), "shards_failed": failed, "samples": len(records), "bad_samples": len(bad),
        "reasons": dict(categories.most_common()),
        "checks": asdict(checks), "wall_seconds": round(time.time() - start, 2),
    }
    if identity_field:
        good = [r for r in records if not r["reasons"]]
        summary["identities"] = len({r["identity"] for r in good})
        summary["videos"] = len({(r["identity"], r["video_id"]) for r in good})
    if write_clean:
        skip: dict[str, set[int]] = defaultdict(set)
        for r in bad:
            skip[r["shard"]].add(r["index"])
        with _pool(processes_count, len(per_shard)) as pool:
            written = list(pool.map(_write_clean, list(per_shard), [write_clean] * len(per_shard),
                                    [skip[u] for u in per_shard]))
        fs, root = fsspec.core.url_to_fs(write_clean)
        if fs.exists(f"{root}/{TMP}"):
            fs.rm(f"{root}/{TMP}", recursive=True)
        summary["clean"] = {"folder": write_clean, "shards": len(written), "samples": sum(written)}
    _write_report(report_folder, summary, bad)
    if progress:
        print(format_scan(summary), flush=True)
    return summary
