"""Helpers shared by the benchmarks: input sets made of real media (plus optional synthetic and broken files)
and a loopback HTTP server to serve them (the generator and the server are the tests', from tests/support.py),
a runner for video2dataset 1.3.0 in its own venv, a timer, result tables."""

from __future__ import annotations

import contextlib
import csv
import glob
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
DEFAULT_V2D_PYTHON = "/tmp/v2d-venv/bin/python"
BROKEN_KINDS = ("404", "random", "html", "truncated")


# ---------------------------------------------------------------- helpers shared with the tests


def _test_support():
    """tests/support.py, loaded by path: putting the repo root on sys.path instead would also make these
    benchmarks import the checkout's v2d_vox in place of the installed one."""
    spec = importlib.util.spec_from_file_location("v2d_vox_test_support", REPO / "tests" / "support.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


support = sys.modules.get("v2d_vox_test_support") or _test_support()


@contextlib.contextmanager
def serve(folder: str | Path):
    """Serve `folder` on 127.0.0.1 (the tests' threaded loopback server, free port); yields the base URL
    under which each file is at /NAME. Missing files get a 404."""
    with support.serve(folder) as server:
        yield f"{server.url}/media"


# ---------------------------------------------------------------- input sets

@dataclass
class InputSet:
    """Files laid out in `folder` to be served; names[i] is the URL path of input i, kinds[i] what it is:
    "video" / "audio" (real media), "synthetic", or one of BROKEN_KINDS ("404" names a file that is absent)."""

    folder: Path
    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def urls(self, base: str) -> list[str]:
        return [f"{base}/{n}" for n in self.names]

    def kind_of(self, base: str) -> dict[str, str]:
        return dict(zip(self.urls(base), self.kinds))


Bare = tuple[list[str], str]  # an ffmpeg command reading its source by name, and the graph it reads from graph.txt


def by_name(command: Any, path: Path) -> Bare:
    """A command v2d_vox compiled (``ffmpeg.Command``) as bare ffmpeg reading ``path`` by name instead of a
    passed descriptor: the ceiling legs run exactly the media work v2d_vox runs."""
    from v2d_vox.ffmpeg import ffmpeg_exe, graph_option

    args = command.args([3] * len(command.inputs), "graph.txt", graph_option(ffmpeg_exe()))
    cmd, skip = [ffmpeg_exe()], 0
    for i, a in enumerate(args):
        if skip:
            skip -= 1
        elif a in ("-fd", "-protocol_whitelist"):
            skip = 1
        else:
            cmd.append(str(path) if a == "fd:" and args[i - 1] == "-i" else a)
    return cmd, command.graph


def run_bare(bare: Bare, check: bool = False) -> None:
    cmd, graph = bare
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        Path(d, "graph.txt").write_text(graph)
        subprocess.run(cmd, cwd=d, capture_output=True, check=check)


def real_media(kinds: tuple[str, ...] = ("video", "audio")) -> list[Path]:
    """The real files of shared/media/<kind>, interleaved by kind so any prefix mixes them."""
    lists = [sorted(p for p in (MEDIA / k).iterdir() if p.is_file()) for k in kinds]
    out = []
    for i in range(max(map(len, lists))):
        out += [lst[i] for lst in lists if i < len(lst)]
    return out


def make_synthetic(seconds: float = 6.0, size: tuple[int, int] = (640, 360), fps: int = 25, seed: int = 0) -> bytes:
    """An H.264 + 44.1 kHz AAC mp4 (moving gradient and a tone): the tests' generator."""
    return support.make_media(seconds, fps=fps, size=size, sample_rate=44100, seed=seed)


def build_inputs(folder: str | Path, n: int, n_broken: int = 0, n_synthetic: int = 0,
                 media_kinds: tuple[str, ...] = ("video", "audio"), synthetic_seconds: float = 6.0,
                 seed: int = 0) -> InputSet:
    """`n` inputs in `folder`: `n_synthetic` generated clips, `n_broken` broken ones (cycling through
    BROKEN_KINDS) and real media from shared/media for the rest (repeated as needed, each copy under its own
    name so every URL is distinct). Names keep the source extension (video2dataset picks its reader by it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    real = real_media(media_kinds)
    if not real:
        raise FileNotFoundError(f"no media under {MEDIA}")
    mp4s = [p for p in real if p.suffix == ".mp4"]
    rng = random.Random(seed)
    inputs = InputSet(folder)
    n_real = n - n_broken - n_synthetic
    if n_real < 0:
        raise ValueError("n must cover n_broken + n_synthetic")
    for i in range(n):
        if i < n_real:
            src = real[i % len(real)]
            kind = src.parent.name
            name = f"{i:04d}_{src.name}"
            target = folder / name
            if not target.exists():
                shutil.copyfile(src, target)
        elif i < n_real + n_synthetic:
            kind, name = "synthetic", f"{i:04d}_synthetic.mp4"
            if not (folder / name).exists():
                (folder / name).write_bytes(make_synthetic(synthetic_seconds, seed=seed + i))
        else:
            kind = BROKEN_KINDS[(i - n_real - n_synthetic) % len(BROKEN_KINDS)]
            name = f"{i:04d}_{kind}.mp4"
            if kind == "random":
                (folder / name).write_bytes(rng.randbytes(50_000))
            elif kind == "html":
                (folder / name).write_bytes(b"<!doctype html><html><body>Video unavailable</body></html>" * 20)
            elif kind == "truncated":
                data = mp4s[i % len(mp4s)].read_bytes()
                (folder / name).write_bytes(data[: len(data) // 3])
            # "404": no file, the server answers with its 404 page
        inputs.names.append(name)
        inputs.kinds.append(kind)
    return inputs


def write_url_table(urls: list[str], path: str | Path) -> str:
    """A csv with one `url` column, readable by v2d_vox and video2dataset alike."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url"])
        w.writerows([u] for u in urls)
    return str(path)


