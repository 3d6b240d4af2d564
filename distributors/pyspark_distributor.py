"""PySpark: one Spark task per shard, on the active SparkSession (a cluster under ``spark-submit``) or a
``local[N,F]`` session created here.

Shards go in subjobs of ``subjob_size`` (one Spark job each, so a million shards are not one giant
stage), two subjobs in flight: with Spark's FIFO scheduler the second fills the executors the first
leaves idle, so there is no straggler barrier between subjobs, and progress moves as each completes.

Spark reruns a failed task up to ``spark.task.maxFailures`` times (``F`` in ``local[N,F]``); a task that
fails its last attempt returns the error instead of raising, because a task that exhausts its retries
aborts its whole stage, which would kill the healthy shards of the subjob with it. The runner then
resubmits the shards that are not done, as it does for every distributor.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from v2d_vox.config import Job
from v2d_vox.worker import process_shard

REPORTS_SAMPLES = False


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


def run(job: Job, shard_ids: list[int], *, on_sample: Callable[[], None] | None = None,
        subjob_size: int = 100, master: str | None = None,
        task_max_failures: int = 2) -> Iterator[tuple[int, str | None]]:
    """``master`` and ``task_max_failures`` only apply when no SparkSession is active."""
    sc = session(master, task_max_failures).sparkContext
    task = _shard_task(job, _max_failures(sc))

    def subjob(ids: list[int]) -> dict[int, str]:
        sc.setJobDescription(f"v2d_vox shards {ids[0]}..{ids[-1]}")
        try:
            return {sid: err for sid, err in sc.parallelize(ids, len(ids)).map(task).collect() if err}
        except Exception as e:  # the stage aborted (executors lost, a BaseException...)
            tqdm.write(f"spark: the subjob of shards {ids[0]}..{ids[-1]} aborted: {str(e)[:1000]}")
            return dict.fromkeys(ids, "its subjob aborted")

    with ThreadPoolExecutor(2) as pool:
        chunks = [shard_ids[i:i + subjob_size] for i in range(0, len(shard_ids), subjob_size)]
        futures = {pool.submit(subjob, chunk): chunk for chunk in chunks}
        for future in as_completed(futures):
            errors = future.result()
            for sid in futures[future]:
                yield sid, errors.get(sid)
