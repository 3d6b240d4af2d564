"""Job-level accounting: per-shard stats as they finish, an optional wandb run, a final summary."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .config import Job
from .errors import STATUSES, SUCCESS
from .layout import Layout


class JobLogger:
    def __init__(self, job: Job, distributor: str, enable_wandb: bool = False, wandb_project: str = "v2d_vox"):
        self.job, self.layout = job, Layout(job.output_folder)
        self.start = time.time()
        self.run = None
        if enable_wandb:
            import wandb  # optional extra: imported only when asked for

            config = {"job": job.to_dict(), "distributor": distributor}
            self.run = wandb.init(project=wandb_project, config=config, dir=None, reinit=True)

    def shard_done(self, shard_id: int, stats: dict[str, Any]) -> None:
        if self.run is not None:
            counts = {k: v for k, v in stats.items() if type(v) in (int, float) and not k.endswith("_time")}
            self.run.log({**counts, "samples_per_s": stats["count"] / max(stats["duration"], 1e-9)})

    def summary(self, shard_ids: list[int], skipped: list[int]) -> dict[str, Any]:
        done = self.layout.done()
        stats = {sid: self.layout.read_stats(sid) for sid in shard_ids if sid in done}
        wall = time.time() - self.start
        ran = sum(st["count"] for sid, st in stats.items() if sid not in set(skipped))
        summary: dict[str, Any] = {
            "shards_total": len(shard_ids), "shards_done": len(stats), "shards_skipped": len(skipped),
            "shards_failed": sorted(set(shard_ids) - set(stats)),
            "samples": sum(st["count"] for st in stats.values()),
            "outputs": sum(st["outputs"] for st in stats.values()), "wall_seconds": round(wall, 2),
            "samples_per_s": round(ran / wall, 2) if wall > 0 else None,
        }
        if self.job.task == "curate":
            summary["status"] = {s: sum(st.get("successes" if s == SUCCESS else s, 0) for st in stats.values())
                                 for s in STATUSES}
            errors = Counter()
            for st in stats.values():
                errors.update({k: v for k, v in st["status_dict"].items() if k != SUCCESS})
            summary["top_errors"] = dict(errors.most_common(10))
        if self.run is not None:
            self.run.summary.update({k: v for k, v in summary.items() if k != "top_errors"})
            self.run.finish()
        return summary


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"shards: {s['shards_done']}/{s['shards_total']} done ({s['shards_skipped']} already done before), "
        f"{len(s['shards_failed'])} failed{': ' + str(s['shards_failed']) if s['shards_failed'] else ''}",
        "samples: " + ", ".join(f"{k}={v}" for k, v in s["status"].items()) + f"; outputs written={s['outputs']}",
        f"wall: {s['wall_seconds']} s ({s['samples_per_s']} samples/s in this run)",
    ]
    lines += [f"  {n:>6} x {msg}" for msg, n in s["top_errors"].items()]
    return "\n".join(lines)