# ---------------------------------------------------------------- timing and output inspection

class Timer:
    """`with Timer() as t: ...` then t.s (seconds, perf_counter)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def shard_stats(out: str | Path) -> dict[str, Any]:
    """Sum the `*_stats.json` files of an output folder (both tools write the same keys)."""
    total: dict[str, Any] = {"shards": 0, "count": 0, "successes": 0, "failed_to_download": 0,
                             "failed_to_subsample": 0, "status_dict": Counter()}
    for path in sorted(glob.glob(f"{out}/*_stats.json")):
        st = json.loads(Path(path).read_text())
        total["shards"] += 1
        for k in ("count", "successes", "failed_to_download", "failed_to_subsample"):
            total[k] += st.get(k, 0)
        total["status_dict"].update(st.get("status_dict", {}))
    return total


def samples_by_url(out: str | Path) -> dict[str, dict[str, Any]]:
    """url -> {"status", "error", "stored": {ext: bytes}} from an output folder's parquet files and tars
    (the layout both tools write: NNNNN.parquet rows with url/key/status, NNNNN.tar members KEY.EXT)."""
    import pyarrow.parquet as pq

    stored: dict[str, dict[str, bytes]] = {}
    for tar in glob.glob(f"{out}/*.tar"):
        with tarfile.open(tar) as tf:
            for m in tf.getmembers():
                if m.isfile():
                    key, _, ext = m.name.partition(".")
                    stored.setdefault(key, {})[ext] = tf.extractfile(m).read()
    rows = {}
    for path in glob.glob(f"{out}/[0-9]*.parquet"):
        if path.endswith("_media.parquet"):
            continue
        t = pq.read_table(path).to_pylist()
        for r in t:
            err = r.get("error_message", r.get("error"))
            rows[r["url"]] = {"status": r.get("status"), "error": err, "stored": stored.get(r["key"], {})}
    return rows


def broken_report(out: str | Path, kind_of: dict[str, str]) -> dict[str, Counter]:
    """Per input kind, a Counter of "status" and of "stored .mp4 (N B)" outcomes."""
    report: dict[str, Counter] = {}
    for url, row in samples_by_url(out).items():
        kind = kind_of.get(url, "?")
        c = report.setdefault(kind, Counter())
        c[f"status={row['status']}"] += 1
        if row["stored"]:
            c["written to tar as " + "+".join(sorted(row["stored"]))] += 1
    return report


# ---------------------------------------------------------------- video2dataset 1.3.0 runner

_RUNNER = '''\
"""video2dataset 1.3.0 with the workarounds of DESIGN.md; argv[1] is the JSON of its keyword arguments."""
import json
import sys
import time

from video2dataset.subsamplers import AudioRateSubsampler, FrameSubsampler, ResolutionSubsampler


def _give_encode_formats(cls, modality):  # issues #263, #311: the worker reads .encode_formats, never set
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.encode_formats = {modality: self.encode_format}

    cls.__init__ = __init__


def _work_on_a_copy(cls):
    # the download worker loops `for modality in streams:` while FrameSubsampler pops and re-adds
    # streams["video"]: "RuntimeError: dictionary keys changed during iteration", and every clipped sample is
    # lost unwritten. Same work, on a shallow copy of the dict.
    call = cls.__call__

    def __call__(self, streams, metadata=None):
        return call(self, dict(streams), metadata)

    cls.__call__ = __call__


# at module level: workers are spawned and re-import this file as __mp_main__, so they get the patch too
_give_encode_formats(ResolutionSubsampler, "video")
_give_encode_formats(FrameSubsampler, "video")
_give_encode_formats(AudioRateSubsampler, "audio")
_work_on_a_copy(FrameSubsampler)

if __name__ == "__main__":  # spawn start method: the call must not run again in the workers
    from video2dataset import video2dataset

    t0 = time.perf_counter()
    video2dataset(**json.loads(sys.argv[1]))
    print("V2D_CALL_SECONDS", time.perf_counter() - t0, flush=True)
'''


def v2d_config(processes: int, threads: int, samples_per_shard: int,
               config: dict | str | None = None, timeout: float = 60) -> dict:
    """A full video2dataset config: its defaults, then `config` (a dict or YAML path, e.g. only a
    "subsampling" section), then processes/threads/samples per shard."""
    cfg = {
        "subsampling": {},
        "reading": {"yt_args": {"download_size": 360, "download_audio_rate": 44100, "yt_metadata_args": None},
                    "timeout": timeout, "sampler": None},
        "storage": {"number_sample_per_shard": samples_per_shard, "oom_shard_count": 5,
                    "captions_are_subtitles": False},
        "distribution": {"processes_count": processes, "thread_count": threads, "subjob_size": 1000,
                         "distributor": "multiprocessing"},
    }
    if isinstance(config, (str, Path)):
        config = yaml.safe_load(Path(config).read_text())
    for section, values in (config or {}).items():
        if section == "subsampling" or not isinstance(values, dict):
            cfg[section] = values
        else:
            cfg[section].update(values)
    cfg["storage"]["number_sample_per_shard"] = samples_per_shard
    cfg["distribution"].update(processes_count=processes, thread_count=threads)
    return cfg


def run_video2dataset(python: str, url_table: str | Path, out: str | Path, processes: int = 2, threads: int = 8,
                      config: dict | str | None = None, *, samples_per_shard: int = 1000,
                      output_format: str = "webdataset", input_format: str = "csv",
                      encode_formats: dict | None = None, clip_col: str | None = None,
                      caption_col: str | None = None, timeout_s: float = 1800) -> dict[str, Any]:
    """Run video2dataset 1.3.0 with the interpreter of its venv in a fresh subprocess (overwriting `out`).
    Returns {"wall": subprocess seconds, "call": seconds inside the video2dataset() call, **shard_stats}."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    work = Path(tempfile.mkdtemp(prefix="v2d_run_"))
    script = work / "run_v2d.py"
    script.write_text(_RUNNER)
    kwargs = {
        "url_list": str(url_table), "output_folder": str(out), "output_format": output_format,
        "input_format": input_format, "encode_formats": encode_formats or {"video": "mp4"},
        "url_col": "url", "caption_col": caption_col, "clip_col": clip_col, "tmp_dir": str(work),
        # "overwrite" is broken in 1.3.0: it deletes the _tmp folder it has just made inside `out`
        "incremental_mode": "incremental",
        "config": v2d_config(processes, threads, samples_per_shard, config),
    }
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    log = work / "log.txt"
    try:
        with Timer() as t, open(log, "w") as f:
            proc = subprocess.run([python, str(script), json.dumps(kwargs)], stdout=f, stderr=subprocess.STDOUT,
                                  env=env, timeout=timeout_s, cwd=work)
        text = log.read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"video2dataset exited {proc.returncode}:\n{text[-3000:]}")
        call = [float(line.split()[1]) for line in text.splitlines() if line.startswith("V2D_CALL_SECONDS")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"wall": t.s, "call": call[0] if call else math.nan, **shard_stats(out)}


