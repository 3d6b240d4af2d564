"""Loader throughput against the decode-only ceiling, side by side in one run.

    PYTHONPATH=$PWD python benchmarks/bench_loader.py [--clips 96] [--workers 2] [--rounds 2] [--before DIR]
                                                      [--main-threads 1]

Same clips for all (real 224x224 25 fps talking heads with 16 kHz AAC, copied to fill --clips), 2 s centred:
  ceiling    --workers processes, each clip opened once, its video and audio packets demuxed and decoded
             from the keyframe before the clip to its end; no conversion, no batching (what the codecs cost)
  loader     make_loader to training-ready tensors: tar shards, shuffle, decode, 112 px RGB, batches, moved to
             device="cpu", Normalize to float and LogMel there (frames become RGB in the workers: convert=auto)
  loader, convert=device   the same with YUV planes out of the workers and the RGB conversion + resize batched
             on the (CPU) device in the main process: the GPU path's layout, timed on CPU
  loader, own process      the same loader started in a fresh Python process, timed there: workers forked
             from a small parent (the lines above fork from this benchmark's process, which the earlier
             methods have grown, as a training process is large; runs here: 0-20% slower there)
  before (--before DIR)    that, for the loader of another checkout (e.g. ``git archive`` of the commit
             before issue 15 unpacked into DIR): a before/after in one run, to compare with "own process"
  previous decode          map-style Dataset over mp4 files with the loader's decode before issue 15 (three
             container opens per clip, a new swscale context per frame)
Reports clips/s, clips/s per core, time to first batch, peak RSS per worker process (VmHWM, which counts the
pages a forked worker shares with its parent), ratios to the ceiling, and CPU milliseconds per clip (main
process and workers together), whose ratio to the ceiling's holds up better than wall time when other jobs
share the cores. The ceiling's processes get the loader workers' malloc setting (``keep_freed_memory``), and
the main process runs torch with --main-threads threads (1: the workers already fill the cores). Each method
runs --rounds times,
interleaved, best kept (the machine is shared, so single runs are noisy).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import av
import numpy as np
import torch
import webdataset as wds

from v2d_vox.loader import DecodeConfig, LogMel, Normalize, make_loader
from v2d_vox.loader.decode import _duration
from v2d_vox.loader.memory import keep_freed_memory
from v2d_vox.media import open_media

MEDIA = Path(__file__).parents[1] / "tests" / "data"
CFG = DecodeConfig(clip_seconds=2.0, fps=25, size=112, sample_rate=16000, random_start=False)


def centred_start(container: av.container.InputContainer) -> float:
    return max(0.0, (_duration(container) or 0.0) - CFG.clip_seconds) / 2


def raw_decode(path: str) -> int:
    """One open; decode the clip's video and audio packets in one demux pass, convert nothing."""
    n, done = 0, set()
    with open_media(Path(path).read_bytes()) as c:
        start = centred_start(c)
        end = start + CFG.clip_seconds
        video, audio = c.streams.video[0], c.streams.audio[0]
        video.thread_count = 1  # as many processes as cores: FFmpeg's frame threads only add overhead
        if start > 0:
            c.seek(int(start / video.time_base), stream=video)
        for packet in c.demux(video, audio):
            if packet.stream.index in done:
                continue
            for frame in packet.decode():
                n += 1
                if frame.time is not None and frame.time >= end:
                    done.add(packet.stream.index)
                    break
            if len(done) == 2:
                break
    return n


def previous_decode(data: bytes) -> dict:
    """The loader's decode before issue 15: one open for the duration, one for video, one for audio, and
    ``to_ndarray`` with a size (a new swscale context per frame)."""
    with av.open(io.BytesIO(data)) as c:
        start = centred_start(c)
    frames, previous = [], None
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        c.seek(int(start / stream.time_base), stream=stream)
        for frame in c.decode(stream):
            while previous is not None and len(frames) < CFG.num_frames and start + len(frames) / CFG.fps < frame.time:
                frames.append(previous.to_ndarray(format="rgb24", width=CFG.size, height=CFG.size))  # square clips
            if len(frames) == CFG.num_frames:
                break
            previous = frame
    chunks = []
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        c.seek(int(start / stream.time_base), stream=stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=CFG.sample_rate)
        for frame in c.decode(stream):
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
            if sum(map(len, chunks)) >= CFG.num_samples + 2048:
                break
    video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
    audio = torch.from_numpy(np.concatenate(chunks)[: CFG.num_samples].copy())
    return {"video": video, "audio": torch.nn.functional.pad(audio, (0, CFG.num_samples - audio.shape[0]))}


class FolderDataset(torch.utils.data.Dataset):
    """The usual map-style baseline: one mp4 per index, read and decoded on demand."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        return previous_decode(self.paths[i].read_bytes())


def _children() -> list[int]:
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the workers, once a pass is over)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(batches, batch_size_of) -> tuple[int, float, float, float, float]:
    """(clips, seconds, seconds to the first batch, peak RSS MB of a worker process, CPU seconds)."""
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    first, n, peak = None, 0, 0.0
    for batch in batches:
        n += batch_size_of(batch)
        first = first or time.perf_counter() - t0
        peak = max([peak, *(_hwm_mb(pid) for pid in _children())])
    return n, time.perf_counter() - t0, first, peak, cpu_seconds() - cpu0


OWN_PROCESS = """
import json, os, sys, time
import torch
from v2d_vox.loader import LogMel, Normalize, make_loader
shards, workers, batch, size, threads = json.loads(sys.argv[1])
torch.set_num_threads(threads)
ready = {"video": Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), "audio->mel": LogMel()}
loader = make_loader(shards, batch_size=batch, num_workers=workers, shuffle_buffer=16, clip_seconds=2.0, fps=25,
                     size=size, random_start=False, device="cpu", batch_transforms=ready)
