"""Observability: the job summary equals the parquet rows (also after a resume), `stats` reads any folder,
the HTML report renders in headless Chromium, wandb runs offline hold the metrics, `retry` turns transient
failures into successes without touching other samples, and progress stays clean in a log file."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import DATA, TALKING_HEADS, media_files, read_wandb_records

import v2d_vox
from v2d_vox.cli import main
from v2d_vox.config import preset_descriptions
from v2d_vox.errors import ConfigError
from v2d_vox.tars import read_tar

REPO = Path(__file__).resolve().parents[1]


def _rows(out: Path) -> list[dict]:
    return [r for p in sorted(out.glob("[0-9]*.parquet")) for r in pq.read_table(p).to_pylist()]


def _check_sums(out: Path) -> dict:
    summary = json.loads((out / "_job_summary.json").read_text())
    rows = _rows(out)
    assert summary["samples"] == len(rows)
    for status, n in summary["status"].items():
        assert n == sum(r["status"] == status for r in rows), status
    assert summary["bytes_downloaded"] == sum(r.get("bytes_downloaded") or 0 for r in rows)
    assert summary["outputs"] == sum(r["outputs"] or 0 for r in rows)
    errors = {}
    for r in rows:
        if r["error_message"]:
            errors[r["error_message"]] = errors.get(r["error_message"], 0) + 1
    assert summary["top_errors"] == dict(sorted(errors.items(), key=lambda kv: -kv[1])[:10])
    media = summary["media_seconds"]
    assert media["video_in"] == pytest.approx(sum(r["duration"] or 0 for r in rows if r["has_video"]), abs=0.01)
    assert media["audio_out"] == pytest.approx(sum(r.get("audio_seconds_out") or 0 for r in rows), abs=0.01)
    assert summary["shards_done"] == len(list(out.glob("[0-9]*_stats.json")))
    return summary


def test_job_summary_equals_parquet_rows_also_after_resume(tmp_path, capsys):
    names = media_files()
    (tmp_path / "u.txt").write_text("\n".join([str(DATA / n) for n in names] + ["/nonexistent/a.mp4"]))
    out = tmp_path / "out"
    kw = dict(samples_per_shard=4, config="voxceleb", processes_count=2, thread_count=2, progress=False)
    v2d_vox.download(str(tmp_path / "u.txt"), str(out), **kw)
    first = _check_sums(out)
    assert first["status"]["success"] > 0 and first["status"]["failed_to_download"] > 0
    assert {"read", "probe", "ffmpeg", "array", "write"} <= set(first["stage_seconds"])
    assert first["media_seconds"]["video_out"] > 0 and first["versions"]["v2d_vox"] == v2d_vox.__version__

    (out / "00001_stats.json").unlink()  # shard 1 as if the first run had been killed before it finished
    resumed = v2d_vox.download(str(tmp_path / "u.txt"), str(out), **kw)
    assert resumed["shards_skipped"] == first["shards_total"] - 1
    second = _check_sums(out)
    assert len(second["runs"]) == 2 and second["runs"][1]["shards_run"] == 1
    assert {k: second[k] for k in ("samples", "status", "outputs")} == {k: first[k] for k in ("samples", "status",
                                                                                               "outputs")}
    capsys.readouterr()
    assert main(["stats", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["samples"] == second["samples"] and printed["status"] == second["status"]
    assert main(["stats", str(out)]) == 0
    assert "top errors" in capsys.readouterr().out


def test_stats_reads_a_video2dataset_folder(tmp_path):
    """video2dataset's stats files: count, successes, failed_to_download, failed_to_resize, status_dict."""
    for sid, (ok, bad) in enumerate([(3, 1), (2, 2)]):
        (tmp_path / f"{sid:05d}_stats.json").write_text(json.dumps({
            "count": ok + bad, "successes": ok, "failed_to_download": bad, "failed_to_resize": 0,
            "duration": 2.0, "bytes_downloaded": 1000 * ok, "start_time": 1.0, "end_time": 3.0,
            "status_dict": {"success": ok, "HTTP Error 404: Not Found": bad}}))
    totals = v2d_vox.stats(str(tmp_path), json=True)
    assert totals["samples"] == 8 and totals["status"]["success"] == 5 and totals["status"]["failed_to_download"] == 3
    assert totals["top_errors"] == {"HTTP Error 404: Not Found": 3} and totals["bytes_downloaded"] == 5000
    assert totals["samples_per_shard_second"] == 2.0
    page = v2d_vox.report(str(tmp_path))
    assert Path(page["html"]).exists() and page["shards"] == 2


