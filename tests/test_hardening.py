"""Hostile media and archives, resource limits and reader deadlines: each case of the Reliability
section of the README, against real PyAV, real tars and the loopback fault server."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from support import DATA, SDP, bomb_tar, ffconcat, make_media

import v2d_vox
from v2d_vox import ffmpeg
from v2d_vox.checks import Checks, check_sample
from v2d_vox.config import Job, Limits, ReaderConfig
from v2d_vox.errors import ConfigError, DownloadError, SubsampleError
from v2d_vox.loader.decode import DecodeConfig, decode_sample
from v2d_vox.media import TooLarge, open_media
from v2d_vox.probe import probe
from v2d_vox.reader import read
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Chain
from v2d_vox.tars import TarTooLarge, read_tar
from v2d_vox.worker import run_chain

REPO = Path(__file__).resolve().parents[1]
CFG = ReaderConfig(timeout=1.0, connect_timeout=1.0, retries=2, backoff=0.01)


@pytest.fixture
def secret(tmp_path, monkeypatch):
    """A real media file in the working directory, which a followed ffconcat script would deliver."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secret.mp4").write_bytes(make_media(duration=1.0))
    return "secret.mp4"


def test_unconfined_pyav_follows_ffconcat(secret):
    """The fault this guards against is real on this PyAV: without options it reads the named file."""
    import io

    with av.open(io.BytesIO(ffconcat(secret))) as c:
        assert c.streams.video


@pytest.mark.parametrize("kind", ["ffconcat", "sdp"])
def test_media_that_names_files_or_sockets_is_refused_everywhere(secret, kind):
    """probe (download, reprocess), scan's check and the loader all open through ``open_media``: the
    script is refused at once, never followed, and no UDP port is bound (an SDP open used to wait ~21 s)."""
    data = ffconcat(secret) if kind == "ffconcat" else SDP
    with pytest.raises(av.error.FFmpegError):
        open_media(data)
    with pytest.raises(DownloadError, match="not decodable media"):
        probe(data)
    reasons = check_sample("k", {"mp4": data}, Checks())["reasons"]
    assert len(reasons) == 1 and reasons[0].startswith("decode error: mp4")
    with pytest.raises(av.error.FFmpegError):
        decode_sample({"__key__": "k", "__url__": "u", "__index__": 0, "mp4": data}, DecodeConfig(), random.Random(0))


def test_download_of_hostile_bytes_fails_the_row(http_server, secret):
    for path in (f"hostile/ffconcat/{secret}", "hostile/sdp"):
        with pytest.raises(DownloadError, match="not decodable media"):
            probe(read(f"{http_server}/{path}", CFG))


def test_max_pixels_refuses_before_decoding():
    data = make_media(duration=0.2, size=(320, 240))
    with pytest.raises(TooLarge, match="320x240 is over max_pixels=1000"):
        open_media(data, max_pixels=1000)
    with pytest.raises(DownloadError, match="over limit: video 320x240 is over max_pixels=1000"):
        probe(data, Limits(max_pixels=1000))
    assert probe(data)["video"]["width"] == 320


def test_max_duration_refuses_long_sources():
    data = (DATA / "fsdd__3_george_7.wav").read_bytes()
    with pytest.raises(DownloadError, match=r"over limit: duration \d+ s is over max_duration=0.1 s"):
        probe(data, Limits(max_duration=0.1))


def test_max_clips_per_source_fails_the_sample_not_the_job():
    data = (DATA / "fsdd__3_george_7.wav").read_bytes()
    sample = Sample("k", {"wav": data}, {"probe": probe(data)})
    chain = Chain.from_specs([{"name": "clip", "clip_seconds": 0.05}])
    with pytest.raises(SubsampleError, match=r"over limit: \d+ clips, over max_clips_per_source=3"):
        run_chain(chain, sample, Limits(max_clips_per_source=3))


def test_limits_are_validated_and_overridable():
    assert Job("out", limits={"max_pixels": 10}).limits.max_pixels == 10
    for bad in ({"max_pixels": -1}, {"max_duration": float("inf")}, {"max_duration": float("nan")}):
        with pytest.raises(ConfigError, match="must be a positive finite number"):
            Job("out", limits=bad)
    with pytest.raises(ConfigError, match="unknown limit"):
        Job("out", limits={"max_pixel": 10})


# VmHWM, not getrusage's ru_maxrss: Linux carries the parent's peak into ru_maxrss across a vfork+exec,
# so a child of a large pytest process would report the parent's memory.
_RSS = """
import sys
from v2d_vox.tars import read_tar
try:
    for _ in read_tar(sys.argv[1]):
        pass
except Exception as e:
    print(type(e).__name__, e)
print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) // 1024)
"""


@pytest.mark.parametrize("kind", ["sparse", "gz"])
def test_tar_bombs_are_refused_with_bounded_memory(tmp_path, kind):
    """A 2 KB sparse tar and a 5 KB .tar.gz, each declaring a 3 GiB member: refused from the header,
    with the reader's peak memory (measured in its own process) far below the member's size."""
    path = bomb_tar(tmp_path / f"bomb.{kind}", 3 << 30, sparse=kind == "sparse", gz=kind == "gz")
    assert path.stat().st_size < 10_000
    out = subprocess.run([sys.executable, "-c", _RSS, str(path)], capture_output=True, text=True, check=True)
    message, peak_mb = out.stdout.strip().splitlines()
    assert message.startswith("TarTooLarge tar member 'bomb.mp4' declares 3221225472 bytes")
    assert int(peak_mb) < 400, out.stdout


