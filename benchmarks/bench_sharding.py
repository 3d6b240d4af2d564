"""Sharding large tables: ``v2d_vox.sharding.shard_tables`` against reading the same table with pyarrow alone.

    python benchmarks/bench_sharding.py [--rows 1000000] [--samples-per-shard 1000] [--tables /tmp/v2d_tables]
    python benchmarks/bench_sharding.py --rows 10000000                  # the issue's 10M-row tables

A VoxCeleb-like table (url, caption, clips as a JSON string, duration) is written once per row count as
parquet (row groups of 1M rows) and csv under ``--tables`` and reused by later runs. Each measurement runs
in a fresh Python process, so its peak RSS (``VmHWM``) is its own: the pyarrow
baselines are ``pq.read_table`` and ``pyarrow.csv.read_csv`` (both multi-threaded, whole table in memory);
sharding writes ``_inputs/NNNNN.arrow`` files of ``--samples-per-shard`` rows to a fresh folder. The default
(1M rows) runs in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROW_GROUP = 1_000_000

READ = {
    "parquet": "import pyarrow.parquet as pq; t = pq.read_table({path!r}); n = t.num_rows",
    "csv": "import pyarrow.csv as pc; t = pc.read_csv({path!r}); n = t.num_rows",
}
SHARD = ("from v2d_vox.sharding import TableSpec, shard_tables; "
         "shards, n = shard_tables({path!r}, {out!r}, TableSpec(input_format={fmt!r}, caption_col='caption', "
         "clip_col='clips', samples_per_shard={sps}))")


def make_tables(rows: int, folder: Path) -> dict[str, Path]:
    """The same rows as parquet and csv, written chunk by chunk (flat memory), once per row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    paths = {"parquet": folder / f"table_{rows}.parquet", "csv": folder / f"table_{rows}.csv"}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    tmp = {k: p.with_name(p.name + ".partial") for k, p in paths.items()}
    pq_writer = csv_writer = None
    for start in range(0, rows, ROW_GROUP):
        i = np.arange(start, min(start + ROW_GROUP, rows))
        ids = pa.array(i).cast(pa.string())
        table = pa.table({
            "url": pc.binary_join_element_wise("https://www.youtube.com/watch?v=vid", pc.utf8_lpad(ids, 8, "0"), ""),
            "caption": pc.binary_join_element_wise("speaker id", pc.utf8_lpad(pa.array(i % 6112).cast(pa.string()),
                                                   5, "0"), " utterance ", ids, ""),
            "clips": pc.binary_join_element_wise("[[", pa.array(i % 60).cast(pa.string()), ".0, ",
                                                 pa.array(i % 60 + 8).cast(pa.string()), ".0]]", ""),
            "duration": pa.array((i % 600) / 10.0 + 4.0),
        })
        pq_writer = pq_writer or pq.ParquetWriter(tmp["parquet"], table.schema)
        csv_writer = csv_writer or pcsv.CSVWriter(tmp["csv"], table.schema)
        pq_writer.write_table(table, row_group_size=ROW_GROUP)
        csv_writer.write_table(table)
    pq_writer.close()
    csv_writer.close()
    for k, p in paths.items():
        tmp[k].rename(p)
    return paths


def measure(code: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, rows) of ``code`` run in a fresh interpreter; the clock covers the code only.
    Peak RSS is the child's own ``VmHWM``: ``ru_maxrss`` would also count the parent's pages at fork time."""
    script = (f"import time; t0 = time.perf_counter()\n{code}\nseconds = time.perf_counter() - t0\n"
              "hwm = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0]\n"
              "print(seconds, int(hwm) / 1024, n)")
    out = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    seconds, peak_mb, rows = out.split()
    return float(seconds), float(peak_mb), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--samples-per-shard", type=int, default=1000)
    ap.add_argument("--tables", type=Path, default=Path(tempfile.gettempdir()) / "v2d_tables")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    start = time.perf_counter()
    paths = make_tables(args.rows, args.tables)
    print(f"tables: {args.rows:,} rows ({time.perf_counter() - start:.1f} s to make or find) in {args.tables}")
    results = []
    print(f"{'format':8} {'MB on disk':>10} {'pyarrow s':>10} {'MB':>6} {'sharding s':>11} {'MB':>6} "
          f"{'shards':>7} {'x pyarrow':>10}")
    for fmt, path in paths.items():
        read_s, read_mb, n = measure(READ[fmt].format(path=str(path)))
        out = tempfile.mkdtemp(prefix="v2d_shard_")
        try:
            shard_s, shard_mb, n_sharded = measure(SHARD.format(path=str(path), out=out, fmt=fmt,
                                                                sps=args.samples_per_shard))
            shards = len(os.listdir(Path(out) / "_inputs")) - 1  # less _done.json
        finally:
            shutil.rmtree(out)
        assert n == n_sharded == str(args.rows), (n, n_sharded)
        row = {"format": fmt, "rows": args.rows, "disk_mb": path.stat().st_size / 2**20, "pyarrow_s": read_s,
               "pyarrow_peak_mb": read_mb, "sharding_s": shard_s, "sharding_peak_mb": shard_mb, "shards": shards,
               "ratio": shard_s / read_s}
        results.append(row)
        print(f"{fmt:8} {row['disk_mb']:10.0f} {read_s:10.2f} {read_mb:6.0f} {shard_s:11.2f} {shard_mb:6.0f} "
              f"{shards:7d} {row['ratio']:10.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
