"""Reprocessing existing shards: download's output into 16 kHz audio-only shards, video2dataset-layout
tars, metadata-only passes, resume, and the shard listing/reading helpers underneath."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
from support import DATA, TALKING_HEADS, make_tar

import v2d_vox
from v2d_vox.cli import main
from v2d_vox.config import load_config
from v2d_vox.errors import ConfigError
from v2d_vox.shards import list_shards, shard_ids
from v2d_vox.tars import read_tar


def members(tar_path: Path) -> dict[str, dict[str, bytes]]:
    return {key: m for key, m in read_tar(str(tar_path))}


def audio_info(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        frames = list(c.decode(s))
    return s.sample_rate, s.channels, sum(f.samples for f in frames) / s.sample_rate


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory) -> Path:
    """Two shards made by `download` from real talking-head clips, with captions and an extra column."""
    root = tmp_path_factory.mktemp("downloaded")
    rows = "".join(f"{DATA / name},caption {i},speaker{i % 2}\n" for i, name in enumerate(TALKING_HEADS))
    (root / "urls.csv").write_text("url,caption,identity\n" + rows)
    summary = v2d_vox.download(str(root / "urls.csv"), str(root / "shards"), caption_col="caption",
                               samples_per_shard=2, processes_count=2, progress=False)
    assert summary["status"]["success"] == 3
    return root / "shards"


def test_download_shards_to_16k_audio(downloaded, tmp_path):
    out = tmp_path / "audio16k"
    summary = v2d_vox.reprocess(str(downloaded), str(out), config="audio16k", processes_count=2,
                                progress=False)
    assert summary["status"]["success"] == 3 and not summary["shards_failed"]
    for name in ("00000", "00001"):
        before, after = members(downloaded / f"{name}.tar"), members(out / f"{name}.tar")
        assert list(after) == list(before)  # same keys, same order
        for key, files in after.items():
            assert sorted(files) == ["flac", "json", "txt"]
            rate, channels, seconds = audio_info(files["flac"])
            old, meta = json.loads(before[key]["json"]), json.loads(files["json"])
            assert (rate, channels) == (16000, 1)
            assert seconds == pytest.approx(old["probe"]["duration"], abs=0.06)
            assert files["txt"] == before[key]["txt"]
            assert {k: meta[k] for k in ("url", "caption", "identity")} == {
                k: old[k] for k in ("url", "caption", "identity")}
            assert meta["reprocess"][-1]["source_shard"] == str(downloaded / f"{name}.tar")
            assert meta["reprocess"][-1]["subsamplers"] == load_config("audio16k")["subsamplers"]
        stats = json.loads((out / f"{name}_stats.json").read_text())
        assert stats["successes"] == stats["count"] == len(after)
        records = pq.read_table(out / f"{name}.parquet").to_pylist()
        assert {r["source_shard"] for r in records} == {str(downloaded / f"{name}.tar")}
    again = v2d_vox.reprocess(str(downloaded), str(out), config="audio16k", progress=False)
    assert again["shards_skipped"] == 2


@pytest.fixture()
def v2d_shards(tmp_path) -> Path:
    """video2dataset's layout: ``00003.tar`` with KEY.mp4 (+ KEY.m4a), KEY.json, KEY.txt."""
    folder = tmp_path / "v2d"
    folder.mkdir()
    mp4, m4a = (DATA / TALKING_HEADS[0]).read_bytes(), (DATA / "pydub__wrong_extension.aac").read_bytes()
    samples = []
    for i, extra in enumerate([{}, {"m4a": m4a}]):
        key = f"00003000{i}_00000"
        meta = {"url": f"https://example.com/{i}.mp4", "key": key, "status": "success", "error_message": None,
                "clips": [[0.0, 4.0]], "original_width": 640, "yt_meta_dict": {"title": f"talk {i}"}}
        samples.append((key, {"mp4": mp4, **extra, "json": json.dumps(meta).encode(), "txt": b"a caption"}))
    make_tar(folder / "00003.tar", samples)
    return folder


def test_video2dataset_layout(v2d_shards, tmp_path):
    out = tmp_path / "out"
    summary = v2d_vox.reprocess(str(v2d_shards / "{00003..00003}.tar"), str(out), progress=False)
    assert summary["status"]["success"] == 2
    after = members(out / "00003.tar")  # an NNNNN.tar input keeps its name
    assert list(after) == ["000030000_00000", "000030001_00000"]
    for files in after.values():
        meta = json.loads(files["json"])
        assert meta["yt_meta_dict"]["title"].startswith("talk") and meta["clips"] == [[0.0, 4.0]]
        assert meta["probe"]["has_video"] and meta["probe"]["duration"] == pytest.approx(4.3, abs=0.1)
        assert meta["reprocess"][0]["source_shard"] == str(v2d_shards / "00003.tar")
        assert files["txt"] == b"a caption"
    assert "m4a" in after["000030001_00000"]


def test_metadata_only(v2d_shards, tmp_path):
    out = tmp_path / "meta"
    config = {"subsamplers": [{"name": "filter", "min_duration": 1.0},
                              {"name": "resample_audio", "sample_rate": 16000, "format": "flac"}]}
    summary = v2d_vox.reprocess(str(v2d_shards), str(out), config=config, metadata_only=True, progress=False)
    assert summary["status"]["success"] == 2
    assert {ext for files in members(out / "00003.tar").values() for ext in files} == {"json", "txt"}
    records = pq.read_table(out / "00003.parquet").to_pylist()
    assert [r["duration"] for r in records] == [pytest.approx(4.3, abs=0.1)] * 2
    assert all(r["has_audio"] and r["bytes_downloaded"] > 0 for r in records)
    strict = v2d_vox.reprocess(str(v2d_shards), str(tmp_path / "strict"), metadata_only=True, progress=False,
                               config={"subsamplers": [{"name": "filter", "min_duration": 10.0}]})
    assert strict["status"]["filtered"] == 2


def test_list_and_read_shards(tmp_path):
    for name in ("00000.tar", "00001.tar", "other.tar"):
        make_tar(tmp_path / name, [("a", {"txt": b"1"}), ("b", {"txt": b"2"}), ("a", {"txt": b"3"})])
    (tmp_path / "notes.md").write_text("not a shard")
    every = [str(tmp_path / n) for n in ("00000.tar", "00001.tar", "other.tar")]
    assert list_shards(str(tmp_path)) == every
    assert list_shards(str(tmp_path / "{00000..00001}.tar")) == every[:2]
    assert list_shards([every[2], every[0]]) == [every[0], every[2]]
    with pytest.raises(ConfigError):
        list_shards(str(tmp_path / "missing.tar"))
    assert shard_ids(every[:2]) == {0: every[0], 1: every[1]}
    assert shard_ids([every[1]]) == {1: every[1]}  # NNNNN.tar keeps its number
    assert shard_ids(every) == dict(enumerate(every))  # mixed naming: sorted order
    assert [k for k, _ in read_tar(every[0])] == ["a", "b", "a"]  # a key coming back is a new sample


def test_refuses_to_write_into_inputs(v2d_shards):
    with pytest.raises(ConfigError, match="holds input shards"):
        v2d_vox.reprocess(str(v2d_shards), str(v2d_shards), progress=False)


def test_cli(v2d_shards, tmp_path):
    out = tmp_path / "cli"
    argv = ["reprocess", str(v2d_shards / "00003.tar"), "--output_folder", str(out), "--metadata_only"]
    assert main([*argv, "--no-progress"]) == 0
    assert json.loads((out / "00003_stats.json").read_text())["successes"] == 2