def test_tar_total_limit(tmp_path):
    from support import make_tar

    path = make_tar(tmp_path / "t.tar", [(f"k{i}", {"mp4": b"x" * 1000}) for i in range(5)])
    assert len(list(read_tar(str(path)))) == 5
    with pytest.raises(TarTooLarge, match="over the max_tar_gb limit"):
        list(read_tar(str(path), max_total=3000))


# ---------------------------------------------------------------- reader


def test_trickling_body_stops_at_the_deadline(http_server):
    """A body announcing 100 KB and sending a byte every 50 ms: the one deadline (4 x timeout) ends it."""
    cfg = ReaderConfig(timeout=0.5, retries=3, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="longer than its 2 s deadline"):
        read(f"{http_server}/trickle/a.mp4", cfg)
    assert time.monotonic() - start < 2 + 2 * cfg.timeout  # one deadline, not one per attempt


def test_deadline_spans_retries(http_server, server_log):
    """Stalled attempts share one deadline: no retry starts once it cannot end in time."""
    cfg = ReaderConfig(timeout=0.5, retries=10, backoff=0.3)
    with pytest.raises(DownloadError, match="read timeout; no time left for a retry"):
        read(f"{http_server}/stall/deadline.mp4", cfg)
    assert server_log["hits"]["/stall/deadline.mp4"] < 11


def test_retry_after_is_honoured_up_to_a_cap(http_server, server_log):
    assert read(f"{http_server}/retryafter/1/fsdd__3_george_7.wav", CFG)[:4] == b"RIFF"
    assert server_log["hits"]["/retryafter/1/fsdd__3_george_7.wav"] == 2
    with pytest.raises(DownloadError, match="Retry-After 3600 s is over max_retry_after=60 s"):
        read(f"{http_server}/retryafter/3600/fsdd__8_jackson_21.wav", CFG)
    assert server_log["hits"]["/retryafter/3600/fsdd__8_jackson_21.wav"] == 1


def test_schemes_are_allow_listed(tmp_path):
    local = str(DATA / "fsdd__3_george_7.wav")
    with pytest.raises(DownloadError, match="URL scheme 'file' is not allowed"):
        read(local, CFG)
    assert read(local, ReaderConfig(schemes=["file"]))[:4] == b"RIFF"
    for empty in ("", "  ", None):
        with pytest.raises(DownloadError, match="missing URL"):
            read(empty, CFG)


def test_cross_host_redirects_switch(http_server):
    url = f"{http_server}/redirect/fsdd__3_george_7.wav"
    assert read(url, CFG)[:4] == b"RIFF"
    with pytest.raises(DownloadError, match=r"redirect to another host \(localhost\) refused"):
        read(url, ReaderConfig(cross_host_redirects=False))


def test_compressed_body_is_refused_not_inflated(http_server):
    with pytest.raises(DownloadError, match="gzip-compressed body"):
        read(f"{http_server}/gzip/a.mp4", CFG)


# ---------------------------------------------------------------- signals

_SLOW_JOB = """
import json, sys
from v2d_vox.cli import main
sys.exit(main(["download", sys.argv[1], "--output_folder", sys.argv[2], "--samples_per_shard", "1",
               "--processes_count", "2", "--thread_count", "1", "--no-progress", "--config",
               json.dumps({"subsamplers": [{"name": "tests.fault_subs:Sleep", "switch": sys.argv[3],
                                            "seconds": 600}]})]))
"""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("how", ["ctrl-c", "kill-9"])
def test_interrupt_stops_workers_and_leaves_nothing_behind(tmp_path, how):
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it) stops the job with the resume hint and
    no traceback, and no process of it is left; after ``kill -9`` of the main process alone, its workers
    die with it (PR_SET_PDEATHSIG) instead of writing on. Shards stuck in a 600 s step make the point."""
    table = tmp_path / "t.txt"
    table.write_text("\n".join(str(DATA / n) for n in ("fsdd__3_george_7.wav", "fsdd__8_jackson_21.wav")))
    out, switch = tmp_path / "out", tmp_path / "slow"
    switch.touch()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_JOB, str(table), str(out), str(switch)], cwd=REPO,
                            env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((out / "_tmp").glob("0000*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=30)
    for _ in range(100):  # workers are reaped by init once they die
        if not _group_alive(proc.pid):
            break
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a worker outlived the job"
    if how == "ctrl-c":
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr
        assert "interrupted: 0 of 2 shards done" in stderr and "run the same command again to resume" in stderr
        assert not (out / "_tmp").exists()
    switch.unlink()
    config = {"subsamplers": [{"name": "tests.fault_subs:Sleep", "switch": str(switch), "seconds": 600}]}
    summary = v2d_vox.download(str(table), str(out), samples_per_shard=1, progress=False, config=config)
    assert summary["shards_done"] == 2 and summary["samples"] == 2


def test_stale_ffmpeg_workdirs_are_swept(tmp_path):
    """Work dirs named after a dead process (a killed worker) go; a live process's stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    base = ffmpeg._temp_base()
    stale, live = Path(base) / f"v2d_vox_{dead}_test", Path(base) / f"v2d_vox_{os.getpid()}_test"
    for d in (stale, live):
        d.mkdir()
        (d / "out.mp4").write_bytes(b"x")
    try:
        assert ffmpeg.sweep_stale() >= 1
        assert not stale.exists() and live.exists()
    finally:
        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)
