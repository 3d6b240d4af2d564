"""What ``scan`` checks in each sample, and the two per-shard tasks built on it: ``ScanTask`` records
every sample's problems, ``CleanTask`` copies a shard without the samples a scan found bad.

Per-sample checks decode every frame with PyAV; the cross-shard ones (duplicate keys, identities without
a positive or a negative) run on the collected records. Every bad sample gets all its reasons as
``"category: detail"`` strings, so summaries count categories and the parquet keeps the details."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import av
import pyarrow as pa
import pyarrow.parquet as pq

from .config import Job
from .layout import Layout
from .media import open_media
from .sample import JSON, MEDIA_EXTS, Sample, check_key, identity, video_id
from .sources import TarRow
from .tars import Members

Record = dict[str, Any]
BAD_SAMPLES = "bad_samples.parquet"
SCHEMA = pa.schema([("shard", pa.string()), ("index", pa.int64()), ("key", pa.string()),
                    ("reasons", pa.list_(pa.string())), ("audio_duration", pa.float64()),
                    ("video_duration", pa.float64()), ("identity", pa.string()), ("video_id", pa.string())])


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
    with open_media(data) as c:
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
    """Per-sample checks -> a record with ``reasons`` (empty when the sample is fine)."""
    reasons, durations = [], {}
    try:
        check_key(key)
    except ValueError as e:
        reasons.append(f"bad key: {e}")
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
        meta = json.loads(members.get(JSON, b"{}"))
    except ValueError:
        meta = {}
        reasons.append("bad json: not valid JSON")
    meta = meta if isinstance(meta, dict) else {}
    ident = None
    if checks.identity_field:
        ident = identity(meta, checks.identity_field)
        if ident is None:
            reasons.append(f"no identity: json has no {checks.identity_field!r}")
    return {"key": key, "reasons": reasons, "audio_duration": audio, "video_duration": video,
            "identity": ident, "video_id": video_id(meta, key)}


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
    """Triplet coverage among the samples still usable, by the loader's rule: an anchor needs a positive (a clip
    of its identity from another video) and a negative (any other identity). A one-video identity still serves
    as negatives, so its clips are kept whenever some identity has two videos and there are two identities;
    otherwise no triplet can form at all and every usable sample gets the reason. The clean set then passes a
    rescan (what stays keeps both conditions true)."""
    usable = [r for r in records if not r["reasons"]]
    videos: dict[str, set[str]] = defaultdict(set)
    for r in usable:
        videos[r["identity"]].add(r["video_id"])
    if len(videos) < 2:
        reason = "no negative: {} is the only identity"
    elif all(len(v) < 2 for v in videos.values()):
        reason = "no positive: no identity has clips of two videos ({} has one)"
    else:
        return
    for r in usable:
        r["reasons"].append(reason.format(r["identity"]))


class ScanTask:
    """One record per tar sample (schema ``SCHEMA``); no sample output."""

    schema = SCHEMA

    def __init__(self, job: Job):
        self.checks = Checks(**job.options["checks"])

    def __call__(self, row: TarRow) -> tuple[Record, list[Sample]]:
        if row.error:
            record = {"key": row["key"], "reasons": [f"broken tar: {row.error}"], "audio_duration": None,
                      "video_duration": None, "identity": None, "video_id": row["key"]}
        else:
            record = check_sample(row["key"], row.members, self.checks)
        return {"shard": row["source_shard"], "index": row["source_index"], **record}, []

    def stats(self, records: list[Record]) -> dict[str, Any]:
        reasons = Counter(reason.split(":", 1)[0] for r in records for reason in r["reasons"])
        return {"bad_samples": sum(1 for r in records if r["reasons"]), "reasons": dict(reasons.most_common())}


class CleanTask:
    """Copies every sample that ``bad_samples.parquet`` of the scan report does not list, byte for byte."""

    schema = pa.schema([("key", pa.string()), ("source_shard", pa.string()), ("source_index", pa.int64()),
                        ("kept", pa.bool_())])

    def __init__(self, job: Job):
        layout = Layout(job.options["report"])
        with layout.fs.open(layout.path(BAD_SAMPLES), "rb") as f:
            bad = pq.read_table(f, columns=["shard", "index"]).to_pylist()
        self.bad: dict[str, set[int]] = defaultdict(set)
        for r in bad:
            self.bad[r["shard"]].add(r["index"])

    def __call__(self, row: TarRow) -> tuple[Record, list[Sample]]:
        kept = not row.error and row["source_index"] not in self.bad[row["source_shard"]]
        return {**row, "kept": kept}, [Sample(row["key"], dict(row.members), meta=None)] if kept else []

    def stats(self, records: list[Record]) -> dict[str, Any]:
        return {"kept": sum(r["kept"] for r in records), "dropped": sum(not r["kept"] for r in records)}
