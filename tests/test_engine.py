"""The core engine end to end over real HTTP: statuses, accounting, readback, determinism."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from support import DATA, media_files

import v2d_vox
from v2d_vox.errors import ConfigError

FAST = {"timeout": 1.0, "connect_timeout": 1.0, "retries": 2, "progress": False}


def _rows(out: Path):
    return [r for p in sorted(out.glob("[0-9]*[0-9].parquet")) for r in pq.read_table(p).to_pylist()]


def _stats(out: Path):
    return [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]


def mixed_table(base: str, synthetic_dir: Path) -> list[tuple[str, str, str]]:
    """(url, expected status, expected message fragment) for >= 40 rows of real, synthetic and faulty inputs."""
    rows = []
    for name in media_files():
        broken = {"pydub__test1_empty.wav": "not decodable media"}
        expect = ("failed_to_download", broken[name]) if name in broken else ("success", "")
        rows.append((f"{base}/media/{name}", *expect))
        rows.append((str(DATA / name), *expect))
    rows += [(f"{base}/media/{p.name}", "success", "") for p in sorted(synthetic_dir.iterdir())]
    rows += [
        (f"{base}/flaky500/pc-avs__Input_00010.mp4", "success", ""),
        (f"{base}/flaky500/av_3s.mp4", "success", ""),
        (f"{base}/nothing-here.mp4", "failed_to_download", "HTTP 404"),
        (f"{base}/always500/x.mp4", "failed_to_download", "HTTP 503 (after 3 attempts)"),
        (f"{base}/stall/x.mp4", "failed_to_download", "read timeout"),
        (f"{base}/zero/x.mp4", "failed_to_download", "empty file"),
        (f"{base}/random/1", "failed_to_download", "not decodable media"),
        (f"{base}/random/2", "failed_to_download", "not decodable media"),
        (f"{base}/truncated/pc-avs__Pose_Source_517600055.mp4", "failed_to_download", "not decodable media"),
        (f"{base}/truncated/av_5s_640.mp4", "failed_to_download", "not decodable media"),
        (f"{base}/shortbody/pc-avs__Input_00010.mp4", "failed_to_download", "connection closed before the whole body"),
        (f"{base}/html/watch", "failed_to_download", "HTML page"),
        (f"{base}/html-as-mp4/watch", "failed_to_download", "not decodable media"),
        (str(DATA / "no-such-file.mp4"), "failed_to_download", "file not found"),
        ("file://" + str(DATA / "tflite-micro-speech__yes_1000ms.wav"), "success", ""),
    ]
    return rows


def test_mixed_table_statuses_and_readback(http_server, synthetic_dir, tmp_path):
    table = mixed_table(http_server, synthetic_dir)
    assert len(table) >= 40
    (tmp_path / "urls.csv").write_text("url,caption,speaker\n" + "".join(
        f"{u},caption {i},spk{i % 3}\n" for i, (u, _, _) in enumerate(table)))
    out = tmp_path / "out"
    summary = v2d_vox.download(str(tmp_path / "urls.csv"), str(out), caption_col="caption",
                               samples_per_shard=16, processes_count=2, thread_count=4, **FAST)
    rows = _rows(out)
    assert [r["url"] for r in rows] == [u for u, _, _ in table]  # one row per input row, in order
    for row, (url, status, fragment) in zip(rows, table):
        assert row["status"] == status, (url, row["error_message"])
        assert fragment in (row["error_message"] or ""), (url, row["error_message"])
        assert row["error_message"] is None or (len(row["error_message"]) < 200 and "/tmp" not in row["error_message"])
        assert row["speaker"].startswith("spk")  # extra columns are kept
    assert len({r["key"] for r in rows}) == len(rows)

    stats = _stats(out)
    assert sum(s["count"] for s in stats) == len(rows)
    assert sum(s["successes"] for s in stats) == sum(r["status"] == "success" for r in rows)
    assert sum(s["failed_to_download"] for s in stats) == sum(r["status"] == "failed_to_download" for r in rows)
    for s in stats:
        assert sum(s["status_dict"].values()) == s["count"]
        assert s["bytes_downloaded"] > 0 and s["end_time"] >= s["start_time"]
    assert summary["status"]["success"] == sum(r["status"] == "success" for r in rows)

    ok = {r["key"]: r for r in rows if r["status"] == "success"}
    seen = 0
    for sample in wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False):
        meta = json.loads(sample["json"])
        assert sample["__key__"] in ok and meta["url"] == ok[sample["__key__"]]["url"]
        assert sample["txt"].decode().startswith("caption")
        media = next(v for k, v in sample.items() if k in ("mp4", "mkv", "wav", "mp3", "flac", "m4a"))
        with av.open(io.BytesIO(media)) as c:
            assert next(c.decode(c.streams[0])) is not None
        seen += 1
    assert seen == len(ok)
    assert not (out / "_tmp").exists()


def _tar_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_same_input_gives_byte_identical_tars(http_server, synthetic_dir, tmp_path):
    urls = [f"{http_server}/media/{n}" for n in media_files()[:8]]
    (tmp_path / "urls.txt").write_text("\n".join(urls))
    outs = []
    for name, procs in (("a", 1), ("b", 2)):
        v2d_vox.download(str(tmp_path / "urls.txt"), str(tmp_path / name), samples_per_shard=3,
                         processes_count=procs, thread_count=3, **FAST)
        outs.append(_tar_bytes(tmp_path / name))
    assert len(outs[0]) == 3 and outs[0] == outs[1]
    with tarfile.open(tmp_path / "a" / "00000.tar") as t:
        assert {(m.mtime, m.uid, m.uname) for m in t.getmembers()} == {(0, 0, "")}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "json", "jsonl", "txt"])
def test_input_formats(fmt, tmp_path):
    import pyarrow as pa

    files = media_files()[:5]
    rows = [{"url": str(DATA / f), "caption": f"c{i}", "clips": [[0, 1]], "lang": "en"} for i, f in enumerate(files)]
    path = tmp_path / f"in.{fmt}"
    if fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        path.write_text(sep.join(["url", "caption", "lang"]) + "\n" + "".join(
            sep.join([r["url"], r["caption"], r["lang"]]) + "\n" for r in rows))
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text("\n".join(r["url"] for r in rows) + "\n")
    caption = None if fmt == "txt" else "caption"
    v2d_vox.download(str(path), str(tmp_path / "out"), caption_col=caption, samples_per_shard=2, **FAST)
    got = _rows(tmp_path / "out")
    assert [r["url"] for r in got] == [r["url"] for r in rows]
    if fmt != "txt":
        assert [r["caption"] for r in got] == [r["caption"] for r in rows]
        assert all(r["lang"] == "en" for r in got)


def test_several_tables_and_folder_give_stable_keys(tmp_path):
    files = media_files()
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "a.txt").write_text("\n".join(str(DATA / f) for f in files[:5]))
    (tmp_path / "tables" / "b.txt").write_text("\n".join(str(DATA / f) for f in files[5:9]))
    v2d_vox.download(str(tmp_path / "tables"), str(tmp_path / "o1"), samples_per_shard=4, **FAST)
    v2d_vox.download([str(tmp_path / "tables" / "a.txt"), str(tmp_path / "tables" / "b.txt")],
                     str(tmp_path / "o2"), samples_per_shard=4, **FAST)
    r1, r2 = _rows(tmp_path / "o1"), _rows(tmp_path / "o2")
    assert [(r["key"], r["url"]) for r in r1] == [(r["key"], r["url"]) for r in r2]
    assert [r["key"] for r in r1][:5] == ["000000", "000001", "000002", "000003", "001000"][:5] or len(r1) == 9
    assert len(list((tmp_path / "o1").glob("*.tar"))) == 3


def test_sharding_streams_large_parquet(tmp_path):
    """200k rows shard in record batches: each shard holds exactly samples_per_shard rows."""
    import pyarrow as pa

    from v2d_vox.sharding import TableSpec, read_shard, shard_tables

    n = 200_000
    pq.write_table(pa.table({"url": [f"http://127.0.0.1:9/{i}.mp4" for i in range(n)], "i": list(range(n))}),
                   tmp_path / "big.parquet", row_group_size=10_000)
    shards, rows = shard_tables(str(tmp_path / "big.parquet"), str(tmp_path / "out"),
                                TableSpec(samples_per_shard=7000))
    assert (shards, rows) == (29, n)
    last = read_shard(str(tmp_path / "out"), 28)
    assert len(last) == n - 28 * 7000 and last[-1]["i"] == n - 1 and last[0]["key"] == "000280000"


def test_bad_arguments_fail_fast_with_a_clear_message(tmp_path):
    (tmp_path / "u.txt").write_text(str(DATA / media_files()[0]))
    cases = [
        ({"incremental_mode": "resume"}, "incremental_mode='resume'"),
        ({"output_format": "zip"}, "output_format='zip'"),
        ({"config": "nope"}, "neither a preset"),
        ({"config": {"subsamplers": [{"name": "no_such_step"}]}}, "unknown subsampler 'no_such_step'"),
        ({"config": {"subsampler": []}}, "unknown config key"),
        ({"distributor": "dask"}, "distributor='dask'"),
        ({"url_col": "link", "input_format": "jsonl"}, "cannot read as jsonl"),
        ({"url_col": "link", "input_format": "tsv"}, "cannot read as tsv"),
    ]
    for i, (kwargs, fragment) in enumerate(cases):
        with pytest.raises(ConfigError, match=re.escape(fragment)):
            v2d_vox.download(str(tmp_path / "u.txt"), str(tmp_path / f"out{i}"), **{**FAST, **kwargs})
        assert not list((tmp_path / f"out{i}").glob("*_stats.json"))
    (tmp_path / "u.csv").write_text(f"url\n{DATA / media_files()[0]}\n")
    with pytest.raises(ConfigError, match="column 'link' not found"):
        v2d_vox.download(str(tmp_path / "u.csv"), str(tmp_path / "outc"), url_col="link", **FAST)


def test_cli_matches_api_and_reports_errors(tmp_path, capsys):
    from v2d_vox.cli import main

    (tmp_path / "u.txt").write_text("\n".join(str(DATA / f) for f in media_files()[:3]))
    assert main(["download", str(tmp_path / "u.txt"), "--output_folder", str(tmp_path / "out"),
                 "--samples_per_shard", "2", "--no-progress"]) == 0
    assert len(_rows(tmp_path / "out")) == 3
    assert main(["download", str(tmp_path / "u.txt"), "--output_folder", str(tmp_path / "o2"),
                 "--output_format", "zip", "--no-progress"]) == 2
    assert "--output_format: invalid choice: 'zip'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["files", "parquet"])
def test_other_writers(fmt, tmp_path):
    files = [f for f in media_files() if f.endswith(".wav")][:3]
    (tmp_path / "u.txt").write_text("\n".join(str(DATA / f) for f in files))
    v2d_vox.download(str(tmp_path / "u.txt"), str(tmp_path / "out"), output_format=fmt, **FAST)
    out = tmp_path / "out"
    rows = _rows(out)
    ok = [r["key"] for r in rows if r["status"] == "success"]
    if fmt == "files":
        assert sorted(p.name for p in (out / "00000").glob("*.json")) == sorted(f"{k}.json" for k in ok)
    else:
        table = pq.read_table(out / "00000_media.parquet")
        assert table.column("key").to_pylist() == ok
        assert all(len(b) > 0 for b in table.column("wav").to_pylist())
