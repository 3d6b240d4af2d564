"""Loader throughput against its ceiling and a plain baseline, side by side in one run.

    python benchmarks/bench_loader.py [--clips 96] [--workers 2]

Same clips for all three (real 224x224 25 fps talking heads with 16 kHz AAC, copied to fill --clips):
  ceiling   raw PyAV: demux + decode the clip's video and audio packets in --workers processes, no
            conversion, no batching (what the codecs cost)
  loader    make_loader: tar shards, shuffle, decode to 2 s x 25 fps x 112 px uint8 + 16 kHz audio, batches
  map-style torch Dataset over a folder of mp4 files, the same decode functions, default DataLoader
Reports clips/s, time to first batch and ratios; each method runs --rounds times, interleaved, best kept
(the machine is shared, so single runs are noisy).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import av
import torch
import webdataset as wds

from v2d_vox.loader import DecodeConfig, make_loader, read_audio, read_video
from v2d_vox.loader.decode import _duration

MEDIA = Path(__file__).parents[1] / "tests" / "data"
CFG = DecodeConfig(clip_seconds=2.0, fps=25, size=112, sample_rate=16000, random_start=False)


def centred_start(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as c:
        return max(0.0, (_duration(c) or 0.0) - CFG.clip_seconds) / 2


def raw_decode(path: str) -> int:
    """Decode the packets the clip needs (from the start: these files have one keyframe), nothing else."""
    data = Path(path).read_bytes()
    end = centred_start(data) + CFG.clip_seconds
    n = 0
    with av.open(io.BytesIO(data)) as c:
        for stream in (c.streams.video[0], c.streams.audio[0]):
            c.seek(0)
            for frame in c.decode(stream):
                n += 1
                if frame.time is not None and frame.time >= end:
                    break
    return n


class FolderDataset(torch.utils.data.Dataset):
    """The usual map-style baseline: one mp4 per index, read and decoded on demand."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        data = self.paths[i].read_bytes()
        start = centred_start(data)
        video, audio = read_video(data, start, CFG), read_audio(data, start, CFG)
        audio = torch.nn.functional.pad(audio, (0, CFG.num_samples - audio.shape[0]))
        return {"video": video, "audio": audio}


def timed(batches, batch_size_of) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    first, n = None, 0
    for batch in batches:
        n += batch_size_of(batch)
        first = first or time.perf_counter() - t0
    return n, time.perf_counter() - t0, first


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sources = sorted(MEDIA.glob("pc-avs__*.mp4"))
    root = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        folder = root / "files"
        folder.mkdir()
        paths = []
        for i in range(args.clips):
            paths.append(folder / f"clip{i:05d}.mp4")
            shutil.copyfile(sources[i % len(sources)], paths[-1])
        shards = []
        per_shard = -(-args.clips // 8)
        for k in range(8):
            shards.append(str(root / f"{k:05d}.tar"))
            with wds.TarWriter(shards[-1]) as sink:
                for p in paths[k * per_shard : (k + 1) * per_shard]:
                    sink.write({"__key__": p.stem, "mp4": p.read_bytes(), "json": json.dumps({}).encode()})

        random.Random(0).shuffle(paths)
        ceiling = ours = mapped = 0.0
        first_loader = first_map = float("inf")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            with Pool(args.workers) as pool:
                pool.map(raw_decode, [str(p) for p in paths], chunksize=4)
            ceiling = max(ceiling, args.clips / (time.perf_counter() - t0))

            loader = make_loader(shards, batch_size=args.batch_size, num_workers=args.workers, shuffle_buffer=16,
                                 clip_seconds=CFG.clip_seconds, fps=CFG.fps, size=CFG.size, random_start=False)
            n, secs, first = timed(loader, lambda b: len(b["__key__"]))
            assert n == args.clips and loader.stats.skipped == 0
            ours, first_loader = max(ours, n / secs), min(first_loader, first)

            baseline = torch.utils.data.DataLoader(FolderDataset(paths), batch_size=args.batch_size,
                                                   num_workers=args.workers, shuffle=True)
            n, secs, first = timed(baseline, lambda b: b["video"].shape[0])
            mapped, first_map = max(mapped, n / secs), min(first_map, first)
    finally:
        shutil.rmtree(root)

    print(f"{args.clips} clips of 2 s (224px 25 fps H.264 + AAC -> 50x3x112x112 uint8 + 32000 float32), "
          f"{args.workers} workers, batch {args.batch_size}")
    print(f"{'':22s}{'clips/s':>9s}{'first batch s':>15s}{'vs ceiling':>12s}{'vs map-style':>14s}")
    print(f"{'raw PyAV ceiling':22s}{ceiling:9.1f}{'':>15s}{1.0:12.2f}{ceiling / mapped:14.2f}")
    print(f"{'v2d_vox loader':22s}{ours:9.1f}{first_loader:15.2f}{ours / ceiling:12.2f}{ours / mapped:14.2f}")
    print(f"{'map-style Dataset':22s}{mapped:9.1f}{first_map:15.2f}{mapped / ceiling:12.2f}{1.0:14.2f}")


if __name__ == "__main__":
    main()
