"""Distributors on real engines: PySpark ``local[2,2]`` and a real one-node Slurm cluster (started by
``.ci/slurm.sh`` or found running). The same table gives byte-identical shards through all three;
a cancelled Slurm task is reported and redone on rerun; a crashed Spark task is retried."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import DATA, shard_outputs

import v2d_vox

REPO = Path(__file__).resolve().parent.parent
# shards of 3: shard 0 holds the Crash target (misc_crow), shard 1 the Sleep target (imageio__realshort)
FILES = ["fsdd__3_george_7.wav", "deb-sonic-pi-samples__misc_crow.flac", "lhotse__common_voice_en_651325.mp3",
         "imageio__realshort.mp4", "pyscenedetect__delayed_start.mp4", "fsdd__8_jackson_21.wav",
         "decord__corrupted.mp4", "missing/nothing_here.wav", "pc-avs__Input_00010.mp4",
         "tflite-micro-speech__yes_1000ms.wav"]


@pytest.fixture(scope="module", autouse=True)
def repo_on_pythonpath():
    """Spark workers and Slurm tasks import ``tests.fault_subs`` from the repo root."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), old) if p)
    yield
    if old is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "urls.txt"
    path.write_text("".join(f"{DATA / f}\n" for f in FILES))
    return path


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from distributors.pyspark_distributor import session

    spark = session("local[2,2]")  # 2 cores, each task tried up to 2 times
    yield spark
    spark.stop()


def _slurm_up() -> bool:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True) \
        if shutil.which("sinfo") else None
    return bool(out and out.returncode == 0 and any(
        s.startswith(("idle", "mixed", "allocated")) for s in out.stdout.split()))


@pytest.fixture(scope="session")
def slurm() -> None:
    """A running cluster, else one started by .ci/slurm.sh (root only); else skip, loudly."""
    if _slurm_up():
        return
    if os.geteuid() != 0:
        pytest.skip("SLURM TESTS SKIPPED: no Slurm cluster running and not root to start one with .ci/slurm.sh")
    out = subprocess.run([str(REPO / ".ci" / "slurm.sh")], capture_output=True, text=True, timeout=300)
    if out.returncode or not _slurm_up():
        pytest.skip(f"SLURM TESTS SKIPPED: .ci/slurm.sh could not start a cluster: {out.stderr[-2000:]}")


def _download(table: Path, out: Path, distributor: str, **kwargs):
    return v2d_vox.download(str(table), str(out), samples_per_shard=3, distributor=distributor,
                            progress=False, **kwargs)


@pytest.fixture(scope="module")
def reference(table, tmp_path_factory) -> Path:
    """The table downloaded, then reprocessed, by multiprocessing."""
    out = tmp_path_factory.mktemp("mp")
    summary = _download(table, out / "download", "multiprocessing", processes_count=2)
    assert summary["shards_failed"] == [] and summary["shards_done"] == 4
    assert summary["status"]["failed_to_download"] == 1  # the missing file keeps its row
    v2d_vox.reprocess(str(out / "download"), str(out / "reprocess"), processes_count=2, progress=False)
    return out


