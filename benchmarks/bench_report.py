"""How long `v2d-vox stats` and `v2d-vox report` take on a large folder: N shards of stats and metadata
parquets (100 rows each, statuses and probe columns drawn from a seed), made under /tmp. No tars: the few
samples a report decodes do not grow with N, so the numbers are the cost of aggregating and plotting.

    PYTHONPATH=$PWD python benchmarks/bench_report.py --shards 200      # the small setting
    PYTHONPATH=$PWD python benchmarks/bench_report.py --shards 10000
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import v2d_vox
from v2d_vox.errors import STATUSES


def make_folder(out: Path, shards: int, rows: int = 100, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    for sid in range(shards):
        status = rng.choice(STATUSES, rows, p=[0.85, 0.08, 0.02, 0.05])
        table = pa.table({
            "key": [f"{sid:05d}{i:04d}" for i in range(rows)], "status": status,
            "error_message": [None if s == "success" else f"HTTP {400 + i % 7}" for i, s in enumerate(status)],
            "duration": rng.uniform(2, 30, rows), "width": rng.choice([640, 1280, 320], rows),
            "height": rng.choice([360, 720, 240], rows), "fps": rng.choice([25.0, 30.0, 29.97], rows),
            "sample_rate": rng.choice([16000, 44100, 48000], rows), "outputs": (status == "success").astype(int)})
        pq.write_table(table, out / f"{sid:05d}.parquet")
        counts = {s: int((status == s).sum()) for s in STATUSES}
        errors = {}
        for msg in table.column("error_message").to_pylist():
            if msg:
                errors[msg] = errors.get(msg, 0) + 1
        (out / f"{sid:05d}_stats.json").write_text(json.dumps({
            "shard_id": sid, "task": "curate", "count": rows, "outputs": counts["success"],
            "successes": counts["success"], **{s: counts[s] for s in STATUSES[1:]}, "duration": 10.0,
            "bytes_downloaded": 10**6, "bytes_written": 10**6, "status_dict": {"success": counts["success"], **errors},
            "seconds": {"read": 1.0, "probe": 0.5, "write": 0.1}}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=200)
    args = parser.parse_args()
    out = Path(f"/tmp/bench_report_{args.shards}")
    if out.exists():
        shutil.rmtree(out)
    t = time.perf_counter()
    make_folder(out, args.shards)
    print(f"made {args.shards} shards in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    v2d_vox.stats(str(out), json=True)
    stats_s = time.perf_counter() - t
    t = time.perf_counter()
    shown = v2d_vox.report(str(out))
    report_s = time.perf_counter() - t
    size = Path(shown["html"]).stat().st_size
    print(f"{args.shards} shards, {shown['rows']} rows: stats {stats_s:.2f} s, report {report_s:.2f} s, "
          f"page {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
