"""Each shipped preset end to end through ``v2d_vox.download()`` on local files, statuses included."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support import DATA, stream_types, streams

import v2d_vox
from v2d_vox.config import load_config, presets

FILES = {
    "talk": "pc-avs__Pose_Source_517600055.mp4",  # 4.48 s audio+video
    "short": "imageio__realshort.mp4",  # 1.17 s audio+video
    "speech": "lhotse__LJ002-0020.wav",  # 1.54 s audio only
    "tiny": "tflite-micro-speech__yes_30ms.wav",  # 30 ms
    "silent": "pyscenedetect__delayed_start.mp4",  # video only
    "empty": "pydub__test1_empty.wav",  # header only
}


def download(tmp_path: Path, config, rows: list[dict], **kwargs) -> tuple[dict, dict[str, dict[str, bytes]]]:
    table = tmp_path / "in.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    v2d_vox.download(str(table), str(out), config=config, processes_count=1, thread_count=2, progress=False,
                     **kwargs)
    meta = {r["url"].rsplit("/", 1)[-1]: r for r in pq.read_table(out / "00000.parquet").to_pylist()}
    members: dict[str, dict[str, bytes]] = {}
    with tarfile.open(out / "00000.tar") as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            members.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return meta, members


def rows(*names: str) -> list[dict]:
    return [{"url": str(DATA / FILES[n])} for n in names]


def test_presets_ship_with_the_package():
    assert {"default", "voxceleb", "audio16k", "esc50"} <= set(presets())
    for name in ("voxceleb", "audio16k", "esc50"):
        assert load_config(name)["subsamplers"]


def test_voxceleb_preset(tmp_path):
    meta, members = download(tmp_path, "voxceleb", rows("talk", "short", "speech", "silent", "empty"))
    status = {k: (r["status"], r["error_message"]) for k, r in meta.items()}
    assert status[FILES["talk"]] == ("success", None) and meta[FILES["talk"]]["outputs"] == 2
    assert status[FILES["short"]] == ("filtered", "no clip fits: duration 1.17 s, needs clip_seconds 2.0")
    assert status[FILES["speech"]] == ("filtered", "no video stream (require_video)")
    assert status[FILES["silent"]] == ("filtered", "no audio stream (require_audio)")
    assert status[FILES["empty"]][0] == "failed_to_download"
    assert len(members) == 2
    for files in members.values():
        info = streams(files["mp4"])
        assert (info["video"]["width"], info["video"]["fps"], info["audio"]["sample_rate"]) == (224, 25, 16000)
        mel = np.load(io.BytesIO(files["mel.npy"]))
        assert mel.shape == (80, 201)  # 2 s at a 10 ms hop, centred frames; AAC padding trimmed
    for key, files in members.items():
        clip = json.loads(files["json"])
        assert clip["source_key"] == meta[FILES["talk"]]["key"]
        assert key == f"{clip['source_key']}_{clip['clip_index']:05d}"
        assert [s["name"] for s in clip["subsamplers"]] == ["clip", "resample_video", "resample_audio"]


def test_voxceleb_corrupt_preset(tmp_path):
    """Same keys as voxceleb, corrupted clips (parameters in the json) and the mel of the corrupted audio."""
    (tmp_path / "clean").mkdir(), (tmp_path / "corrupt").mkdir()
    _, clean = download(tmp_path / "clean", "voxceleb", rows("talk"))
    _, members = download(tmp_path / "corrupt", "voxceleb-corrupt", rows("talk"))
    assert sorted(members) == sorted(clean)
    for key, files in members.items():
        assert sorted(files) == ["json", "mel.npy", "mp4"]
        record = json.loads(files["json"])["corrupt"]
        assert record["key"] == key and record["seed"] == 0 and {"video", "audio"} <= set(record)
    assert any(files["mp4"] != clean[key]["mp4"] for key, files in members.items())


def test_voxceleb_preset_cuts_inside_clip_column(tmp_path):
    table = [{"url": str(DATA / FILES["talk"]), "segments": [[0.5, 3.0], [3.0, 4.4]]}]
    meta, members = download(tmp_path, "voxceleb", table, clip_col="segments")
    [record] = meta.values()
    assert record["status"] == "success" and record["outputs"] == 1  # [3.0, 4.4] is shorter than 2 s
    [files] = members.values()
    assert json.loads(files["json"])["span"] == [0.5, 2.5]


def test_audio16k_preset(tmp_path):
    meta, members = download(tmp_path, "audio16k", rows("talk", "speech", "silent"))
    assert meta[FILES["silent"]]["error_message"] == "no audio stream (require_audio)"
    assert sorted(members) == sorted(meta[FILES[n]]["key"] for n in ("talk", "speech"))
    for files in members.values():
        assert sorted(files) == ["flac", "json"] and stream_types(files["flac"]) == ["audio"]
        audio = streams(files["flac"])["audio"]
        assert (audio["sample_rate"], audio["channels"]) == (16000, 1)


def test_esc50_preset(tmp_path):
    meta, members = download(tmp_path, "esc50", rows("talk", "speech", "tiny"))
    assert meta[FILES["tiny"]]["status"] == "filtered"  # 30 ms < min_seconds 1.0
    assert meta[FILES["talk"]]["outputs"] == 1 and meta[FILES["speech"]]["outputs"] == 1
    durations = sorted(round(streams(f["flac"])["audio"]["duration"], 2) for f in members.values())
    assert durations == [1.54, 4.48]  # shorter than 5 s: kept whole


@pytest.mark.parametrize("config", ["default", {"subsamplers": [{"name": "filter", "min_duration": 1.0}]}])
def test_filters_and_default_preset(tmp_path, config):
    meta, members = download(tmp_path, config, rows("talk", "tiny"))
    if config == "default":
        assert len(members) == 2
    else:
        assert (meta[FILES["tiny"]]["status"], meta[FILES["tiny"]]["error_message"]) == (
            "filtered", "duration 0.03 s < min_duration 1.0")
        assert list(members) == [meta[FILES["talk"]]["key"]]