def _assert_same(got: dict[str, object], want: dict[str, object]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name


DISTRIBUTED = [("pyspark", {"subjob_size": 2}), ("slurm", {"shards_per_task": 2, "poll_seconds": 0.5})]


@pytest.mark.parametrize("distributor, args", DISTRIBUTED)
def test_same_shards_as_multiprocessing(distributor, args, request, table, reference, tmp_path):
    request.getfixturevalue("spark" if distributor == "pyspark" else "slurm")
    summary = _download(table, tmp_path, distributor, distributor_args=args)
    assert summary["shards_failed"] == [] and summary["shards_done"] == 4
    _assert_same(shard_outputs(tmp_path), shard_outputs(reference / "download"))


@pytest.mark.parametrize("distributor, args", DISTRIBUTED)
def test_reprocess_same_shards_as_multiprocessing(distributor, args, request, reference, tmp_path):
    """Distributors do not care where a shard's samples come from: existing tars work the same."""
    request.getfixturevalue("spark" if distributor == "pyspark" else "slurm")
    summary = v2d_vox.reprocess(str(reference / "download"), str(tmp_path), distributor=distributor,
                                distributor_args=args, progress=False)
    assert summary["shards_failed"] == [] and summary["shards_done"] == 4
    _assert_same(shard_outputs(tmp_path), shard_outputs(reference / "reprocess"))


@pytest.mark.parametrize("distributor, args", DISTRIBUTED)
def test_scan_and_write_clean_on_every_distributor(distributor, args, request, reference, tmp_path):
    """scan is a job like the others: the same report and clean shards on every distributor."""
    request.getfixturevalue("spark" if distributor == "pyspark" else "slurm")
    checks = {"min_duration": 1.5, "require_audio": True}
    want = v2d_vox.scan(str(reference / "download"), str(tmp_path / "mp"), write_clean=str(tmp_path / "mp_clean"),
                        processes_count=2, progress=False, **checks)
    got = v2d_vox.scan(str(reference / "download"), str(tmp_path / "d"), write_clean=str(tmp_path / "d_clean"),
                       distributor=distributor, distributor_args=args, progress=False, **checks)
    assert want["bad_samples"] > 0 and want["clean"]["samples"] > 0
    for summary in (want, got):
        summary.pop("wall_seconds")
        summary["clean"].pop("folder")
    assert got == want
    assert (pq.read_table(tmp_path / "d" / "bad_samples.parquet").to_pylist()
            == pq.read_table(tmp_path / "mp" / "bad_samples.parquet").to_pylist())
    tars = sorted(p.name for p in (tmp_path / "mp_clean").glob("*.tar"))
    assert tars and tars == sorted(p.name for p in (tmp_path / "d_clean").glob("*.tar"))
    for name in tars:
        assert (tmp_path / "d_clean" / name).read_bytes() == (tmp_path / "mp_clean" / name).read_bytes()


@pytest.mark.parametrize("crashes, max_shard_retry", [(1, 0), (2, 1)])
def test_spark_retries_a_crashed_shard(spark, table, tmp_path, crashes, max_shard_retry):
    """1 crash: Spark's own task retry (local[2,2]) saves it; 2 crashes: our resubmission does."""
    counter = tmp_path / "attempts"
    config = {"subsamplers": [{"name": "tests.fault_subs:Crash", "url_contains": "misc_crow",
                               "counter": str(counter), "times": crashes}]}
    summary = _download(table, tmp_path / "out", "pyspark", config=config, max_shard_retry=max_shard_retry)
    assert summary["shards_failed"] == [] and summary["shards_done"] == 4
    assert counter.read_text() == "x" * (crashes + 1)


def test_slurm_cancelled_task_fails_its_shard_and_rerun_redoes_only_it(slurm, table, tmp_path, capsys):
    switch = tmp_path / "slow"
    switch.touch()
    out = tmp_path / "out"
    config = {"subsamplers": [{"name": "tests.fault_subs:Sleep", "url_contains": "imageio__realshort",
                               "switch": str(switch), "seconds": 120}]}  # shard 1 sleeps
    args = {"poll_seconds": 0.5, "job_name": "v2d_cancel_test"}
    result = {}
    run = threading.Thread(target=lambda: result.update(
        _download(table, out, "slurm", config=config, max_shard_retry=0, distributor_args=args)))
    run.start()
    deadline = time.time() + 60
    while not ((out / "_tmp" / "00001.tar").exists() and list((out / "_slurm").glob("*.sbatch"))):
        assert time.time() < deadline, "shard 1 did not start"
        time.sleep(0.2)
    (job_id,) = (p.stem for p in (out / "_slurm").glob("*.sbatch"))
    subprocess.run(["scancel", f"{job_id}_1"], check=True)  # array task 1 runs shard 1, now asleep
    run.join(60)
    assert not run.is_alive()
    assert result["shards_failed"] == [1] and result["shards_done"] == 3
    assert f"task {job_id}_1 (shards [1]) ended CANCELLED" in capsys.readouterr().out

    switch.unlink()
    summary = _download(table, out, "slurm", config=config, max_shard_retry=0, distributor_args=args)
    assert summary["shards_failed"] == [] and summary["shards_skipped"] == 3 and summary["shards_done"] == 4
    scripts = {p.stem: p.read_text() for p in (out / "_slurm").glob("*.sbatch")}
    assert len(scripts) == 2 and "shards=(1)" in scripts[max(scripts, key=int)]


def test_slurm_multi_shard_tasks_run_cpus_per_task_processes(slurm, table, tmp_path):
    """shards_per_task=2, cpus_per_task=2: each array task runs its two shards at once, in two processes."""
    meet = tmp_path / "meet"
    config = {"subsamplers": [{"name": "tests.fault_subs:Rendezvous", "folder": str(meet), "count": 2,
                               "seconds": 30}]}
    args = {"shards_per_task": 2, "cpus_per_task": 2, "poll_seconds": 0.5}
    summary = _download(table, tmp_path / "out", "slurm", config=config, distributor_args=args, max_shard_retry=0)
    assert summary["shards_failed"] == [] and summary["shards_done"] == 4
    (script,) = (tmp_path / "out" / "_slurm").glob("*.sbatch")
    assert "#SBATCH --cpus-per-task=2" in script.read_text() and "shards=('0 1' '2 3')" in script.read_text()
    tasks = sorted(meet.iterdir())
    assert len(tasks) == 2 and all(len(list(t.iterdir())) == 2 for t in tasks)  # 2 tasks x 2 processes
    logs = sorted((tmp_path / "out" / "_slurm").glob("*.out"))
    assert len(logs) == 2 and all("in 2 process(es)" in log.read_text() for log in logs)


def test_slurm_cancelled_multi_shard_task_is_resubmitted(slurm, table, tmp_path):
    """A lost node, simulated by cancelling an array task mid-shard: its processes die with it, and the run
    loop resubmits only its unfinished shard in a new array; the run ends complete."""
    switch, pid_file, out = tmp_path / "slow", tmp_path / "sleeper.pid", tmp_path / "out"
    switch.touch()
    config = {"subsamplers": [{"name": "tests.fault_subs:Sleep", "url_contains": "imageio__realshort",
                               "switch": str(switch), "pid_file": str(pid_file), "seconds": 120}]}  # shard 1
    args = {"shards_per_task": 2, "cpus_per_task": 2, "poll_seconds": 0.5, "job_name": "v2d_resubmit_test"}
    result = {}
    run = threading.Thread(target=lambda: result.update(
        _download(table, out, "slurm", config=config, max_shard_retry=1, distributor_args=args)))
    run.start()
    deadline = time.time() + 120
    while not (pid_file.exists() and pid_file.read_text() and (out / "00000_stats.json").exists()):
        assert run.is_alive() and time.time() < deadline, "task 0 did not reach its sleeping shard"
        time.sleep(0.2)
    (job_id,) = (p.stem for p in (out / "_slurm").glob("*.sbatch"))
    subprocess.run(["scancel", f"{job_id}_0"], check=True)  # task 0: shard 0 done, shard 1 asleep
    switch.unlink()
    run.join(180)
    assert not run.is_alive()
    assert result["shards_failed"] == [] and result["shards_done"] == 4
    scripts = {p.stem: p.read_text() for p in (out / "_slurm").glob("*.sbatch")}
    assert len(scripts) == 2 and "shards=(1)" in scripts[max(scripts, key=int)]
    while _running(int(pid_file.read_text())):
        assert time.time() < deadline + 60, "the cancelled task's process outlived it"
        time.sleep(0.5)


def _running(pid: int) -> bool:
    """Exists and is not a zombie (a killed orphan stays one until init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
