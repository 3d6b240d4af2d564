"""VoxCeleb2 metadata -> one row per source video.

The official layout is ``idNNNNN/REFERENCE/NNNNN.txt``, one file per utterance::

    Identity  : 	id00012
    Reference : 	21Uxsk56VDQ
    Offset    : 	1
    FV Conf   : 	16.647	(1)
    ASD Conf  : 	4.576

    FRAME 	X 	Y 	W 	H
    000245 	0.527 	0.125 	0.258 	0.458
    ...

``FRAME`` counts frames at 25 fps in the source video; the box is a fraction of the frame size. An
utterance spans ``[first / 25, (last + 1) / 25)`` seconds; its track is ``[t, x, y, w, h]`` per frame with
``t = frame / 25`` (the box stays relative: ``face_crop`` scales it to the downloaded video's size)."""

from __future__ import annotations

from typing import Any

import fsspec

from ..errors import ConfigError

FPS = 25.0
YOUTUBE = "https://www.youtube.com/watch?v={reference}"
HEADER = {"Identity": "identity", "Reference": "reference", "Offset": "offset", "FV Conf": "fv_conf",
          "ASD Conf": "asd_conf"}


def parse_utterance(text: str, name: str) -> dict[str, Any]:
    """One utterance file -> {identity, reference, offset, fv_conf, asd_conf, frames: [[f, x, y, w, h], ...]};
    a bad line raises ConfigError naming ``name`` and the line number."""
    head: dict[str, str] = {}
    frames: list[list[float]] = []
    in_frames = False
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if not in_frames:
            if fields[0] == "FRAME":
                in_frames = True
                continue
            key, sep, value = line.partition(":")
            if not sep or key.strip() not in HEADER or not value.strip():
                raise ConfigError(f"{name}:{n}: expected a header line ({', '.join(HEADER)} : value) or the "
                                  f"FRAME X Y W H row, got {line.strip()[:60]!r}")
            head[HEADER[key.strip()]] = value.split()[0]
            continue
        try:
            frame, x, y, w, h = (float(v) for v in fields)
        except ValueError:
            raise ConfigError(f"{name}:{n}: expected 'FRAME X Y W H' numbers, got {line.strip()[:60]!r}") from None
        if frames and frame <= frames[-1][0]:
            raise ConfigError(f"{name}:{n}: frame {int(frame)} does not follow frame {int(frames[-1][0])}")
        if not (w > 0 and h > 0 and -1 < x < 1 and -1 < y < 1 and w <= 2 and h <= 2):
            raise ConfigError(f"{name}:{n}: box {x} {y} {w} {h} is not a fraction of the frame size")
        frames.append([frame, x, y, w, h])
    missing = [k for k in ("Identity", "Reference") if HEADER[k] not in head]
    if missing or not frames:
        raise ConfigError(f"{name}: no {' / '.join(missing) or 'FRAME rows'} found")
    return {**head, "frames": frames}


def voxceleb2(metadata_dir: str, url_template: str = YOUTUBE) -> list[dict[str, Any]]:
    """Read every ``*/*/*.txt`` under ``metadata_dir`` (local or fsspec URL) -> one row per (identity,
    reference), sorted: ``url`` (``url_template`` with ``{reference}`` and ``{identity}`` filled in),
    ``identity``, ``video_id``, ``clips`` ([start, end] seconds per utterance), ``face_tracks`` ([t, x, y,
    w, h] per frame, per utterance) and ``utterances`` (the file stems)."""
    fs, root = fsspec.core.url_to_fs(metadata_dir)
    if not fs.isdir(root):
        raise ConfigError(f"{metadata_dir}: not a folder (expected idNNNNN/REFERENCE/NNNNN.txt inside)")
    paths = sorted(p for p in fs.glob(f"{root.rstrip('/')}/*/*/*.txt"))
    if not paths:
        raise ConfigError(f"{metadata_dir}: no idNNNNN/REFERENCE/NNNNN.txt files found")
    videos: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        name = path[len(root.rstrip("/")) + 1 :]
        utt = parse_utterance(fs.cat_file(path).decode("utf-8", "replace"), name)
        ident, ref = utt["identity"], utt["reference"]
        try:
            url = url_template.format(reference=ref, identity=ident)
        except (KeyError, IndexError) as e:
            raise ConfigError(f"url_template {url_template!r}: only {{reference}} and {{identity}} exist") from e
        row = videos.setdefault((ident, ref), {"url": url, "identity": ident, "video_id": ref, "clips": [],
                                               "face_tracks": [], "utterances": []})
        frames = utt["frames"]
        row["clips"].append([round(frames[0][0] / FPS, 4), round((frames[-1][0] + 1) / FPS, 4)])
        row["face_tracks"].append([[round(f / FPS, 4), x, y, w, h] for f, x, y, w, h in frames])
        row["utterances"].append(name.rsplit("/", 1)[-1].removesuffix(".txt"))
    return [videos[k] for k in sorted(videos)]
