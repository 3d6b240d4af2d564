"""Core engine benchmark: download + probe + write, default config (no subsamplers), 2 processes.

N inputs (real files from shared/media/video and audio, repeated as needed, plus broken ones: 404, random
bytes, an HTML page and a truncated mp4, all named .mp4) are served on 127.0.0.1. Measures
  - throughput: input rows/s and good samples/s (best call) of one download call, best of --repeats;
  - start-up: wall time of a fresh 1-row job (`v2d-vox download` CLI subprocess vs a video2dataset script);
side by side with video2dataset 1.3.0 (same inputs, its download-only mode) when its venv exists, and what
each tool did with every kind of input.

    python benchmarks/bench_download.py [--n 48] [--broken 8] [--repeats 3] [--v2d-python /tmp/v2d-venv/bin/python]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import (
    Timer,
    broken_report,
    build_inputs,
    find_v2d_python,
    print_table,
    run_video2dataset,
    samples_by_url,
    serve,
    write_url_table,
)

import v2d_vox

REAL = ("video", "audio", "synthetic")


def good_samples(out: Path, kind_of: dict[str, str]) -> int:
    """Real inputs that ended as success with a media file in the tar."""
    return sum(1 for url, r in samples_by_url(out).items()
               if kind_of.get(url) in REAL and r["status"] == "success" and set(r["stored"]) - {"json", "txt"})


def ours_cli() -> list[str]:
    exe = Path(sys.executable).parent / "v2d-vox"  # the console script itself, not a pyenv shim
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "v2d_vox.cli"]


def run_ours(table: str, out: Path, args) -> dict:
    with Timer() as t, contextlib.redirect_stdout(io.StringIO()):  # the job summary: not wanted here
        s = v2d_vox.download(table, str(out), processes_count=args.processes, thread_count=args.threads,
                             samples_per_shard=args.samples_per_shard, incremental_mode="overwrite", progress=False)
    return {"call": t.s, "count": s["samples"], "successes": s["status"]["success"]}


def startup_ours(table: str, out: Path, args) -> float:
    cmd = ours_cli() + ["download", table, "--output_folder", str(out), "--processes_count", str(args.processes),
                        "--thread_count", str(args.threads), "--incremental_mode", "overwrite", "--no-progress"]
    with Timer() as t:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return t.s


def print_kinds(name: str, report: dict) -> None:
    print(f"\n{name}: outcome per input kind")
    for kind in sorted(report):
        print(f"  {kind:10s} " + ", ".join(f"{k}: {v}" for k, v in sorted(report[kind].items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=48, help="inputs in all")
    ap.add_argument("--broken", type=int, default=8, help="broken inputs among them")
    ap.add_argument("--synthetic", type=int, default=0, help="synthetic 640x360 6 s H.264+AAC clips among them")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--samples-per-shard", type=int, default=12, help="12 rows: 4 shards for 48 inputs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--v2d-python", default=None,
                    help="video2dataset venv interpreter (default /tmp/v2d-venv/bin/python if present; none: skip)")
    ap.add_argument("--workdir", default=None, help="where inputs and outputs go (default: a new /tmp folder)")
    args = ap.parse_args()
    v2d_python = find_v2d_python(args.v2d_python)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_download_"))
    inputs = build_inputs(work / "media", args.n, n_broken=args.broken, n_synthetic=args.synthetic)
    print(f"{args.n} inputs ({args.broken} broken, {args.synthetic} synthetic), {args.processes} processes x "
          f"{args.threads} threads, {args.samples_per_shard} rows/shard, best of {args.repeats}; work dir {work}")

    with serve(inputs.folder) as base:
        kind_of = inputs.kind_of(base)
        table = write_url_table(inputs.urls(base), work / "urls.csv")
        one = write_url_table(inputs.urls(base)[:1], work / "one.csv")
        ours, theirs, ours_proc = [], [], []
        for _ in range(args.repeats):
            ours.append(run_ours(table, work / "ours", args))
            ours_proc.append(startup_ours(table, work / "ours_cli", args))
            if v2d_python:
                theirs.append(run_video2dataset(v2d_python, table, work / "v2d", args.processes, args.threads,
                                                samples_per_shard=args.samples_per_shard))
        ours_start = [startup_ours(one, work / "ours_one", args) for _ in range(args.repeats)]
        theirs_start = [run_video2dataset(v2d_python, one, work / "v2d_one", args.processes, args.threads)["wall"]
                        for _ in range(args.repeats)] if v2d_python else []
        ours_good = good_samples(work / "ours", kind_of)
        theirs_good = good_samples(work / "v2d", kind_of) if v2d_python else None
        ours_kinds = broken_report(work / "ours", kind_of)
        theirs_kinds = broken_report(work / "v2d", kind_of) if v2d_python else {}

    o_call = min(r["call"] for r in ours)
    t_call = min(r["call"] for r in theirs) if theirs else None
    rows = [
        ("input rows/s (best call)", args.n / o_call, args.n / t_call if t_call else None, True),
        ("good samples/s (best call)", ours_good / o_call, theirs_good / t_call if t_call else None, True),
        ("call wall s (best)", o_call, t_call, False),
        ("call wall s (median)", statistics.median(r["call"] for r in ours),
         statistics.median(r["call"] for r in theirs) if theirs else None, False),
        (f"{args.n}-row job, fresh process: wall s (best)", min(ours_proc),
         min((r["wall"] for r in theirs), default=None), False),
        ("1-row job, fresh process: wall s (best)", min(ours_start), min(theirs_start, default=None), False),
        ("1-row job, fresh process: wall s (median)", statistics.median(ours_start),
         statistics.median(theirs_start) if theirs_start else None, False),
        ("status success", ours[-1]["successes"], theirs[-1]["successes"] if theirs else None, None),
        ("real media stored as samples", ours_good, theirs_good, True),
    ]
    print("\nper repeat, call wall s: v2d_vox " + " ".join(f"{r['call']:.2f}" for r in ours)
          + "; video2dataset " + " ".join(f"{r['call']:.2f}" for r in theirs))
    print()
    print_table(rows)
    print_kinds("v2d_vox", ours_kinds)
    if v2d_python:
        print_kinds("video2dataset 1.3.0", theirs_kinds)
        errors = Counter()
        for k, v in theirs[-1]["status_dict"].items():  # its messages name temp files: group them
            errors[re.sub(r"/tmp/[^'\s]+", "<tmp file>", k)] += v
        print("  its errors: " + "; ".join(f"{v} x {k}" for k, v in errors.most_common() if k != "success"))
        bad = sum(c["status=success"] for k, c in theirs_kinds.items() if k not in REAL)
        print(f"\nvideo2dataset marked {bad} of {args.broken} broken inputs 'success' and wrote them into its tars.")
    else:
        print("\n(video2dataset venv not found: run benchmarks/setup_video2dataset.sh for the side-by-side)")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # video2dataset and v2d_vox may spawn workers
    main()
