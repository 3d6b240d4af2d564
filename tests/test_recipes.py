"""Recipes on the shipped metadata: VoxCeleb2 spans, frame -> seconds, boxes; ESC-50 urls and types; bad
metadata named by file and line; the CLI writes each table format, and download takes the table as it is."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import v2d_vox
from v2d_vox.cli import main
from v2d_vox.errors import ConfigError
from v2d_vox.recipes import esc50, voxceleb2

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
VOX, ESC = EXAMPLES / "voxceleb2" / "metadata", EXAMPLES / "esc50" / "meta" / "esc50.csv"

def test_voxceleb2_rows_spans_and_tracks():
    rows = voxceleb2(str(VOX), url_template="/m/{identity}/{reference}.mp4")
    assert [(r["identity"], r["video_id"]) for r in rows] == [
        ("id00001", "pc-avs__Input_00002"), ("id00001", "pc-avs__Pose_Source_517600055"),
        ("id00002", "pc-avs__Input_00010"), ("id00003", "pc-avs__Audio_Source_00086"),
        ("id00004", "pc-avs__Audio_Source_00015")]
    row = rows[2]
    assert row["url"] == "/m/id00002/pc-avs__Input_00010.mp4" and row["utterances"] == ["00005", "00006"]
    assert row["clips"] == [[0.0, 2.12], [2.12, 4.24]]  # frames 0-52 and 53-105 at 25 fps, end exclusive
    first, second = row["face_tracks"]
    assert len(first) == 53 and len(second) == 53
    assert second[0] == [2.12, 0.212, 0.111, 0.56, 0.62]  # "000053 0.212 0.111 0.560 0.620": frame 53 -> 2.12 s
    assert voxceleb2(str(VOX))[0]["url"] == "https://www.youtube.com/watch?v=pc-avs__Input_00002"

def test_bad_voxceleb2_files_are_named_with_their_line(tmp_path):
    utt = tmp_path / "id00009" / "abc" / "00001.txt"
    utt.parent.mkdir(parents=True)
    good = "Identity : id00009\nReference : abc\n\nFRAME X Y W H\n000010 0.1 0.2 0.3 0.4\n"
    for text, message in [
        (good + "000011 0.1 0.2 zero 0.4\n", "id00009/abc/00001.txt:6: expected 'FRAME X Y W H' numbers"),
        (good + "000009 0.1 0.2 0.3 0.4\n", "00001.txt:6: frame 9 does not follow frame 10"),
        (good + "000011 0.1 0.2 0.0 0.4\n", "00001.txt:6: box .* is not a fraction"),
        ("Identity : id00009\nSpeaker : x\n", "00001.txt:2: expected a header line"),
        ("Identity : id00009\nFRAME X Y W H\n000001 0.1 0.1 0.2 0.2\n", "00001.txt: no Reference found"),
    ]:
        utt.write_text(text)
        with pytest.raises(ConfigError, match=message):
            voxceleb2(str(tmp_path))
    with pytest.raises(ConfigError, match="no idNNNNN/REFERENCE/NNNNN.txt files"):
        voxceleb2(str(tmp_path / "id00009"))

def test_esc50_rows_and_bad_csv(tmp_path):
    rows = esc50(str(ESC), "http://host/audio/")
    assert rows[0] == {"url": "http://host/audio/1-100001-A-0.wav", "filename": "1-100001-A-0.wav", "fold": 1,
                       "target": 0, "category": "speech", "esc10": False, "src_file": "100001", "take": "A"}
    assert sorted({r["fold"] for r in rows}) == [1, 2, 3, 4, 5] and {r["target"] for r in rows} == {0, 1}
    bad = tmp_path / "esc50.csv"
    bad.write_text("filename,fold,target,category\na.wav,1,0,dog\nb.wav,one,0,dog\n")
    with pytest.raises(ConfigError, match=r"esc50.csv:3: fold and target must be integers"):
        esc50(str(bad), "audio")
    bad.write_text("filename,fold\na.wav,1\n")
    with pytest.raises(ConfigError, match=r"esc50.csv:1: missing column\(s\) target, category"):
        esc50(str(bad), "audio")

@pytest.mark.parametrize("ext", ["parquet", "csv", "jsonl"])
def test_cli_writes_each_format_and_download_takes_it(tmp_path, ext, capsys):
    table = tmp_path / f"vox.{ext}"
    template = str(EXAMPLES / "voxceleb2" / "media" / "{reference}.mp4")
    assert main(["recipe", "voxceleb2", str(VOX), str(table), "--url_template", template]) == 0
    assert "voxceleb2: 5 rows" in capsys.readouterr().out
    if ext != "parquet":
        return
    assert main(["recipe", "esc50", str(ESC), str(tmp_path / "esc.csv")]) == 0  # audio_base: ../audio
    assert (tmp_path / "esc.csv").read_text().splitlines()[1].startswith(f"\"{EXAMPLES}/esc50/audio/")
    assert main(["recipe", "esc50", str(ESC), str(tmp_path / "esc.txt")]) == 2
    # one source: face-cropped 2 s clips with identity, video id and the clip's own track in the json
    one = tmp_path / "one.parquet"
    pq.write_table(pq.read_table(table).slice(2, 1), one)
    v2d_vox.download(str(one), str(tmp_path / "out"), clip_col="clips", config="voxceleb2", processes_count=1,
                     progress=False)
    meta = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()[0]
    assert meta["status"] == "success" and meta["outputs"] == 2

    with tarfile.open(tmp_path / "out" / "00000.tar") as tar:
        js = [json.loads(tar.extractfile(m).read()) for m in tar.getmembers() if m.name.endswith(".json")]
    assert [j["span"] for j in js] == [[0.0, 2.0], [2.12, 4.12]]
    assert all(j["identity"] == "id00002" and j["video_id"] == "pc-avs__Input_00010" for j in js)
    assert js[0]["face_crop"]["box"][2] == 194 and "face_tracks" not in js[0] and len(js[0]["face_track"]) == 50
