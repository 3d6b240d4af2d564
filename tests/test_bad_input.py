"""Bad input gets one clear line and loses nothing: wrong options fail before any work with one line
naming the value; a bad row or a broken archive costs that row, with its status, and the job goes on."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support import DATA, TALKING_HEADS, make_tar, serve

import v2d_vox
from v2d_vox.cli import main
from v2d_vox.errors import ConfigError
from v2d_vox.tars import read_tar

MEDIA = str(DATA / TALKING_HEADS[0])


@pytest.fixture
def table(tmp_path) -> Path:
    (tmp_path / "t.txt").write_text(MEDIA + "\n")
    return tmp_path / "t.txt"


@pytest.mark.parametrize("kwargs, message", [
    ({"processes_count": -3}, "processes_count must be >= 1"),
    ({"distributor_args": {"nope": 1}}, "does not take distributor_args ['nope']"),
    ({"config": {"subsamplers": [{"name": "resample_video", "fps": float("nan")}]}}, "fps must be a finite"),
    ({"config": {"subsamplers": [{"name": "clip", "clip_seconds": float("inf")}]}}, "clip_seconds must be a finite"),
])
def test_bad_options_fail_before_any_work(table, tmp_path, kwargs, message):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as e:
        v2d_vox.download(str(table), str(out), progress=False, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (out / "_inputs").exists()


def test_output_folder_that_is_a_file(table, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        v2d_vox.download(str(table), str(tmp_path / "file"), progress=False)


def test_malformed_yaml_is_one_line_naming_file_and_line(table, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("subsamplers:\n  - {name: clip, clip_seconds: 2\n  - {name: filter}\n")
    code = main(["download", str(table), "--output_folder", str(tmp_path / "o"), "--config", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "bad.yaml" in err and "line" in err and "not valid YAML" in err


def test_malformed_clip_spans_cost_their_row_only(tmp_path):
    rows = ["url,clips", f'{MEDIA},"[[0, 2]]"', f'{MEDIA},"[[0, oops]]"', f'{MEDIA},"[[1]]"',
            f'{MEDIA},"[[3, 1]]"', f'{MEDIA},"[[0, NaN]]"']
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    config = {"subsamplers": [{"name": "clip"}]}
    summary = v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "o"), clip_col="clips", config=config,
                               progress=False)
    assert summary["status"]["success"] == 1 and summary["status"]["failed_to_subsample"] == 4
    meta = pq.read_table(tmp_path / "o" / "00000.parquet").to_pylist()
    assert all(r["error_message"].startswith("bad clip span") for r in meta[1:])


def test_truncated_tar_keeps_its_complete_samples(tmp_path):
    """reprocess and scan read every sample before the break; the break is one row with its reason."""
    data = (DATA / TALKING_HEADS[0]).read_bytes()
    (tmp_path / "in").mkdir()
    make_tar(tmp_path / "in" / "00000.tar", [(k, {"mp4": data, "json": b"{}"}) for k in ("a", "b", "c")])
    whole = (tmp_path / "in" / "00000.tar").read_bytes()
    (tmp_path / "in" / "00000.tar").write_bytes(whole[: int(len(whole) * 0.8)])
    summary = v2d_vox.reprocess(str(tmp_path / "in"), str(tmp_path / "re"), progress=False)
    assert summary["shards_failed"] == [] and summary["status"]["success"] == 2
    assert summary["status"]["failed_to_download"] == 1
    assert [k for k, _ in read_tar(str(tmp_path / "re" / "00000.tar"))] == ["a", "b"]
    (error,) = summary["top_errors"]
    assert error.startswith("broken tar after 2 samples")
    scan = v2d_vox.scan(str(tmp_path / "in"), str(tmp_path / "report"), progress=False)
    assert scan["samples"] == 3 and scan["reasons"] == {"broken tar": 1}


def test_duplicate_keys_do_not_overwrite_each_other(tmp_path):
    a, b = (DATA / TALKING_HEADS[0]).read_bytes(), (DATA / TALKING_HEADS[1]).read_bytes()
    (tmp_path / "in").mkdir()
    make_tar(tmp_path / "in" / "00000.tar", [("k", {"mp4": a}), ("x", {"mp4": a}), ("k", {"mp4": b})])
    summary = v2d_vox.reprocess(str(tmp_path / "in"), str(tmp_path / "files"), output_format="files",
                                progress=False)
    assert summary["status"]["success"] == 2 and summary["status"]["failed_to_subsample"] == 1
    assert (tmp_path / "files" / "00000" / "k.mp4").read_bytes() == a
    (error,) = summary["top_errors"]
    assert error.startswith("duplicate key 'k'")


def test_unfinished_shards_in_a_folder_are_not_read_as_data(tmp_path, capsys):
    """A killed job can leave NNNNN.tar without its stats: folder readers skip it and say so."""
    out = tmp_path / "out"
    (tmp_path / "t.txt").write_text(f"{MEDIA}\n{DATA / TALKING_HEADS[1]}\n")
    v2d_vox.download(str(tmp_path / "t.txt"), str(out), samples_per_shard=1, progress=False)
    (out / "00001_stats.json").unlink()  # as if the job had died just before writing it
    scanned = v2d_vox.scan(str(out), str(tmp_path / "report"), progress=False)
    assert scanned["shards"] == 1 and scanned["samples"] == 1
    assert "skipping 1 unfinished shard(s)" in capsys.readouterr().err


def test_http_shards_for_scan_and_reprocess(tmp_path):
    """http(s) shards are read with the standard library (fsspec's http needs aiohttp, not a dependency)."""
    data = (DATA / TALKING_HEADS[0]).read_bytes()
    (tmp_path / "www").mkdir()
    shard = make_tar(tmp_path / "www" / "00000.tar", [("a", {"mp4": data, "json": json.dumps({}).encode()})])
    with serve(shard.parent) as server:
        url = f"{server.url}/media/00000.tar"
        assert v2d_vox.scan(url, str(tmp_path / "report"), progress=False)["samples"] == 1
        assert v2d_vox.reprocess(url, str(tmp_path / "re"), progress=False)["status"]["success"] == 1
    assert tarfile.is_tarfile(tmp_path / "re" / "00000.tar")


def test_non_utf8_cells_cost_a_character_not_the_job(tmp_path):
    import pyarrow as pa

    (tmp_path / "t.csv").write_bytes(f"url,caption\n{MEDIA},caf\xe9 latin-1\n".encode("latin-1"))
    pq.write_table(pa.table({"url": [MEDIA], "caption": pa.array([b"caf\xe9"], pa.binary()),
                             "blob": pa.array([b"\xff\xfe"], pa.binary())}), tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        summary = v2d_vox.download(str(tmp_path / name), str(tmp_path / name.replace(".", "_")),
                                   caption_col="caption", progress=False)
        assert summary["status"]["success"] == 1, name
        (_, members), = read_tar(str(tmp_path / name.replace(".", "_") / "00000.tar"))
        assert members["txt"].decode() == "caf\ufffd" + (" latin-1" if name == "t.csv" else "")


def test_resume_knows_one_table_by_any_path_and_says_what_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text(MEDIA + "\n")
    v2d_vox.download("t.txt", "out", progress=False)
    again = v2d_vox.download("./t.txt", "out", progress=False)  # the same file: resumes
    assert again["shards_skipped"] == 1
    with pytest.raises(ConfigError, match=r"other arguments: samples_per_shard=1000 \(now 5\)"):
        v2d_vox.download("t.txt", "out", samples_per_shard=5, progress=False)


def test_table_columns_named_like_engine_fields_are_kept_apart(tmp_path):
    """A table's own "status" or "key" column can neither pass for ours nor be lost: it is input_<name>."""
    (tmp_path / "t.csv").write_text(f"url,status,key,duration\n{MEDIA},public,../../escaped,99\n")
    summary = v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "o"), output_format="files", progress=False)
    assert summary["status"]["success"] == 1
    (record,) = pq.read_table(tmp_path / "o" / "00000.parquet").to_pylist()
    assert (record["status"], record["input_status"]) == ("success", "public")
    assert record["input_key"] == "../../escaped" and record["key"] != record["input_key"]
    assert record["input_duration"] == 99 and record["duration"] != 99
    assert not (tmp_path / "escaped.mp4").exists() and len(list((tmp_path / "o" / "00000").iterdir())) == 2


