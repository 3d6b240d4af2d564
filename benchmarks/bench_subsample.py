"""Subsampling throughput, 2 s clips at 224 px: v2d_vox's `voxceleb` preset against the bare-ffmpeg ceiling and
video2dataset 1.3.0.

One mixed input set (real files from ../shared/media, synthetic 640x360 clips, broken files), served on
127.0.0.1, 2 processes (x 2 threads) each, one shard per process, two input sets:
  A. all inputs (video, odd files incl. audio-only ones, broken):
       v2d_vox ``download(..., config="voxceleb")`` end to end (HTTP, probe, filters, one fused ffmpeg per
       source: 2 s clips, 224x224 crop at 25 fps, 16 kHz mono AAC, log-mel; tar + parquet), and the ceiling:
       the same ffmpeg commands (the ones v2d_vox compiles, reading the local file by path) run bare 2 at a
       time for the sources that yield clips, nothing else;
  B. the inputs video2dataset can read (it picks its reader from the URL extension: mp4/webm/mov/avi/mkv go
     to its HTTP reader; .mpg/.flac/.ogg/... go to yt-dlp and fail, .wav/.mp3/.m4a crash on a bug in 1.3.0),
     with a `clips` column of the 2 s windows the preset cuts ([[0,2],[2,4],...] from each file's duration,
     [[0,2]] when unknown): v2d_vox with that clip column, the ceiling on its sources, and video2dataset
     (``--v2d-python``; skipped if absent): ClippingSubsampler (exact), ResolutionSubsampler (224, scale+crop),
     FrameSubsampler (25 fps), with the workarounds of common.run_video2dataset.
Runs are interleaved `--repeats` times, best kept; video2dataset is timed inside its video2dataset() call
(its ~5 s of interpreter start-up and imports excluded). Prints inputs/s and clips/s, ratios to the ceiling
and v2d_vox / video2dataset, and whether an output clip (probed with PyAV) still has audio.  Usage:
  python benchmarks/bench_subsample.py [--n 48] [--repeats 2] [--v2d-python /tmp/v2d-venv/bin/python | none]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tarfile
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bare, Timer, build_inputs, by_name, find_v2d_python, run_bare, run_video2dataset, serve, shard_stats  # noqa: E402

import subsamplers  # noqa: E402, F401  (registers the built-ins before timing)
import v2d_vox  # noqa: E402
from v2d_vox.config import load_config  # noqa: E402
from v2d_vox.errors import SampleError  # noqa: E402
from v2d_vox.ffmpeg import compile_plan, ffmpeg_exe  # noqa: E402
from v2d_vox.plan import MediaPlan  # noqa: E402
from v2d_vox.probe import probe  # noqa: E402
from v2d_vox.sample import Sample  # noqa: E402
from v2d_vox.subsampler import Chain  # noqa: E402


def bare_command(path: Path, chain: Chain) -> tuple[Bare, list[list[float]]] | None:
    """The ffmpeg command v2d_vox runs for `path` (reading the file by name, its graph from graph.txt in the
    working directory) and its spans; None if no clips."""
    data = path.read_bytes()
    try:
        info = probe(data)
        sample = Sample("k", {info["ext"]: data}, {"probe": info})
        for step in chain.stage("meta"):
            step.check(sample)
        plan = MediaPlan()
        for step in chain.stage("media"):
            step.plan(plan, sample)
        command = compile_plan(plan, sample)
    except SampleError:
        return None
    return by_name(command, path), [list(s) for s in plan.layout.spans or []]


V2D_VIDEO_EXTS = ("mp4", "webm", "mov", "avi", "mkv")  # video2dataset 1.3.0 data_reader.get_file_info


def windows(path: Path, seconds: float = 2.0) -> list[list[float]]:
    """The back-to-back `seconds` windows of a file ([[0,2],[2,4],...], last partial one dropped, as the preset
    cuts them), or [[0, seconds]] when the duration is unknown or shorter (as a clip table would list it)."""
    try:
        duration = probe(path.read_bytes())["duration"] if path.exists() else None
    except SampleError:
        duration = None
    n = int((duration or 0) // seconds)
    return [[i * seconds, (i + 1) * seconds] for i in range(n)] or [[0.0, seconds]]


def clip_outputs(out: Path) -> tuple[int, str, str]:
    """(number of .mp4 clips in the output tars, "yes"/"no" audio in the first one, its video format),
    the first clip probed with PyAV."""
    import av

    n, first = 0, None
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.isfile() and m.name.endswith(".mp4"):
                    n += 1
                    if first is None:
                        first = tf.extractfile(m).read()
    if first is None:
        return 0, "-", "-"
    with av.open(io.BytesIO(first)) as c:
        audio = [s for s in c.streams if s.type == "audio"]
        v = c.streams.video[0] if c.streams.video else None
        fmt = f"{v.codec_context.width}x{v.codec_context.height} @ {float(v.average_rate or 0):g} fps" if v else "-"
        if audio:
            fmt += f", audio {audio[0].codec_context.name} {audio[0].codec_context.sample_rate} Hz"
    return n, "yes" if audio else "no", fmt

# The voxceleb preset's media steps: what bare ffmpeg can make too. Its log-mel (an array step, no ffmpeg
# equivalent) is left out here; benchmarks/bench_features.py measures what it adds.
CONFIG = {"subsamplers": [s for s in load_config("voxceleb")["subsamplers"] if s["name"] != "spectrogram"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of every leg, best kept")
    ap.add_argument("--v2d-python", default=None)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_subsample_"))
    inputs = build_inputs(work / "inputs", args.n, n_broken=8, n_synthetic=12, media_kinds=("video", "odd"))
    chain = Chain.from_specs(CONFIG["subsamplers"])
    commands = {n: bare_command(inputs.folder / n, chain) for n in inputs.names if (inputs.folder / n).exists()}
    jobs = {n: c for n, c in commands.items() if c}
    kinds = ", ".join(f"{k}={inputs.kinds.count(k)}" for k in sorted(set(inputs.kinds)))
    n_clips = sum(len(s) for _, s in jobs.values())
    print(f"A: {len(inputs.names)} inputs ({kinds}), {len(jobs)} yield {n_clips} clips; ffmpeg: {ffmpeg_exe()}")
    # set B: what video2dataset can read, with the preset's 2 s windows as a clip column for both tools
    names_b = [n for n in inputs.names if n.rsplit(".", 1)[-1] in V2D_VIDEO_EXTS]
    spans_b = [windows(inputs.folder / n) for n in names_b]
    jobs_b = {n: jobs[n] for n in names_b if n in jobs}
    excluded = Counter(n.rsplit(".", 1)[-1] for n in inputs.names if n not in names_b)
    print(f"B: {len(names_b)} inputs with a video extension video2dataset reads ({len(jobs_b)} yield "
          f"{sum(len(s) for _, s in jobs_b.values())} clips for the preset; clip column: "
          f"{sum(map(len, spans_b))} windows); excluded for it: {dict(excluded)} (audio-only and .mpg inputs: "
          f"its extension-based reader fails on them)")
    python = find_v2d_python(args.v2d_python)
    cfg = {"subsampling": {
        "ClippingSubsampler": {"args": {"min_length": 0.0, "max_length": 2.0, "precision": "exact"}},
        "ResolutionSubsampler": {"args": {"video_size": 224, "resize_mode": "scale,crop"}},
        "FrameSubsampler": {"args": {"frame_rate": 25}}}}

    best: dict[str, float] = {}
    info: dict[str, tuple[int, int, str, str]] = {}  # run -> (inputs, clips, audio kept, clip format)

    def keep(name: str, seconds: float, n_inputs: int, out: Path | None = None, clips: int | None = None) -> None:
        best[name] = min(seconds, best.get(name, float("inf")))
        if out is not None:
            n, audio, fmt = clip_outputs(out)
            info[name] = (n_inputs, n, audio, fmt)
        else:
            info[name] = (n_inputs, clips or 0, "yes", "(same commands)")

    with serve(inputs.folder) as base:
        table_a = work / "urls.csv"
        table_a.write_text("url\n" + "".join(u + "\n" for u in inputs.urls(base)))
        table_b = work / "clips.parquet"  # a list column: video2dataset cannot parse clips from csv
        pq.write_table(pa.table({"url": [f"{base}/{n}" for n in names_b], "clips": spans_b}), table_b)
        for rep in range(args.repeats):
            print(f"-- repeat {rep + 1}/{args.repeats}")
            for name, table, clip_col, n_in in (("A: v2d_vox (voxceleb preset)", table_a, None, len(inputs.names)),
                                                ("B: v2d_vox (voxceleb preset)", table_b, "clips", len(names_b))):
                out = work / "out_v2d_vox"
                with Timer() as t:
                    v2d_vox.download(str(table), str(out), config=CONFIG, processes_count=2, thread_count=2,
                                     clip_col=clip_col, samples_per_shard=-(-n_in // 2),
                                     incremental_mode="overwrite", progress=False)
                st = shard_stats(out)
                keep(name, t.s, n_in, out)
                print(f"{name}: {t.s:.2f} s, {st['successes']} successes, {info[name][1]} clips, "
                      f"status {dict(st['status_dict'].most_common(4))}")
            for name, js, n_in in (("A: bare ffmpeg (ceiling)", jobs, len(inputs.names)),
                                   ("B: bare ffmpeg (ceiling)", jobs_b, len(names_b))):
                with Timer() as t, ThreadPoolExecutor(2) as pool:
                    list(pool.map(run_bare, [c for c, _ in js.values()]))
                keep(name, t.s, n_in, clips=sum(len(s) for _, s in js.values()))
                print(f"{name}: {t.s:.2f} s for {len(js)} commands")
            if python:
                name = "B: video2dataset 1.3.0"
                r = run_video2dataset(python, table_b, work / "out_v2d", processes=2, threads=2, config=cfg,
                                      clip_col="clips", input_format="parquet",
                                      samples_per_shard=-(-len(names_b) // 2))
                if r["successes"]:  # no ratio from a failed run
                    keep(name, r["call"], len(names_b), work / "out_v2d")
                print(f"{name}: {r['call']:.2f} s in the call ({r['wall']:.2f} s with start-up), {r['successes']} "
                      f"successes, {clip_outputs(work / 'out_v2d')[0]} clips, "
                      f"status {dict(r['status_dict'].most_common(4))}")
            else:
                print("video2dataset: skipped (no --v2d-python venv)")

    print(f"\nbest of {args.repeats}; 2 processes x 2 threads; clips: 2 s, 224x224, 25 fps")
    print(f"{'run':30s} {'seconds':>8s} {'inputs':>6s} {'inputs/s':>9s} {'clips':>5s} {'clips/s':>8s} "
          f"{'vs ceiling':>10s}  audio kept  first clip")
    for name, s in best.items():
        n_in, n_cl, audio, fmt = info[name]
        ceiling = best[name[:3] + "bare ffmpeg (ceiling)"]
        print(f"{name:30s} {s:8.2f} {n_in:6d} {n_in / s:9.2f} {n_cl:5d} {n_cl / s:8.2f} {ceiling / s:9.2f}x  "
              f"{audio:10s}  {fmt}")
    ours, theirs = "B: v2d_vox (voxceleb preset)", "B: video2dataset 1.3.0"
    if theirs in best:
        (_, c_ours, *_), (_, c_theirs, *_) = info[ours], info[theirs]
        print(f"\nv2d_vox / video2dataset on the same {len(names_b)} inputs: "
              f"{best[theirs] / best[ours]:.2f}x inputs/s, "
              f"{(c_ours / best[ours]) / (c_theirs / best[theirs]):.2f}x clips/s "
              f"(audio kept: v2d_vox {info[ours][2]}, video2dataset {info[theirs][2]})")
    elif python:
        print("\nvideo2dataset produced no successes: no ratio")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