def find_v2d_python(arg: str | None) -> str | None:
    """The venv interpreter to use: `arg` if given ("none" disables), else the default venv if present."""
    if arg and arg.lower() == "none":
        return None
    path = arg or DEFAULT_V2D_PYTHON
    if Path(path).exists():
        return path
    if arg:
        sys.exit(f"{arg} not found: run benchmarks/setup_video2dataset.sh first")
    return None


# ---------------------------------------------------------------- reporting

def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def print_table(rows: list[tuple[str, Any, Any, bool | None]], left: str = "v2d_vox",
                right: str = "video2dataset 1.3.0") -> None:
    """rows: (metric, ours, theirs, higher_is_better). Prints ours/theirs and whether ours is better."""
    header = ("metric", left, right, "ours/theirs", "")
    lines = [header]
    for name, ours, theirs, higher in rows:
        ratio, verdict = None, ""
        if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs:
            ratio = ours / theirs
            if higher is not None:
                verdict = "better" if (ratio > 1) == higher and ratio != 1 else "worse" if ratio != 1 else "same"
        lines.append((name, _fmt(ours), _fmt(theirs), f"{ratio:.2f}x" if ratio is not None else "-", verdict))
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(header))]
    for j, r in enumerate(lines):
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            print("  ".join("-" * w for w in widths))