def test_other_shards_under_the_same_ids_do_not_resume(tmp_path):
    data = (DATA / TALKING_HEADS[0]).read_bytes()
    for folder, keys in (("a", ("x", "y")), ("b", ("z",))):
        (tmp_path / folder).mkdir()
        make_tar(tmp_path / folder / "00000.tar", [(k, {"mp4": data}) for k in keys])
    first = v2d_vox.scan(str(tmp_path / "a"), str(tmp_path / "report"), progress=False)
    second = v2d_vox.scan(str(tmp_path / "b"), str(tmp_path / "report"), progress=False)  # scanned afresh
    assert (first["samples"], second["samples"], second["shards_skipped"]) == (2, 1, 0)
    v2d_vox.reprocess(str(tmp_path / "a"), str(tmp_path / "re"), progress=False)
    with pytest.raises(ConfigError, match="another config, output_format or input shards"):
        v2d_vox.reprocess(str(tmp_path / "b"), str(tmp_path / "re"), progress=False)


def test_reprocessing_clips_does_not_cut_them_by_their_source_clip_column(tmp_path):
    (tmp_path / "t.csv").write_text("url,clips\n" + f'{MEDIA},"[[0.5, 2.5]]"\n')
    v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "clips"), clip_col="clips", config="voxceleb",
                     progress=False)
    again = v2d_vox.reprocess(str(tmp_path / "clips"), str(tmp_path / "again"), config="voxceleb", progress=False)
    assert again["status"]["success"] == 1 and again["outputs"] == 1


def test_report_on_a_truncated_shard_says_so_in_the_page(tmp_path):
    (tmp_path / "t.txt").write_text(MEDIA + "\n")
    v2d_vox.download(str(tmp_path / "t.txt"), str(tmp_path / "o"), progress=False)
    tar = tmp_path / "o" / "00000.tar"
    tar.write_bytes(tar.read_bytes()[:700])
    page = v2d_vox.report(str(tmp_path / "o"))["html"]
    assert "unreadable shard" in Path(page).read_text()


def test_bad_face_tracks_cost_their_row_with_a_status(tmp_path):
    (tmp_path / "t.csv").write_text("url,clips,face_tracks\n" + f'{MEDIA},"[[0, 2]]","[[[0, 0.1, oops"\n')
    summary = v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "o"), clip_col="clips", config="voxceleb2",
                               progress=False)
    (error,) = summary["top_errors"]
    assert summary["status"]["failed_to_subsample"] == 1 and error.startswith("bad face_tracks")
