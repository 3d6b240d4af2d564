"""Scheduling overhead of the pyspark and slurm distributors against multiprocessing, in one run.

    python benchmarks/bench_distributors.py [--small 4] [--large 24] [--repeat 2] [--json out.json]

The job is as light as a job gets (one 1 s wav per shard, default config, local reads), so its wall time
is nearly all scheduling. Start-up is the wall time of a 1-shard job; per-shard overhead is the slope
between --small and --large shards (each the best of --repeat runs).
pyspark's cold start (creating the local session) is measured separately from its warm runs.
slurm polls at most every second here (poll_seconds=1; the default 5 s adds up to 5 s to any job's end);
it needs a running cluster (.ci/slurm.sh); it is left out with a note otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import v2d_vox

WAV = Path(__file__).resolve().parents[2] / "shared" / "media" / "audio" / "tflite-micro-speech__yes_1000ms.wav"


def wall(n: int, distributor: str, args: dict, tmp: Path) -> float:
    table = tmp / f"urls_{n}.txt"
    table.write_text(f"{WAV}\n" * n)
    out = Path(tempfile.mkdtemp(dir=tmp))
    start = time.perf_counter()
    summary = v2d_vox.download(str(table), str(out), samples_per_shard=1, distributor=distributor,
                               distributor_args=args, processes_count=2, progress=False)
    seconds = time.perf_counter() - start
    assert summary["shards_done"] == n and not summary["shards_failed"], summary
    shutil.rmtree(out)
    return seconds


def fit(name: str, distributor: str, args: dict, small: int, large: int, repeat: int, tmp: Path) -> dict:
    """Start-up: the wall time of a 1-shard job. Per shard: the slope between `small` and `large` shards."""
    best = {n: min(wall(n, distributor, args, tmp) for _ in range(repeat)) for n in (1, small, large)}
    return {"name": name, "startup_s": best[1], "per_shard_s": (best[large] - best[small]) / (large - small),
            **{f"wall_{n}_s": w for n, w in best.items()}}


def slurm_up() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", type=int, default=4)
    p.add_argument("--large", type=int, default=24)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_dist_"))
    rows, notes = [], []
    try:
        rows.append(fit("multiprocessing (2 processes)", "multiprocessing", {}, a.small, a.large, a.repeat, tmp))
        quiet = {"progress": False}
        cold = wall(1, "pyspark", quiet, tmp)  # creates local[2,2]
        rows.append(fit("pyspark local[2,2], warm session", "pyspark", quiet, a.small, a.large, a.repeat, tmp))
        rows[-1]["cold_startup_s"] = cold
        if slurm_up():
            slurm = {**quiet, "poll_seconds": 1.0}
            rows.append(fit("slurm, 1 shard per array task", "slurm", slurm, a.small, a.large, a.repeat, tmp))
            rows.append(fit("slurm, 4 shards per array task", "slurm", {**slurm, "shards_per_task": 4},
                            a.small, a.large, a.repeat, tmp))
        else:
            notes.append("slurm left out: no running cluster (start one with .ci/slurm.sh)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]
    print(f"\nstart-up: a 1-shard job; per shard: {a.small} vs {a.large} shards of one 1 s wav each; "
          "x mp: ratio to multiprocessing\n")
    print("| distributor | start-up s | x mp | per shard s | x mp |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['startup_s']:.2f} | {r['startup_s'] / base['startup_s']:.0f} "
              f"| {r['per_shard_s']:.3f} | {r['per_shard_s'] / base['per_shard_s']:.1f} |")
        if "cold_startup_s" in r:
            print(f"| pyspark, creating the session | {r['cold_startup_s']:.2f} "
                  f"| {r['cold_startup_s'] / base['startup_s']:.0f} | | |")
    for n in notes:
        print(f"\n{n}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
