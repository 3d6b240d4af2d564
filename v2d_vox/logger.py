"""What the driver reports while a job runs: progress bars that stay clean in a log file, and the one
place wandb is called (config at the start, each shard's counts and throughput as it finishes, the
totals, status counts and a table of the top errors at the end)."""

from __future__ import annotations

import netrc
import os
import sys
import time
from typing import Any, TextIO
from urllib.parse import urlparse

from tqdm import tqdm

from .config import Job

_QUIET_MODES = ("offline", "disabled", "dryrun")
LOG_EVERY_S = 30.0  # without a terminal, one progress line at most this often


def _has_wandb_login() -> bool:
    """An API key in the environment or in ~/.netrc (where ``wandb login`` saves it); offline needs none."""
    if os.environ.get("WANDB_MODE", "").lower() in _QUIET_MODES or os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class JobLogger:
    """An optional wandb run for one job, fed by the driver only (workers never talk to wandb)."""

    def __init__(self, job: Job, distributor: str, enable_wandb: bool = False, wandb_project: str = "v2d_vox"):
        self.run = None
        if not enable_wandb:
            return
        import wandb  # optional extra: imported only when asked for

        if not _has_wandb_login():
            print("wandb: not logged in (run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline); "
                  "continuing without wandb", file=sys.stderr, flush=True)
            return
        config = {"job": job.to_dict(), "distributor": distributor}
        try:
            self.run = wandb.init(project=wandb_project, config=config, job_type=job.task, reinit="create_new")
        except wandb.errors.Error as e:
            print(f"wandb: {str(e).splitlines()[0]}; continuing without wandb", file=sys.stderr, flush=True)

    def shard_done(self, shard_id: int, stats: dict[str, Any]) -> None:
        if self.run is None:
            return
        counts = {k: v for k, v in stats.items()
                  if type(v) in (int, float) and not k.endswith("_time") and k != "shard_id"}
        for name in ("seconds", "media_seconds"):  # busy seconds per stage; media seconds in and out
            counts.update({f"{name}/{k}": v for k, v in (stats.get(name) or {}).items()})
        rate = stats["count"] / stats["duration"] if stats.get("duration") else None
        self.run.log({"shard/id": shard_id, **{f"shard/{k}": v for k, v in counts.items()},
                      "shard/samples_per_s": rate})

    def finish(self, summary: dict[str, Any]) -> None:
        """Totals, status counts and the top errors table; then the run ends."""
        if self.run is None:
            return
        import wandb

        totals = {f"total/{k}": summary[k] for k in ("samples", "outputs", "bytes_downloaded", "bytes_written",
                                                     "shards_done", "samples_per_s")}
        status = {f"status/{k}": v for k, v in summary.get("status", {}).items()}
        errors = wandb.Table(columns=["error", "count"],
                             data=[[msg, n] for msg, n in summary.get("top_errors", {}).items()])
        self.run.log({**totals, **status, "top_errors": errors})
        self.run.summary.update({**totals, **status, "shards_failed": len(summary["shards_failed"])})
        self.run.finish()


class Progress:
    """Shards (and, where the distributor reports them, samples) done so far. On a terminal these are
    tqdm bars; otherwise (a log file, a pipe) plain lines with no cursor movement, at most one every
    ``LOG_EVERY_S`` seconds and one at the end."""

    def __init__(self, total: int, done: int, samples: int | None, show_samples: bool, enabled: bool,
                 stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = enabled and self.stream.isatty()
        self.enabled, self.total, self.done, self.samples_total = enabled, total, done, samples
        self.samples_done, self.last = 0, time.monotonic()
        self.show_samples = show_samples
        if self.tty:
            self.bar = tqdm(total=total, initial=done, desc="shards", unit="shard", file=self.stream)
            self.sbar = tqdm(total=samples, desc="samples", unit="sample", position=1, file=self.stream,
                             disable=not show_samples)

    def sample(self) -> None:
        self.samples_done += 1
        if self.tty:
            self.sbar.update(1)

    def shard(self) -> None:
        self.done += 1
        if self.tty:
            self.bar.update(1)
        elif self.enabled and time.monotonic() - self.last >= LOG_EVERY_S:
            self._line()

    def write(self, message: str) -> None:
        """A message on stdout (with the summary) that does not break the bars."""
        if self.tty:
            tqdm.write(message, file=sys.stdout)
        else:
            print(message, flush=True)

    def _line(self) -> None:
        self.last = time.monotonic()
        samples = f", samples {self.samples_done}" + (f"/{self.samples_total}" if self.samples_total else "")
        print(f"progress: shards {self.done}/{self.total}{samples if self.show_samples else ''}",
              file=self.stream, flush=True)

    def close(self) -> None:
        """Idempotent: an interrupted run closes the bars before its summary, and again on the way out."""
        if self.tty:
            self.sbar.close()
            self.bar.close()
        elif self.enabled:
            self._line()
        self.tty = self.enabled = False


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"shards: {s['shards_done']}/{s['shards_total']} done ({s['shards_skipped']} already done before), "
        f"{len(s['shards_failed'])} failed{': ' + str(s['shards_failed']) if s['shards_failed'] else ''}",
        "samples: " + (", ".join(f"{k}={v}" for k, v in s.get("status", {}).items()) or str(s["samples"]))
        + f"; outputs written={s['outputs']}",
        f"wall: {s['wall_seconds']} s ({s['samples_per_s']} samples/s in this run)",
    ]
    lines += [f"  {n:>6} x {msg}" for msg, n in s.get("top_errors", {}).items()]
    return "\n".join(lines)
