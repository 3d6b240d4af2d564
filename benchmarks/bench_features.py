"""The extra cost of the log-mel spectrogram and of seeded corruption over the plain voxceleb chain.

Same inputs for every config (real media from ../shared/media/video, read by local path, each file listed
``--repeat`` times), ``v2d_vox.download(..., processes_count=2)``, one shard per process, configs run in
interleaved rounds (the best round counts, so a noisy neighbour does not decide a ratio):
  1. voxceleb as it was before the spectrogram: filter, 2 s clips, 224x224 crop at 25 fps, 16 kHz mono AAC;
  2. + spectrogram (16 kHz, 80 mels, 25 ms window, 10 ms hop): the voxceleb preset today;
  3. + corrupt with the voxceleb-corrupt preset's moderate probabilities (and the spectrogram);
  4. + corrupt with every corruption on every clip (the worst case), for scale.
Prints wall seconds and the ratio to config 1.  Usage:
  python benchmarks/bench_features.py [--repeat 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import v2d_vox
from v2d_vox.config import load_config

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "video"
BASE = load_config("voxceleb")["subsamplers"][:4]
SPECTROGRAM = {"name": "spectrogram", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160,
               "n_mels": 80}
MODERATE = next(s for s in load_config("voxceleb-corrupt")["subsamplers"] if s["name"] == "corrupt")
EVERYTHING = {"name": "corrupt", **{f"p_{c}": 1.0 for c in (
    "drop_frames", "color", "blur", "occlusion", "noise", "compress", "audio_noise", "gain", "dropout")}}
CONFIGS = {
    "voxceleb without spectrogram": BASE,
    "+ spectrogram (voxceleb preset)": BASE + [SPECTROGRAM],
    "+ corrupt moderate + spectrogram": BASE + [MODERATE, SPECTROGRAM],
    "+ corrupt everything + spectrogram": BASE + [EVERYTHING, SPECTROGRAM],
}


def run(table: Path, out: Path, specs: list[dict], n: int) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    v2d_vox.download(str(table), str(out), config={"subsamplers": specs}, processes_count=2, thread_count=2,
                     samples_per_shard=-(-n // 2), progress=False)
    seconds = time.perf_counter() - start
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    return seconds, {"successes": sum(s["successes"] for s in stats), "outputs": sum(s["outputs"] for s in stats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=2, help="times each media file is listed")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    files = sorted(p for p in MEDIA.iterdir() if p.is_file())
    if not files:
        raise SystemExit(f"no media in {MEDIA}")
    work = Path(tempfile.mkdtemp(prefix="bench_features_"))
    try:
        table = work / "inputs.jsonl"
        rows = [{"url": str(p)} for p in files] * args.repeat
        table.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{len(rows)} inputs ({len(files)} files x {args.repeat}) from {MEDIA}, 2 processes, "
              f"{args.rounds} interleaved rounds")
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        counts = {}
        for _ in range(args.rounds):
            for name, specs in CONFIGS.items():
                seconds, counts[name] = run(table, work / "out", specs, len(rows))
                times[name].append(seconds)
        base = min(times[next(iter(CONFIGS))])
        print(f"\n{'config':36s} {'best s':>7s} {'median s':>8s} {'clips':>6s} {'vs voxceleb w/o mel':>20s}")
        for name, ts in times.items():
            print(f"{name:36s} {min(ts):7.2f} {statistics.median(ts):8.2f} {counts[name]['outputs']:6d} "
                  f"{min(ts) / base:19.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
