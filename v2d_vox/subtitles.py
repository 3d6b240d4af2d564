"""Subtitles as captions: choose a track among those yt-dlp lists (the chosen languages in order, manual
before automatic), parse it (WebVTT, SRT, YouTube's json3) into cues on the source timeline, and cut the cues
to each clip's span.

A source's cues travel in its json as ``subtitles``: ``{"lang", "kind": "manual"|"automatic", "caption",
"cues": [{"start", "end", "text"}]}`` (seconds). ``caption`` (the ``captions_are_subtitles`` switch) says
whether the cue text is also the sample's ``txt``. A whole-source output keeps every cue; ``to_clips`` gives
each clip of a plan the cues that overlap its span, with times relative to the clip's start."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from .plan import MediaPlan

FORMATS = ("vtt", "srt", "json3")  # the track formats we parse, in order of preference
MAX_BYTES = 8 << 20  # a larger subtitle file is not a subtitle file
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_TAG = re.compile(r"<[^>]*>")

Cue = dict[str, Any]


def choose(info: dict[str, Any], langs: list[str]) -> tuple[str, str, dict[str, Any]] | None:
    """The track to fetch: (language, kind, yt-dlp's format entry) for the first of ``langs`` that has a
    manual track, else the first that has an automatic one; None when none has."""
    for kind, field in (("manual", "subtitles"), ("automatic", "automatic_captions")):
        tracks = info.get(field) or {}
        for lang in langs:
            formats = [f for f in tracks.get(lang) or [] if f.get("url") and f.get("ext") in FORMATS]
            if formats:
                return lang, kind, min(formats, key=lambda f: FORMATS.index(f["ext"]))
    return None


def _seconds(stamp: str) -> float:
    m = _TIME.fullmatch(stamp.strip())
    if not m:
        raise ValueError(f"bad cue time {stamp[:40]!r}")
    h, mnt, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def _clean(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def parse_text(text: str) -> list[Cue]:
    """WebVTT or SRT cues: blocks holding a ``start --> end`` line, then the cue text (tags stripped)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = block.strip("\n").split("\n")
        at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if at is None:
            continue  # header, NOTE, STYLE, REGION blocks
        start, _, rest = lines[at].partition("-->")
        cue = {"start": _seconds(start), "end": _seconds(rest.split()[0] if rest.split() else ""),
               "text": _clean(" ".join(lines[at + 1:]))}
        if cue["text"] and cue["end"] > cue["start"]:
            cues.append(cue)
    return cues


def parse_json3(text: str) -> list[Cue]:
    """YouTube's json3 captions: ``events`` with ``tStartMs``, ``dDurationMs`` and ``segs`` of text."""
    cues = []
    for event in json.loads(text).get("events") or []:
        words = _clean("".join(str(s.get("utf8", "")) for s in event.get("segs") or []))
        start, length = event.get("tStartMs", 0) / 1000, event.get("dDurationMs", 0) / 1000
        if words and length > 0:
            cues.append({"start": start, "end": start + length, "text": words})
    return cues


def parse(data: bytes, ext: str) -> list[Cue]:
    """The cues of a subtitle file, in time order; ValueError when it is not one."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"subtitle file over {MAX_BYTES >> 20} MB")
    text = data.decode("utf-8-sig", errors="replace")
    try:
        cues = parse_json3(text) if ext == "json3" else parse_text(text)
    except (json.JSONDecodeError, AttributeError, TypeError) as e:
        raise ValueError(f"bad {ext} subtitles: {e}") from None
    return sorted(cues, key=lambda c: (c["start"], c["end"]))


def cut(subtitles: dict[str, Any], start: float, end: float | None) -> dict[str, Any]:
    """``subtitles`` with only the cues overlapping [start, end), clamped to it and timed from ``start``."""
    stop = float("inf") if end is None else end
    cues = [{"start": round(max(c["start"], start) - start, 3), "end": round(min(c["end"], stop) - start, 3),
             "text": c["text"]} for c in subtitles.get("cues", []) if c["end"] > start and c["start"] < stop]
    return {**subtitles, "cues": cues}


def text(subtitles: dict[str, Any]) -> str:
    """The caption the cues make: their texts in order, one line each."""
    return "\n".join(c["text"] for c in subtitles.get("cues", []))


def to_clips(plan: MediaPlan, sample_key: str, subtitles: dict[str, Any] | None) -> None:
    """Each clip of a cut plan gets its cues in its json and, when they are the caption, its txt."""
    if not subtitles or plan.layout.spans is None or "cues" not in subtitles:
        return
    for clip in plan.clips(sample_key):
        own = cut(subtitles, clip.start, clip.end)
        edit = plan.edit(clip.index)
        edit.meta["subtitles"] = own
        if subtitles.get("caption"):
            edit.caption = text(own)
