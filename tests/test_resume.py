"""A job killed with SIGKILL mid-run and rerun in incremental mode equals a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support import DATA, media_files

import v2d_vox

SCRIPT = """
import sys, v2d_vox
v2d_vox.download(sys.argv[1], sys.argv[2], samples_per_shard=2, processes_count=2, thread_count=2,
                 progress=False, timeout=5)
"""


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_sigkill_then_incremental_rerun_equals_clean_run(http_server, tmp_path):
    names = media_files()
    urls = [f"{http_server}/slow/150/{n}" for n in names] + [f"{http_server}/missing/{n}" for n in names[:2]]
    table = tmp_path / "urls.txt"
    table.write_text("\n".join(urls))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(table), str(out)], start_new_session=True)
    deadline = time.time() + 60
    while len(list(out.glob("*_stats.json"))) < 2 and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob("*_stats.json")))
    assert 2 <= done_before < 9, "the kill should land mid-run"

    summary = v2d_vox.download(str(table), str(out), samples_per_shard=2, progress=False, timeout=5)
    assert summary["shards_skipped"] == done_before and summary["shards_done"] == 9
    clean = tmp_path / "clean"
    v2d_vox.download(str(table), str(clean), samples_per_shard=2, progress=False, timeout=5)

    assert _snapshot(out) == _snapshot(clean)
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(p.name for p in clean.glob("*.parquet"))
    assert not (out / "_tmp").exists()
    import pyarrow.parquet as pq

    keys = [k for p in sorted(out.glob("*.parquet")) for k in pq.read_table(p).column("key").to_pylist()]
    assert len(keys) == len(set(keys)) == len(urls)


def test_overwrite_clears_only_our_files(tmp_path):
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / n) for n in media_files()[:4]))
    out = tmp_path / "out"
    v2d_vox.download(str(tmp_path / "u.txt"), str(out), samples_per_shard=2, progress=False)
    (out / "notes.md").write_text("mine")
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / n) for n in media_files()[4:7]))
    summary = v2d_vox.download(str(tmp_path / "u.txt"), str(out), samples_per_shard=2, progress=False,
                               incremental_mode="overwrite")
    assert summary["shards_total"] == 2 and summary["shards_skipped"] == 0
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert (out / "notes.md").read_text() == "mine"


def test_script_without_main_guard_finishes(tmp_path):
    """video2dataset loops forever here (spawned workers re-run the script); we must just finish."""
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / n) for n in media_files()[:4]))
    script = tmp_path / "noguard.py"
    script.write_text(f"import v2d_vox\nv2d_vox.download({str(tmp_path / 'u.txt')!r}, {str(tmp_path / 'o')!r}, "
                      "samples_per_shard=2, processes_count=2, progress=False)\nprint('finished')\n")
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("finished") == 1
    assert len(list((tmp_path / "o").glob("*_stats.json"))) == 2


def test_wandb_offline_run_gets_the_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / n) for n in media_files()[:4]))
    summary = v2d_vox.download(str(tmp_path / "u.txt"), str(tmp_path / "o"), samples_per_shard=2, progress=False,
                               enable_wandb=True, wandb_project="v2d-test")
    assert summary["samples"] == 4
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    keys = (b"shards_done", b"samples_per_s", b"bytes_downloaded", b"v2d-test")
    deadline = time.time() + 60  # wandb's service process may still be flushing the file on a busy machine
    while not all(k in (record := runs[0].read_bytes()) for k in keys) and time.time() < deadline:
        time.sleep(0.5)
    for key in keys:  # wandb's protobuf log: our keys are stored as plain strings
        assert key in record, key
