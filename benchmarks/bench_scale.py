"""The per-clip costs that docs/scale.md multiplies out: CPU seconds per clip, output bytes per clip and input
bytes per source, for each preset, with one process and one thread (so CPU time is what one core spends).

    python benchmarks/bench_scale.py [--sources 6] [--seconds 8] [--presets default,voxceleb,audio16k,esc50]

Sources are synthetic 640x360 25 fps H.264 + 16 kHz AAC videos of ``--seconds`` (``support.make_media`` with
noise, so the encoder has real work), served over loopback HTTP. CPU time is this process's plus its
children's (the worker process and its ffmpeg runs) from ``getrusage``: unlike wall time it does not depend
on what else shares the machine. Loopback HTTP is not the internet: the download rate printed is the
software ceiling, not a network figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from common import serve, support

import v2d_vox


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_preset(preset: str, table: Path, work: Path) -> dict:
    out = work / preset
    start_cpu, start = cpu_seconds(), time.perf_counter()
    summary = v2d_vox.download(str(table), str(out), config=preset, processes_count=1, thread_count=1,
                               samples_per_shard=1000, progress=False)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    tars = sorted(out.glob("*.tar"))
    with tarfile.open(tars[0]) as tar:
        members = tar.getmembers()
    keys = {m.name.split(".", 1)[0] for m in members}
    per_ext: dict[str, int] = {}
    for m in members:
        ext = m.name.split(".", 1)[1]
        per_ext[ext] = per_ext.get(ext, 0) + m.size
    clips = len(keys)
    meta = sum(p.stat().st_size for p in (*out.glob("0*.parquet"), *out.glob("*_stats.json")))
    shutil.rmtree(out)
    assert not summary["shards_failed"], summary
    return {"preset": preset, "clips": clips,
            "wall_s": wall, "cpu_s": cpu, "cpu_s_per_clip": cpu / clips, "clips_per_core_s": clips / cpu,
            "tar_bytes_per_clip": sum(per_ext.values()) / clips, "metadata_bytes_per_clip": meta / clips,
            "bytes_per_clip_by_ext": {k: v / clips for k, v in sorted(per_ext.items())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--presets", default="default,voxceleb,audio16k,esc50")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="v2d_scale_"))
    media = work / "media"
    media.mkdir()
    for i in range(args.sources):
        (media / f"src{i}.mp4").write_bytes(support.make_media(duration=args.seconds, size=(640, 360), seed=i,
                                                               noise=True))
    source_bytes = sum(p.stat().st_size for p in media.iterdir()) / args.sources
    results = []
    with serve(media) as base:
        table = work / "urls.txt"
        table.write_text("".join(f"{base}/src{i}.mp4\n" for i in range(args.sources)))
        print(f"{args.sources} sources of {args.seconds:g} s 640x360, {source_bytes / 1e6:.2f} MB each; "
              "1 process x 1 thread")
        print(f"{'preset':10} {'clips':>6} {'cpu s/clip':>11} {'clips/core-s':>13} {'KB/clip':>8} {'meta KB':>8}  "
              "by extension")
        for preset in args.presets.split(","):
            row = run_preset(preset, table, work)
            row["source_bytes"] = source_bytes
            results.append(row)
            exts = ", ".join(f"{k} {v / 1e3:.0f} KB" for k, v in row["bytes_per_clip_by_ext"].items())
            print(f"{preset:10} {row['clips']:6d} {row['cpu_s_per_clip']:11.3f} {row['clips_per_core_s']:13.1f} "
                  f"{row['tar_bytes_per_clip'] / 1e3:8.0f} {row['metadata_bytes_per_clip'] / 1e3:8.1f}  {exts}")
    shutil.rmtree(work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
