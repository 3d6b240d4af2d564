"""PySpark: one Spark task per shard, on the active SparkSession (a cluster under ``spark-submit``) or a
``local[N,F]`` session created here.

Shards go in subjobs of ``subjob_size`` (one Spark job each, so a million shards are not one giant
stage), two subjobs in flight: with Spark's FIFO scheduler the second fills the executors the first
leaves idle, so there is no straggler barrier between subjobs, and progress moves as each completes.

Retries happen at two levels. Spark reruns a failed task up to ``spark.task.maxFailures`` times (``F``
in ``local[N,F]``); a task that fails its last attempt returns the error instead of raising, because a
task that exhausts its retries aborts its whole stage, which would kill the healthy shards of the
subjob with it. Then our loop resubmits shards without ``_stats.json`` up to ``max_shard_retry`` times.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

import fsspec
from tqdm import tqdm

from v2d_vox.config import Job
from v2d_vox.worker import process_shard


def session(master: str | None = None, task_max_failures: int = 2):
    """The active SparkSession, else a new ``local[cores, task_max_failures]`` one on this machine."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or f"local[{os.cpu_count() or 1},{task_max_failures}]"
    spark = (SparkSession.builder.master(master).appName("v2d_vox")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # our bar, not Spark's
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _max_failures(sc) -> int:
    """Attempts per task: local[N] runs each task once and local[N,F] up to F times (the conf is
    ignored there); a cluster uses spark.task.maxFailures."""
    if sc.master.startswith("local") and not sc.master.startswith("local-cluster"):
        m = re.fullmatch(r"local\[[^,]+,(\d+)\]", sc.master)
        return int(m[1]) if m else 1
    return int(sc.getConf().get("spark.task.maxFailures", "4"))


def _shard_task(job: Job, max_failures: int) -> Callable[[int], tuple[int, str | None]]:
    def task(shard_id: int) -> tuple[int, str | None]:
        from pyspark import TaskContext

        try:
            process_shard(job, shard_id)
            return shard_id, None
        except Exception as e:
            if TaskContext.get().attemptNumber() + 1 < max_failures:
                raise  # Spark retries it
            return shard_id, f"{type(e).__name__}: {str(e)[:500]}"

    return task


def run(job: Job, shard_ids: list[int], on_shard: Callable[[int, dict | None], None], *,
        max_shard_retry: int = 1, subjob_size: int = 100, master: str | None = None,
        task_max_failures: int = 2, progress: bool = True) -> list[int]:
    """``master`` and ``task_max_failures`` only apply when no SparkSession is active."""
    sc = session(master, task_max_failures).sparkContext
    task = _shard_task(job, _max_failures(sc))
    fs, root = fsspec.core.url_to_fs(job.output_folder)

    def subjob(ids: list[int]) -> dict[int, str]:
        sc.setJobDescription(f"v2d_vox shards {ids[0]}..{ids[-1]}")
        try:
            return {sid: err for sid, err in sc.parallelize(ids, len(ids)).map(task).collect() if err}
        except Exception as e:  # the stage aborted (executors lost, a BaseException...)
            tqdm.write(f"spark: the subjob of shards {ids[0]}..{ids[-1]} aborted: {str(e)[:1000]}")
            return dict.fromkeys(ids, "its subjob aborted")

    todo = list(shard_ids)
    with tqdm(total=len(todo), desc="shards", unit="shard", disable=not progress) as bar:
        for attempt in range(max_shard_retry + 1):
            failed = []
            with ThreadPoolExecutor(2) as pool:
                chunks = [todo[i:i + subjob_size] for i in range(0, len(todo), subjob_size)]
                futures = {pool.submit(subjob, chunk): chunk for chunk in chunks}
                for future in as_completed(futures):
                    errors = future.result()
                    for sid in futures[future]:
                        path = f"{root}/{sid:05d}_stats.json"
                        if fs.exists(path):  # done iff stats exist, whatever the task said
                            bar.update(1)
                            on_shard(sid, json.loads(fs.cat(path)))
                        else:
                            failed.append(sid)
                            tqdm.write(f"shard {sid:05d} failed (attempt {attempt + 1}): "
                                       f"{errors.get(sid, 'no stats written')}")
            todo = sorted(failed)
            if not todo:
                break
    return todo
