"""Shards for the loader tests, written with webdataset.TarWriter from synthetic clips (PyAV: H.264 + AAC)
and real talking-head / speech files in tests/data, plus planted corrupt members and a truncated tar."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from support import DATA, TALKING_HEADS, make_media, write_shard

IDENTITIES = 4
VIDEOS = 3  # per identity
CLIPS = 2  # per video
SIZE = 48
FPS = 25
SR = 16000


def identity_color(identity: int) -> np.ndarray:
    return np.array([(60 * identity) % 256, 255 - 50 * identity, 40 + 40 * identity], dtype=np.uint8)


def synth_clip(identity: int, seed: int, seconds: float = 1.2) -> bytes:
    """An mp4 whose colour and tone depend on ``identity`` (learnable), with per-clip noise."""
    return make_media(seconds, fps=FPS, size=(SIZE, SIZE), sample_rate=SR, seed=seed, color=identity_color(identity),
                      tone=200 + 150 * identity, noise=True)


@pytest.fixture(scope="session")
def identity_shards(tmp_path_factory) -> list[str]:
    """4 shards, 4 identities x 3 videos x 2 clips, interleaved so each shard mixes identities and videos.

    Identity 3 stores no "video_id" (the key prefix is its video id); the rest store it.
    """
    root = tmp_path_factory.mktemp("identity_shards")
    shards: list[list[dict]] = [[] for _ in range(4)]
    for c in range(CLIPS):
        for v in range(VIDEOS):
            for i in range(IDENTITIES):
                meta = {"identity": f"id{i}"}
                if i != 3:
                    meta["video_id"] = f"vid{i}-{v}"
                shards[(i + v + c) % 4].append({"__key__": f"id{i}v{v}_{c:05d}", "json": json.dumps(meta).encode(),
                                                "mp4": synth_clip(i, 100 * i + 10 * v + c)})
    return [write_shard(root / f"{k:05d}.tar", samples) for k, samples in enumerate(shards)]


@pytest.fixture(scope="session")
def many_shards(tmp_path_factory) -> list[str]:
    """12 tiny audio-only shards of 3 samples each (for splitting and resumption: cheap to decode)."""
    root = tmp_path_factory.mktemp("many_shards")
    wav = (DATA / "fsdd__3_george_7.wav").read_bytes()
    urls = []
    for k in range(12):
        samples = [{"__key__": f"s{k:02d}_{j:05d}", "wav": wav,
                    "json": json.dumps({"identity": f"spk{j}", "label": j}).encode()} for j in range(3)]
        urls.append(write_shard(root / f"{k:05d}.tar", samples))
    return urls


@pytest.fixture(scope="session")
def real_shard(tmp_path_factory) -> str:
    """Real media: 3 talking heads (224x224 25 fps, 16 kHz AAC), an audio-only flac, a stored mel."""
    root = tmp_path_factory.mktemp("real_shard")
    samples = [{"__key__": Path(name).stem.replace(".", "_"), "mp4": (DATA / name).read_bytes(),
                "json": json.dumps({"identity": f"real{i}", "source_key": name}).encode(), "txt": b"hello"}
               for i, name in enumerate(TALKING_HEADS)]
    samples.append({"__key__": "crow", "flac": (DATA / "deb-sonic-pi-samples__misc_crow.flac").read_bytes(),
                    "json": b'{"identity": "crow"}'})
    mel = io.BytesIO()
    np.save(mel, np.arange(80 * 300, dtype=np.float32).reshape(80, 300))
    samples.append({"__key__": "stored", "mel.npy": mel.getvalue(), "json": b'{"identity": "mel"}'})
    return write_shard(root / "real.tar", samples)


@pytest.fixture(scope="session")
def corrupt_shards(tmp_path_factory) -> tuple[list[str], int]:
    """Two shards with 5 good samples each; the first also holds random bytes and a truncated mp4 as
    .mp4 members, the second is a tar truncated in the middle of its last good member's successor.
    Returns the urls and the number of good samples reachable (5 + 4)."""
    root = tmp_path_factory.mktemp("corrupt_shards")
    good = [{"__key__": f"g{i}_00000", "mp4": synth_clip(i % 2, i, seconds=0.6),
             "json": json.dumps({"identity": f"id{i % 2}"}).encode()} for i in range(10)]
    rng = np.random.default_rng(0)
    bad = [{"__key__": "random_00000", "mp4": rng.bytes(5000), "json": b"{}"},
           {"__key__": "truncated_00000", "mp4": good[0]["mp4"][:1500], "json": b"{}"},
           {"__key__": "corrupt_h264_00000", "mp4": (DATA / "decord__corrupted.mp4").read_bytes()[:20000]}]
    first = write_shard(root / "00000.tar", good[:2] + bad[:2] + good[2:5] + bad[2:])
    full = Path(write_shard(root / "full.tar", good[5:]))
    with tarfile.open(full) as tar:
        cut = tar.getmember("g9_00000.mp4").offset_data + 700
    second = root / "00001.tar"
    second.write_bytes(full.read_bytes()[:cut])
    return [first, str(second)], 9
