"""Scene detection + scene clipping: v2d_vox's ``scene_cuts`` + ``clip(scenes_as_clips)`` against video2dataset
1.3.0's CutDetectionSubsampler (cuts_are_clips) + ClippingSubsampler, on the same inputs in one run.

Inputs: `--n` synthetic 640x360 25 fps H.264 + AAC videos of `--seconds` s, each with 3 hard cuts at known
frames (tests/support.make_media(cuts=...)), served on 127.0.0.1. Both tools keep scenes of 1 s or more
(longer than 30 s: 30 s pieces) at the source resolution, cut exactly (re-encoded).

  1. Per stage, in this process, one input at a time: the cut-finding decode (``scene_cuts``: PyAV, 64 px
     wide frames) against the fused ffmpeg pass it precedes (all scene clips of the source in one process).
  2. End to end, 2 processes x 2 threads: ``v2d_vox.download`` and (when its venv exists, see
     benchmarks/setup_video2dataset.sh; otherwise this leg prints that it was skipped) video2dataset 1.3.0,
     timed inside its call. Clips found are checked against the known scene count.
Usage (PYTHONPATH=. to time a checkout rather than the installed package):
  python benchmarks/bench_scenes.py [--n 8] [--seconds 12] [--repeats 1] [--v2d-python PATH | none]
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, find_v2d_python, run_video2dataset, serve, shard_stats, support  # noqa: E402

import subsamplers  # noqa: E402, F401  (registers the built-ins before timing)
import v2d_vox  # noqa: E402
from v2d_vox.ffmpeg import run_plan  # noqa: E402
from v2d_vox.plan import MediaPlan  # noqa: E402
from v2d_vox.probe import probe  # noqa: E402
from v2d_vox.sample import Sample  # noqa: E402
from v2d_vox.subsampler import Chain  # noqa: E402

FPS = 25
CONFIG = {"subsamplers": [
    {"name": "scene_cuts", "threshold": 30.0, "min_scene_seconds": 0.5},
    {"name": "clip", "scenes_as_clips": True, "min_scene_seconds": 1.0, "max_scene_seconds": 30.0}]}
V2D_CONFIG = {"subsampling": {
    "CutDetectionSubsampler": {"cuts_are_clips": True, "args": {"cut_detection_mode": "all", "framerates": None,
                                                                "threshold": 27, "min_scene_len": 15}},
    "ClippingSubsampler": {"args": {"min_length": 1.0, "max_length": 30.0, "max_length_strategy": "all",
                                    "precision": "exact"}}}}


def make_inputs(folder: Path, n: int, seconds: float) -> dict[str, int]:
    """n videos with 3 cuts each at least 1.2 s apart -> {file name: number of scenes}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    scenes = {}
    for i in range(n):
        frames = int(seconds * FPS)
        cuts = sorted(rng.sample(range(2 * FPS, frames - 2 * FPS, 30), 3))
        name = f"{i:04d}_scenes.mp4"
        (folder / name).write_bytes(support.make_media(seconds, fps=FPS, size=(640, 360), sample_rate=44100,
                                                       cuts=tuple(cuts), seed=i))
        scenes[name] = len(cuts) + 1
    return scenes


def stage_times(folder: Path, names: list[str]) -> tuple[float, float, int]:
    """(seconds in the cut-finding decode, seconds in the fused pass, clips) over the inputs, one at a time."""
    chain = Chain.from_specs(CONFIG["subsamplers"])
    detect = fused = 0.0
    clips = 0
    for name in names:
        data = (folder / name).read_bytes()
        sample = Sample(name.split(".")[0], {"mp4": data}, {"probe": probe(data)})
        with Timer() as t:
            for step in chain.stage("meta"):
                step.check(sample)
        detect += t.s
        plan = MediaPlan()
        for step in chain.stage("media"):
            step.plan(plan, sample)
        with Timer() as t:
            clips += len(run_plan(plan, sample))
        fused += t.s
    return detect, fused, clips


def count_clips(out: Path) -> int:
    return sum(1 for tar in out.glob("*.tar") for m in tarfile.open(tar).getmembers() if m.name.endswith(".mp4"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--repeats", type=int, default=1, help="runs of every leg, best kept")
    ap.add_argument("--v2d-python", default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scenes_"))
    scenes = make_inputs(work / "inputs", args.n, args.seconds)
    names = sorted(scenes)
    expected = sum(scenes.values())
    print(f"{args.n} inputs of {args.seconds:g} s, 640x360 @ {FPS} fps + AAC, {expected} scenes in all")

    detect, fused, clips = stage_times(work / "inputs", names)
    print(f"per stage, one input at a time: cut-finding decode {detect:.2f} s, fused pass {fused:.2f} s "
          f"({clips} clips); the decode costs {detect / fused:.2f}x the pass it precedes")

    python = find_v2d_python(args.v2d_python)
    best: dict[str, tuple[float, int]] = {}
    with serve(work / "inputs") as base:
        table = work / "urls.csv"
        table.write_text("url\n" + "".join(f"{base}/{n}\n" for n in names))
        for rep in range(args.repeats):
            out = work / "out_v2d_vox"
            with Timer() as t:
                v2d_vox.download(str(table), str(out), config=CONFIG, processes_count=2, thread_count=2,
                                 samples_per_shard=-(-args.n // 2), incremental_mode="overwrite", progress=False)
            n = count_clips(out)
            print(f"[{rep + 1}] v2d_vox: {t.s:.2f} s, {shard_stats(out)['successes']} successes, {n} clips")
            best["v2d_vox"] = min(best.get("v2d_vox", (float("inf"), n)), (t.s, n))
            if not python:
                continue
            r = run_video2dataset(python, table, work / "out_v2d", processes=2, threads=2, config=V2D_CONFIG,
                                  samples_per_shard=-(-args.n // 2))
            n = count_clips(work / "out_v2d")
            print(f"[{rep + 1}] video2dataset 1.3.0: {r['call']:.2f} s in the call ({r['wall']:.2f} s with "
                  f"start-up), {r['successes']} successes, {n} clips, status {dict(r['status_dict'])}")
            best["video2dataset 1.3.0"] = min(best.get("video2dataset 1.3.0", (float("inf"), n)), (r["call"], n))
    if not python:
        print("video2dataset: skipped (no venv at /tmp/v2d-venv; see benchmarks/setup_video2dataset.sh)")
    print(f"\nbest of {args.repeats}; 2 processes x 2 threads; expected clips: {expected}")
    for name, (seconds, n) in best.items():
        print(f"{name:22s} {seconds:7.2f} s  {args.n / seconds:6.2f} inputs/s  {n:4d} clips  "
              f"{'all scenes found' if n == expected else f'{n - expected:+d} vs the known scenes'}")


if __name__ == "__main__":
    main()