cpu = lambda: sum(os.times()[:4])
t0, cpu0, first, n = time.perf_counter(), cpu(), None, 0
for b in loader:
    n += len(b["__key__"])
    first = first or time.perf_counter() - t0
print(json.dumps([n, time.perf_counter() - t0, first, cpu() - cpu0]))
"""


def run_own_process(tree: str, shards: list[str], workers: int, batch_size: int, threads: int
                    ) -> tuple[int, float, float, float]:
    """The loader of the checkout at ``tree`` on the same shards, timed inside a fresh process."""
    spec = json.dumps([shards, workers, batch_size, CFG.size, threads])
    out = subprocess.run([sys.executable, "-c", OWN_PROCESS, spec], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": tree}, cwd=tree)
    n, secs, first, cpu = json.loads(out.stdout.splitlines()[-1])
    return n, secs, first, float("nan"), cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=112, help="training size; 224: the clips' own, no resize")
    parser.add_argument("--before", help="a checkout of the loader to compare with (run from there)")
    parser.add_argument("--main-threads", type=int, default=1,
                        help="torch threads of the training process, where the batch transforms run (1: the workers "
                             "fill the cores, and more threads only spin against them)")
    args = parser.parse_args()
    torch.set_num_threads(args.main_threads)
    global CFG
    CFG = dataclasses.replace(CFG, size=args.size)
    sources = sorted(MEDIA.glob("pc-avs__*.mp4"))
    root = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    ready = {"video": Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), "audio->mel": LogMel()}
    results: dict[str, list[float]] = {}  # name -> [clips/s, first batch s, peak RSS MB, CPU ms per clip]
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

        def keep(name: str, n: int, secs: float, first: float, peak: float, cpu: float) -> None:
            assert n == args.clips, (name, n)
            best = results.setdefault(name, [0.0, float("inf"), 0.0, float("inf")])
            best[:] = [max(best[0], n / secs), min(best[1], first), max(best[2], peak), min(best[3], 1000 * cpu / n)]

        for _ in range(args.rounds):
            t0, cpu0 = time.perf_counter(), cpu_seconds()
            with Pool(args.workers, initializer=keep_freed_memory) as pool:  # the loader's workers' malloc too
                pool.map(raw_decode, [str(p) for p in paths], chunksize=4)
            keep("decode-only ceiling", args.clips, time.perf_counter() - t0, float("nan"), float("nan"),
                 cpu_seconds() - cpu0)
            for name, convert in (("loader", "auto"), ("loader, convert=device", "device")):
                loader = make_loader(shards, batch_size=args.batch_size, num_workers=args.workers, shuffle_buffer=16,
                                     clip_seconds=CFG.clip_seconds, fps=CFG.fps, size=CFG.size, random_start=False,
                                     device="cpu", convert=convert, batch_transforms=ready)
                keep(name, *timed(loader, lambda b: len(b["__key__"])))
                assert loader.stats.skipped == 0
                assert loader.cfg.on_device == (convert == "device")
            keep("loader, own process", *run_own_process(str(Path(__file__).parents[1]), shards, args.workers,
                                                         args.batch_size, args.main_threads))
            if args.before:
                keep("before: " + Path(args.before).name, *run_own_process(args.before, shards, args.workers,
                                                                      args.batch_size, args.main_threads))
            baseline = torch.utils.data.DataLoader(FolderDataset(paths), batch_size=args.batch_size,
                                                   num_workers=args.workers, shuffle=True)
            keep("previous decode, map-style", *timed(baseline, lambda b: b["video"].shape[0]))
    finally:
        shutil.rmtree(root)

    cores = min(args.workers, os.cpu_count() or 1)
    ceiling = results["decode-only ceiling"][0]
    results["decode-only ceiling"][1] = float("nan")
    print(f"{args.clips} clips of 2 s (224px 25 fps H.264 + AAC -> normalized 50x3x{CFG.size}x{CFG.size} float"
          " + 80-mel), "
          f"{args.workers} workers on {cores} cores, batch {args.batch_size}, {args.main_threads} torch thread(s) in "
          f"the main process, best of {args.rounds}, "
          f"load average {os.getloadavg()[0]:.1f}")
    cpu_ceiling = results["decode-only ceiling"][3]
    print(f"{'':28s}{'clips/s':>9s}{'per core':>10s}{'first batch s':>15s}{'peak RSS/worker MB':>20s}"
          f"{'vs ceiling':>12s}{'CPU ms/clip':>13s}{'CPU vs ceiling':>16s}")
    for name, (rate, first, peak, cpu) in results.items():
        print(f"{name:28s}{rate:9.1f}{rate / cores:10.1f}{first:15.2f}{peak:20.0f}{rate / ceiling:12.2f}"
              f"{cpu:13.1f}{cpu_ceiling / cpu:16.2f}")


if __name__ == "__main__":
    main()
