"""Subsampling throughput: v2d_vox's `voxceleb` preset against the bare-ffmpeg ceiling (and video2dataset).

One mixed input set (real files from ../shared/media, synthetic 640x360 clips, broken files), served on
127.0.0.1, 2 processes (x 2 threads) each, one shard per process:
  1. v2d_vox: ``download(..., config="voxceleb", processes_count=2)`` end to end (HTTP, probe, filters,
     one fused ffmpeg per source, tar + parquet);
  2. ceiling: the same ffmpeg commands (the ones v2d_vox compiles, reading the local file by path), run
     bare 2 at a time, for the sources that yield clips; nothing else;
  3. video2dataset 1.3.0 (``--v2d-python``; skipped if absent): the same spans as a clip column,
     exact clipping, 224 px scale+crop, 25 fps.
Prints throughput ratios (inputs per second relative to the ceiling).  Usage:
  python benchmarks/bench_subsample.py [--n 48] [--v2d-python /tmp/v2d-venv/bin/python | none]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Timer, build_inputs, find_v2d_python, run_video2dataset, serve, shard_stats  # noqa: E402

import subsamplers  # noqa: E402, F401  (registers the built-ins before timing)
import v2d_vox  # noqa: E402
from v2d_vox.config import load_config  # noqa: E402
from v2d_vox.errors import SampleError  # noqa: E402
from v2d_vox.ffmpeg import compile_plan, ffmpeg_exe  # noqa: E402
from v2d_vox.plan import MediaPlan  # noqa: E402
from v2d_vox.probe import probe  # noqa: E402
from v2d_vox.sample import Sample  # noqa: E402
from v2d_vox.subsampler import Chain  # noqa: E402


def bare_command(path: Path, chain: Chain) -> tuple[list[str], list[list[float]]] | None:
    """The ffmpeg command v2d_vox runs for `path`, reading the file by name, and its spans; None if no clips."""
    data = path.read_bytes()
    try:
        info = probe(data)
        sample = Sample("k", {info["ext"]: data}, {"probe": info})
        for step in chain.stage("meta"):
            step.check(sample)
        plan = MediaPlan()
        for step in chain.stage("media"):
            step.plan(plan, sample)
        args, _ = compile_plan(plan, info, [3])
    except SampleError:
        return None
    cmd, skip = [ffmpeg_exe()], 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
        elif a in ("-fd", "-protocol_whitelist"):
            skip = 1
        else:
            cmd.append(str(path) if a == "fd:" and args[i - 1] == "-i" else a)
    return cmd, [list(s) for s in plan.spans or []]


def run_bare(cmd: list[str]) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        subprocess.run(cmd, cwd=d, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--v2d-python", default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_subsample_"))
    inputs = build_inputs(work / "inputs", args.n, n_broken=8, n_synthetic=12, media_kinds=("video", "odd"))
    chain = Chain.from_specs(load_config("voxceleb")["subsamplers"])
    commands = {n: bare_command(inputs.folder / n, chain) for n in inputs.names if (inputs.folder / n).exists()}
    jobs = {n: c for n, c in commands.items() if c}
    kinds = ", ".join(f"{k}={inputs.kinds.count(k)}" for k in sorted(set(inputs.kinds)))
    n_clips = sum(len(s) for _, s in jobs.values())
    print(f"{len(inputs.names)} inputs ({kinds}), {len(jobs)} yield {n_clips} clips; ffmpeg: {ffmpeg_exe()}")

    results = {}
    with serve(inputs.folder) as base:
        urls = inputs.urls(base)
        table = work / "urls.csv"
        table.write_text("url\n" + "".join(u + "\n" for u in urls))
        out = work / "out_v2d_vox"
        with Timer() as t:
            v2d_vox.download(str(table), str(out), config="voxceleb", processes_count=2, thread_count=2,
                             samples_per_shard=-(-len(urls) // 2), incremental_mode="overwrite", progress=False)
        st = shard_stats(out)
        results["v2d_vox (voxceleb preset)"] = t.s
        print(f"v2d_vox: {t.s:.2f} s, {st['successes']} successes, status {dict(st['status_dict'])}")

        with Timer() as t, ThreadPoolExecutor(2) as pool:
            list(pool.map(run_bare, [c for c, _ in jobs.values()]))
        results["bare ffmpeg, 2 at a time (ceiling)"] = t.s
        print(f"ceiling: {t.s:.2f} s for {len(jobs)} commands")

        python = find_v2d_python(args.v2d_python)
        if python:
            clip_table = work / "clips.parquet"  # a list column: video2dataset cannot parse clips from csv
            spans = {n: s for n, (_, s) in jobs.items()}
            pq.write_table(pa.table({"url": urls, "clips": [spans.get(n, [[0.0, 2.0]]) for n in inputs.names]}),
                           clip_table)
            cfg = {"subsampling": {
                "ClippingSubsampler": {"args": {"min_length": 0.0, "max_length": 2.0, "precision": "exact"}},
                "ResolutionSubsampler": {"args": {"video_size": 224, "resize_mode": "scale,crop"}},
                "FrameSubsampler": {"args": {"frame_rate": 25}}}}
            r = run_video2dataset(python, clip_table, work / "out_v2d", processes=2, threads=2, config=cfg,
                                  clip_col="clips", input_format="parquet", samples_per_shard=-(-len(urls) // 2))
            if r["successes"]:  # its clip/resolution path is fragile (see DESIGN.md): no ratio from a failed run
                results["video2dataset 1.3.0"] = r["wall"]
            print(f"video2dataset: {r['wall']:.2f} s ({r['call']:.2f} s in the call), {r['successes']} successes, "
                  f"status {dict(r['status_dict'].most_common(4))}")
        else:
            print("video2dataset: skipped (no --v2d-python venv)")

    ceiling = results["bare ffmpeg, 2 at a time (ceiling)"]
    print(f"\n{'run':40s} {'seconds':>8s} {'inputs/s':>9s} {'vs ceiling':>11s}")
    for name, s in results.items():
        print(f"{name:40s} {s:8.2f} {len(inputs.names) / s:9.2f} {ceiling / s:10.2f}x")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
