"""Job-level accounting: per-shard stats as they finish, an optional wandb run, a final summary."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import fsspec

from .errors import STATUSES


def load_stats(output_folder: str, shard_ids: list[int]) -> dict[int, dict[str, Any]]:
    fs, root = fsspec.core.url_to_fs(output_folder)
    out = {}
    for sid in shard_ids:
        path = f"{root}/{sid:05d}_stats.json"
        if fs.exists(path):
            out[sid] = json.loads(fs.cat(path))
    return out


class JobLogger:
    def __init__(self, output_folder: str, config: dict[str, Any], enable_wandb: bool = False,
                 wandb_project: str = "v2d_vox"):
        self.output_folder = output_folder
        self.start = time.time()
        self.run = None
        if enable_wandb:
            import wandb  # optional extra: imported only when asked for

            self.run = wandb.init(project=wandb_project, config=config, dir=None, reinit=True)

    def shard_done(self, shard_id: int, stats: dict[str, Any] | None) -> None:
        if self.run is not None and stats:
            self.run.log({"shard_id": shard_id, "samples_per_s": stats["count"] / max(stats["duration"], 1e-9),
                          **{k: stats[k] for k in ("count", "successes", "outputs", "bytes_downloaded")}})

    def summary(self, shard_ids: list[int], skipped: list[int]) -> dict[str, Any]:
        stats = load_stats(self.output_folder, shard_ids)
        wall = time.time() - self.start
        statuses = Counter({s: sum(st.get(s if s != "success" else "successes", 0) for st in stats.values())
                            for s in STATUSES})
        errors = Counter()
        for st in stats.values():
            errors.update({k: v for k, v in st["status_dict"].items() if k != "success"})
        count = sum(st["count"] for st in stats.values())
        ran = sum(st["count"] for sid, st in stats.items() if sid not in set(skipped))
        summary = {
            "shards_total": len(shard_ids), "shards_done": len(stats), "shards_skipped": len(skipped),
            "shards_failed": sorted(set(shard_ids) - set(stats)), "samples": count,
            "status": dict(statuses), "outputs": sum(st["outputs"] for st in stats.values()),
            "top_errors": dict(errors.most_common(10)), "wall_seconds": round(wall, 2),
            "samples_per_s": round(ran / wall, 2) if wall > 0 else None,
        }
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
