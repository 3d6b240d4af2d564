"""Few short spans in long sources (the VoxCeleb2 shape): v2d_vox's one ffmpeg pass per source, seeking to each
span, against bare ffmpeg seeking to each span (one command per span, 2 at a time), side by side in one run.

Sources: `--n` synthetic `--seconds` long 640x360@25 H.264 + 44.1 kHz AAC mp4s (ffmpeg's testsrc2 and a tone,
x264 defaults: a keyframe every 10 s), generated once under /tmp/v2d_bench_sparse and reused; each row has
three 8 s spans spread over the source. Legs, interleaved `--repeats` times, best kept:
  - v2d_vox: `download` of the rows served on 127.0.0.1 by a server that honours HTTP Range (the tests'
    /range/ route), the `voxceleb` preset's media steps (2 s clips inside the spans, 224x224 crop at 25 fps,
    16 kHz mono audio; its log-mel left out as bare ffmpeg has none), 2 processes; it fetches only the index
    and the byte ranges the spans need, and the bytes fetched are reported against the sources' bytes;
  - v2d_vox, one range: the same with per-span seeking off (plan.SEEK_GAP = inf): the pass decodes from the
    first span to the last, as before, so the reader fetches the whole file (the spans' one range covers
    most of it);
  - bare ffmpeg: the same filter graph per span, the file read by name with `-ss`/`-t` on the input.
Usage:
  python benchmarks/bench_sparse.py [--n 4] [--seconds 240] [--repeats 2]      # small: --n 2 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Bare, Timer, by_name, run_bare, shard_stats, support  # noqa: E402

import subsamplers  # noqa: E402, F401  (registers the built-ins before timing)
import v2d_vox  # noqa: E402
from v2d_vox import plan as vp  # noqa: E402
from v2d_vox.config import load_config  # noqa: E402
from v2d_vox.ffmpeg import compile_plan, ffmpeg_exe  # noqa: E402
from v2d_vox.probe import probe  # noqa: E402
from v2d_vox.sample import Sample  # noqa: E402
from v2d_vox.subsampler import Chain  # noqa: E402

SOURCES = Path("/tmp/v2d_bench_sparse")
SPAN = 8.0
CONFIG = {"subsamplers": [s for s in load_config("voxceleb")["subsamplers"] if s["name"] != "spectrogram"]}


def make_source(path: Path, seconds: float, seed: int) -> None:
    """A long 360p source, made by ffmpeg's generators (far faster than frame-by-frame Python)."""
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=640x360:rate=25:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency={300 + 50 * seed}:sample_rate=44100:duration={seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-movflags", "+faststart", str(path)], check=True)


def spans(seconds: float, seed: int) -> list[list[float]]:
    """Three 8 s spans at about 1/6, 1/2 and 5/6 of the source, shifted a little per source."""
    return [[round(seconds * f + seed, 2), round(seconds * f + seed + SPAN, 2)] for f in (1 / 6, 1 / 2, 5 / 6)]


def bare_commands(path: Path, row_spans: list[list[float]], chain: Chain) -> list[Bare]:
    """One (ffmpeg command reading `path` by name, filter graph) per span: what v2d_vox compiles for that span
    alone, so both legs encode the same clips."""
    data = path.read_bytes()
    info = probe(data)
    out = []
    for span in row_spans:
        sample = Sample("k", {info["ext"]: data}, {"probe": info, "clips": json.dumps([span])})
        plan = vp.MediaPlan()
        for step in chain.stage("media"):
            step.plan(plan, sample)
        out.append(by_name(compile_plan(plan, sample), path))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="sources")
    ap.add_argument("--seconds", type=float, default=240.0, help="length of each source")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    SOURCES.mkdir(exist_ok=True)
    names = []
    for i in range(args.n):
        path = SOURCES / f"src_{int(args.seconds)}s_{i:02d}.mp4"
        if not path.exists():
            make_source(path, args.seconds, i)
        names.append(path.name)
    rows = [spans(args.seconds, i) for i in range(args.n)]
    chain = Chain.from_specs(CONFIG["subsamplers"])
    bare = [c for name, s in zip(names, rows) for c in bare_commands(SOURCES / name, s, chain)]
    size = sum((SOURCES / n).stat().st_size for n in names)
    print(f"{args.n} sources of {args.seconds:g} s (640x360, {size / 2**20:.1f} MiB in all), 3 spans of {SPAN:g} s "
          f"each, {len(bare)} bare ffmpeg commands; ffmpeg: {ffmpeg_exe()}")
    work = Path(tempfile.mkdtemp(prefix="bench_sparse_"))
    best: dict[str, float] = {}
    fraction: dict[str, float] = {}
    with support.serve(SOURCES) as server:
        base = f"{server.url}/range"
        table = work / "rows.jsonl"
        table.write_text("".join(json.dumps({"url": f"{base}/{n}", "clips": s}) + "\n" for n, s in zip(names, rows)))
        for rep in range(args.repeats):
            for name, gap in (("v2d_vox", vp.SEEK_GAP), ("v2d_vox, one range", math.inf)):
                saved, vp.SEEK_GAP = vp.SEEK_GAP, gap  # forked workers inherit it
                try:
                    with Timer() as t:
                        v2d_vox.download(str(table), str(work / "out"), config=CONFIG, clip_col="clips",
                                         processes_count=2, thread_count=2, samples_per_shard=-(-args.n // 2),
                                         incremental_mode="overwrite", progress=False)
                finally:
                    vp.SEEK_GAP = saved
                st = shard_stats(work / "out")
                summary = json.loads((work / "out" / "_job_summary.json").read_text())
                best[name] = min(t.s, best.get(name, math.inf))
                fraction[name] = summary["bytes_downloaded"] / summary["source_bytes"]
                print(f"[{rep + 1}] {name}: {t.s:.2f} s, {st['successes']}/{st['count']} sources, "
                      f"{summary['bytes_downloaded'] / 2**20:.1f} of {summary['source_bytes'] / 2**20:.1f} MiB fetched")
            with Timer() as t, ThreadPoolExecutor(2) as pool:
                list(pool.map(partial(run_bare, check=True), bare))
            best["bare"] = min(t.s, best.get("bare", math.inf))
            print(f"[{rep + 1}] bare ffmpeg, per span, 2 at a time: {t.s:.2f} s")
    print("\nbest of", args.repeats)
    for name in ("v2d_vox", "v2d_vox, one range"):
        print(f"{name:>20}: {best[name]:.2f} s = {best['bare'] / best[name]:.2f} of bare ffmpeg "
              f"({best['bare']:.2f} s), {fraction[name]:.3f} of the source bytes fetched")


if __name__ == "__main__":
    main()
