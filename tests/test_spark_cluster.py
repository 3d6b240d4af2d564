"""The pyspark distributor on a real Spark standalone cluster: a master and two one-core workers on 127.0.0.1,
started from the ``pyspark`` wheel's ``spark-class`` for this module and reached through
``distributor_args={"master": "spark://127.0.0.1:PORT"}``. Its shards equal the multiprocessing run's byte for
byte, also when a worker (a whole node: worker, executor and Python workers) is killed in the middle of a job."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import DATA, SparkCluster, shard_outputs

import v2d_vox

REPO = Path(__file__).resolve().parent.parent
# shards of 2; shard 1 holds the Sleep target (imageio__realshort)
FILES = ["fsdd__3_george_7.wav", "deb-sonic-pi-samples__misc_crow.flac", "imageio__realshort.mp4",
         "lhotse__common_voice_en_651325.mp3", "pyscenedetect__delayed_start.mp4", "missing/nothing_here.wav",
         "pc-avs__Input_00010.mp4", "tflite-micro-speech__yes_1000ms.wav"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spark_cluster")


@pytest.fixture(scope="module")
def config(folder) -> dict:
    """Shard 1 sleeps (and says in which process) while the switch file exists; without it, a no-op."""
    return {"subsamplers": [{"name": "tests.fault_subs:Sleep", "url_contains": "imageio__realshort",
                             "switch": str(folder / "slow"), "pid_file": str(folder / "sleeper.pid"),
                             "seconds": 600}]}


@pytest.fixture(scope="module")
def table(folder) -> Path:
    path = folder / "urls.txt"
    path.write_text("".join(f"{DATA / f}\n" for f in FILES))
    return path


@pytest.fixture(scope="module")
def cluster(folder):
    """Executors import this checkout (PYTHONPATH in the workers' environment), also in a fresh CI clone."""
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is not None:  # a local session: jobs here must run on the cluster
        SparkSession.getActiveSession().stop()
    (folder / "spark").mkdir()
    cluster = SparkCluster(folder / "spark", workers=2, cores=1, memory="1g", pythonpath=REPO)
    yield cluster
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    cluster.stop()


@pytest.fixture(scope="module")
def reference(table, config, folder) -> Path:
    out = folder / "mp"
    summary = v2d_vox.download(str(table), str(out), samples_per_shard=2, config=config, processes_count=2,
                               progress=False)
    assert summary["shards_done"] == 4 and summary["shards_failed"] == []
    assert summary["status"]["failed_to_download"] == 1
    return out


def _running(pid: int) -> bool:
    """Exists and is not a zombie (a killed orphan stays one until init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _download(table: Path, out: Path, config: dict, master: str) -> dict:
    return v2d_vox.download(str(table), str(out), samples_per_shard=2, config=config, distributor="pyspark",
                            distributor_args={"master": master, "subjob_size": 2}, max_shard_retry=0,
                            progress=False)


def test_standalone_cluster_same_bytes_as_multiprocessing(cluster, table, config, reference, tmp_path):
    summary = _download(table, tmp_path, config, cluster.url)
    assert summary["shards_done"] == 4 and summary["shards_failed"] == []
    from pyspark.sql import SparkSession

    assert SparkSession.getActiveSession().sparkContext.master == cluster.url
    (app,) = cluster.state()["activeapps"]
    assert app["cores"] == 2  # one executor on each worker
    want = shard_outputs(reference)
    assert sorted(shard_outputs(tmp_path)) == sorted(want)
    for name, content in shard_outputs(tmp_path).items():
        assert content == want[name], name


def test_killed_worker_job_completes_with_every_shard_once(cluster, table, config, reference, folder, tmp_path):
    """The node running shard 1 dies (SIGKILL to its worker, executor and Python workers): Spark reruns the
    task on the other worker, the stale temp files of the killed attempt are cleared, and the run needs no
    resubmission of ours (max_shard_retry=0)."""
    switch, pid_file = Path(config["subsamplers"][0]["switch"]), Path(config["subsamplers"][0]["pid_file"])
    switch.touch()
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(_download(table, tmp_path, config, cluster.url)))
    run.start()
    deadline = time.time() + 300
    while not (pid_file.exists() and pid_file.read_text()):
        assert run.is_alive() and time.time() < deadline, "shard 1 did not start"
        time.sleep(0.2)
    pid = int(pid_file.read_text())
    cluster.kill_node(pid)
    switch.unlink()  # the rerun of shard 1 goes straight through
    run.join(300)
    assert not run.is_alive()
    assert not _running(pid)
    assert len(cluster.alive_workers(cluster.state())) == 1  # the master saw the node go
    assert result["shards_done"] == 4 and result["shards_failed"] == []
    got, want = shard_outputs(tmp_path), shard_outputs(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    keys = [r["key"] for p in sorted(tmp_path.glob("0*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(keys) == len(FILES) == len(set(keys))  # every row once, none twice
    assert not (tmp_path / "_tmp").exists()  # the killed attempt's partial files were cleared
