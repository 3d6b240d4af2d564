"""The output folder's layout, the one place its file names are spelled.

::

    OUT/
      NNNNN.tar | NNNNN/ | NNNNN_media.parquet   samples (webdataset | files | parquet output format)
      NNNNN.parquet                               one metadata row per input row, whatever its status
      NNNNN_stats.json                            written last: its presence is what makes the shard done
      _inputs/NNNNN.arrow, _inputs/_done.json     the input shards and their signature (download)
      _job.json                                   the job, so any worker rebuilds it and a rerun resumes
      _job_summary.json                           the job's totals over every done shard, rewritten by each run
                                                  (not ``*_stats.json``: scripts that glob shard stats skip it)
      _retry/NNNNN.tar, _retry/NNNNN.parquet      a shard's outputs before ``retry`` rewrites it (kept until done)
      _tmp/                                       files being written, renamed into place when complete

Every file is written under ``_tmp/`` and renamed into place, so a killed job never leaves a file that
looks finished; ``clear`` deletes what v2d_vox wrote and nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import fsspec

INPUTS = "_inputs"
TMP = "_tmp"
JOB = "_job.json"
JOB_SUMMARY = "_job_summary.json"
RETRY = "_retry"
TAR = ".tar"
STATS = "_stats.json"
MEDIA_PARQUET = "_media.parquet"
_OURS = re.compile(r"^\d{5}(\.tar|\.parquet|_media\.parquet|_stats\.json)?$")
# Any width: ours are 5 digits, video2dataset's and other tools' input shards may not be.
STATS_RE = re.compile(r"^(\d+)_stats\.json$")
TAR_RE = re.compile(r"^(\d+)\.tar$")


def shard_name(shard_id: int) -> str:
    return f"{shard_id:05d}"


def stats_name(shard_id: int) -> str:
    return shard_name(shard_id) + STATS


def tar_name(shard_id: int) -> str:
    return shard_name(shard_id) + TAR


def media_parquet_name(shard_id: int) -> str:
    return shard_name(shard_id) + MEDIA_PARQUET


def is_stats_name(name: str) -> bool:
    return STATS_RE.match(name) is not None


def stats_of_tar(name: str) -> str:
    """The stats file beside a tar named ``NNN.tar`` (any width: video2dataset folders too)."""
    return name.removesuffix(TAR) + STATS


def metadata_name(shard_id: int) -> str:
    return f"{shard_id:05d}.parquet"


def input_name(shard_id: int) -> str:
    return f"{INPUTS}/{shard_id:05d}.arrow"


class Layout:
    """An output folder (local path or fsspec URL) and the operations every writer needs on it."""

    def __init__(self, folder: str):
        self.folder = folder
        self.fs, self.root = fsspec.core.url_to_fs(folder)

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def tmp(self, name: str) -> str:
        """Where ``name`` is written before ``commit`` renames it into place."""
        self.fs.makedirs(f"{self.root}/{TMP}", exist_ok=True)
        return f"{self.root}/{TMP}/{name.replace('/', '_')}"

    def commit(self, name: str) -> None:
        self.fs.mv(self.tmp(name), self.path(name), recursive=True)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def write_json(self, name: str, obj: Any) -> None:
        """Atomically: a reader sees the old file or the whole new one, never a torn one."""
        with self.fs.open(self.tmp(name), "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True, default=str)
        self.commit(name)

    def read_json(self, name: str) -> Any:
        return json.loads(self.fs.cat(self.path(name)))

    def is_done(self, shard_id: int) -> bool:
        return self.exists(stats_name(shard_id))

    def done(self) -> set[int]:
        """Shards with stats, from one listing (one request, also on object stores)."""
        if not self.fs.exists(self.root):
            return set()
        names = (p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))
        return {int(m[1]) for m in map(STATS_RE.match, names) if m and m[0] == stats_name(int(m[1]))}

    def read_stats(self, shard_id: int) -> dict[str, Any]:
        return self.read_json(stats_name(shard_id))

    def clear_stale(self, shard_id: int) -> None:
        """Drop temp files a killed attempt at this shard left behind."""
        for stale in self.fs.glob(f"{self.root}/{TMP}/{shard_name(shard_id)}*"):
            self.fs.rm(stale, recursive=True)

    def clear(self) -> None:
        """Delete what v2d_vox wrote here (shards, inputs, job, temp files), and nothing else."""
        if not self.fs.exists(self.root):
            return
        for path in self.fs.ls(self.root, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if _OURS.match(name) or name in (INPUTS, TMP, JOB, JOB_SUMMARY, RETRY):
                self.fs.rm(path, recursive=True)

    def tidy(self) -> None:
        """Remove ``_tmp/`` once nothing is left in it."""
        tmp = self.path(TMP)
        if self.fs.exists(tmp) and not self.fs.ls(tmp):
            self.fs.rm(tmp, recursive=True)