HARNESS = """<script>
window.__errs = [];
addEventListener("error", e => __errs.push(String(e.message || (e.target && e.target.outerHTML.slice(0, 80)))), true);
addEventListener("unhandledrejection", e => __errs.push(String(e.reason)));
const __ce = console.error;
console.error = (...a) => { __errs.push(a.join(" ")); __ce(...a); };
addEventListener("load", async () => {
  const audio = [...document.querySelectorAll("audio")];
  const durations = await Promise.all(audio.map(a => new Promise(done => {
    a.addEventListener("loadedmetadata", () => done(a.duration), {once: true});
    a.addEventListener("error", () => done(-1), {once: true});
    a.preload = "metadata"; a.load();
  })));
  document.body.setAttribute("data-check", JSON.stringify({
    errors: __errs, durations,
    images: [...document.images].map(i => i.complete && i.naturalWidth > 0),
    sections: [...document.querySelectorAll("section")].map(s => [s.id, s.innerText.length]),
  }));
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is needed (installed by .ci/run)"
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", *args], capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(tmp_path):
    table = tmp_path / "u.txt"
    table.write_text("\n".join([str(DATA / n) for n in TALKING_HEADS] + ["/nonexistent/b.mp4"]))
    out = tmp_path / "out"
    v2d_vox.download(str(table), str(out), samples_per_shard=2, config="voxceleb", progress=False)
    shown = v2d_vox.report(str(out), shards_sampled=2, samples_per_shard=2)
    page = Path(shown["html"])
    assert shown["samples_shown"] >= 2 and page.parent == out
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained

    harness = tmp_path / "harness.html"
    harness.write_text(text.replace("<head>", "<head>" + HARNESS, 1))
    # the budget is virtual time: on a busy machine the audio players take longer in real time to load
    run = _chromium("--dump-dom", "--virtual-time-budget=60000", harness.as_uri())
    match = re.search(r'data-check="([^"]*)"', run.stdout)
    assert match, run.stderr[-2000:]
    check = json.loads(html.unescape(match[1]))
    assert check["errors"] == []
    assert check["images"] and all(check["images"])  # plots, thumbnails and mels all decode
    assert len(check["durations"]) >= 2 and all(d > 0 for d in check["durations"])  # players hold audio
    sections = dict(check["sections"])
    assert list(sections) == ["summary", "shards", "errors", "distributions", "samples", "config"]
    assert all(n > 0 for n in sections.values())

    shot = tmp_path / "report.png"  # kept in the test's tmp folder for a person to look at
    run = _chromium("--window-size=1280,4000", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    assert ":CONSOLE" not in run.stderr, run.stderr  # the page itself logs nothing


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "u.txt").write_text(f"{DATA / TALKING_HEADS[0]}\n/nonexistent/c.mp4\n")
    summary = v2d_vox.download(str(tmp_path / "u.txt"), str(tmp_path / "out"), samples_per_shard=1,
                               enable_wandb=True, progress=False, processes_count=1)
    import wandb

    wandb.teardown()  # the run file is complete once wandb's service has stopped (as at process exit)
    [run_file] = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    records = read_wandb_records(run_file)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[-1] == "exit", kinds  # finish() has written the whole run
    [run] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert "job" in {item.key for item in run.config.update}
    history = [{i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    shards = [h for h in history if "shard/id" in h]
    assert sorted(h["shard/id"] for h in shards) == [0, 1]
    assert all(h["shard/samples_per_s"] > 0 for h in shards) and any("shard/seconds/read" in h for h in shards)
    [final] = [h for h in history if "total/samples" in h]
    assert final["total/samples"] == summary["samples"] == 2
    assert final["status/success"] == 1 and final["status/failed_to_download"] == 1
    assert final["top_errors/_type"] == "table-file" and final["top_errors/nrows"] == 1
    [table] = run_file.parent.glob("files/media/table/top_errors*.table.json")
    assert json.loads(table.read_text())["data"] == [["file not found", 1]]


def test_wandb_without_login_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    (tmp_path / "u.txt").write_text(f"{DATA / TALKING_HEADS[0]}\n")
    summary = v2d_vox.download(str(tmp_path / "u.txt"), str(tmp_path / "out"), enable_wandb=True, progress=False)
    assert summary["status"]["success"] == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "wandb" in line]
    assert len(lines) == 1 and "not logged in" in lines[0]
    assert not (tmp_path / "wandb").exists()


def _members(tar: Path) -> dict[str, dict[str, bytes]]:
    return dict(read_tar(str(tar)))


def test_retry_turns_transient_failures_into_successes(http_server, tmp_path, capsys):
    base = http_server
    names = ["fsdd__8_jackson_21.wav", "tflite-micro-speech__yes_1000ms.wav", "pc-avs__Input_00010.mp4",
             "lhotse__LJ002-0020.wav", "tflite-micro-speech__no_1000ms.wav", "pc-avs__Audio_Source_00086.mp4"]
    urls = [f"{base}/media/{names[0]}", f"{base}/media/{names[1]}",            # shard 0: nothing to retry
            f"{base}/media/{names[2]}", f"{base}/flaky500/{names[3]}",         # shard 1: one transient failure
            f"{base}/flaky500/{names[4]}", f"{base}/missing/{names[5]}"]        # shard 2: transient + permanent
    (tmp_path / "u.txt").write_text("\n".join(urls))
    out = tmp_path / "out"
    first = v2d_vox.download(str(tmp_path / "u.txt"), str(out), samples_per_shard=2, retries=0, progress=False)
    assert first["status"]["failed_to_download"] == 3
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    untouched = {n: (out / n).stat().st_mtime_ns for n in ("00000.tar", "00000.parquet", "00000_stats.json")}
    old = {sid: _members(out / f"0000{sid}.tar") for sid in (1, 2)}
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)

    capsys.readouterr()
    assert main(["retry", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "retried 3 rows in 2 shards (failed_to_download=3); now: " in printed and "2 recovered" in printed
    rows = {r["key"]: r for r in _rows(out)}
    assert [r["status"] for r in rows.values()] == ["success"] * 5 + ["failed_to_download"]
    assert {n: (out / n).stat().st_mtime_ns for n in untouched} == untouched  # a shard without failures
    assert (out / "_job.json").read_bytes() == before["_job.json"]
    assert not (out / "_retry").exists() and not (out / "_tmp").exists()
    for sid in (1, 2):
        new = _members(out / f"0000{sid}.tar")
        for key, members in old[sid].items():
            assert new[key] == members  # earlier successes keep their bytes
        assert set(old[sid]) < set(new) and len(new) == len(old[sid]) + 1
    assert list(_members(out / "00001.tar")) == list(rows)[2:4]  # input order, same keys
    summary = json.loads((out / "_job_summary.json").read_text())
    assert summary["status"]["success"] == 5 and _check_sums(out)["runs"][-1]["retry"] == ["failed_to_download",
                                                                                           "failed_to_subsample"]

    # deterministic: the same retry on a copy (the flaky URLs now answer at once) writes the same bytes
    v2d_vox.retry(str(copy), progress=False)
    for tar in out.glob("*.tar"):
        assert (copy / tar.name).read_bytes() == tar.read_bytes(), tar.name
    # a second retry has only the permanent failure left: it stays, and nothing else changes
    tars = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    again = v2d_vox.retry(str(out), progress=False)
    assert again["retry"]["rows"] == 1 and again["retry"]["recovered"] == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.tar")} == tars


def test_retry_refuses_folders_it_cannot_rewrite(tmp_path):
    with pytest.raises(ConfigError, match="_job.json"):
        v2d_vox.retry(str(tmp_path), progress=False)


def test_progress_in_a_log_file_has_no_cursor_movement(tmp_path):
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / n) for n in media_files()[:4]))
    log = tmp_path / "job.log"
    with open(log, "w") as f:
        res = subprocess.run([sys.executable, "-m", "v2d_vox.cli", "download", str(tmp_path / "u.txt"),
                              "--output_folder", str(tmp_path / "out"), "--samples_per_shard", "2"],
                             stdout=f, stderr=subprocess.STDOUT, cwd=REPO, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    text = log.read_text()
    assert res.returncode == 0, text
    assert "\r" not in text and "\x1b[" not in text
    assert "progress: shards 2/2, samples 4/4" in text


def test_presets_lists_each_preset_with_its_description(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    described = preset_descriptions()
    assert set(described) >= {"default", "voxceleb", "audio16k", "esc50"}
    for name, text in described.items():
        assert f"\n{name}\n" in f"\n{out}" and text.split()[0] in out and text
