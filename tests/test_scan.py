"""scan: planted corrupt, too-short, audio-less, duplicate and one-video-identity samples are reported,
exactly those; the clean shards it writes pass a second scan."""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import pyarrow.parquet as pq
import pytest
from support import DATA, TALKING_HEADS, make_tar

import v2d_vox
from v2d_vox.checks import flag_identities
from v2d_vox.cli import main
from v2d_vox.tars import read_tar

CHECKS = {"min_duration": 1.5, "require_audio": True, "identity_field": "identity"}


def sample(media: str | bytes, identity: str, video_id: str | None = None) -> dict[str, bytes]:
    data = media if isinstance(media, bytes) else (DATA / media).read_bytes()
    meta = {"identity": identity, **({"video_id": video_id} if video_id else {})}
    return {"mp4": data, "json": json.dumps(meta).encode()}


@pytest.fixture(scope="module")
def planted(tmp_path_factory, synthetic_dir) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    head1, head2, head3 = TALKING_HEADS
    make_tar(folder / "00000.tar", [
        ("a1", sample(head1, "A", "vA1")),
        ("a2", sample(head2, "A", "vA2")),
        ("b1", sample(head3, "B", "vB1")),
        ("corrupt", sample("decord__corrupted.mp4", "B", "vB9")),
    ])
    make_tar(folder / "00001.tar", [
        ("b2", sample(head1, "B", "vB2")),
        ("short", sample("imageio__realshort.mp4", "A", "vA3")),
        ("silent", sample((synthetic_dir / "video_only_2s.mp4").read_bytes(), "B", "vB3")),
        ("a1", sample(head1, "A", "vA1")),  # same key as in 00000.tar
        ("c_00000", sample(head2, "C")),  # two clips of video "c" (key prefix): no positive, but negatives
        ("c_00001", sample(head3, "C")),
    ])
    return folder


def test_scan_reports_exactly_the_planted_samples(planted, tmp_path):
    report, clean = tmp_path / "report", tmp_path / "clean"
    summary = v2d_vox.scan(str(planted), str(report), write_clean=str(clean), processes_count=2, **CHECKS)
    assert summary["reasons"] == {"decode error": 1, "too short": 1, "no audio": 1, "duplicate key": 1}
    assert (summary["samples"], summary["bad_samples"], summary["identities"]) == (10, 4, 3)
    bad = pq.read_table(report / "bad_samples.parquet").to_pylist()
    found = {(Path(r["shard"]).name, r["key"], r["reasons"][0].split(":")[0]) for r in bad}
    assert found == {("00000.tar", "corrupt", "decode error"), ("00001.tar", "short", "too short"),
                     ("00001.tar", "silent", "no audio"), ("00001.tar", "a1", "duplicate key")}
    assert all(len(r["reasons"]) == 1 for r in bad)
    assert json.loads((report / "summary.json").read_text())["bad_samples"] == 4
    again = v2d_vox.scan(str(planted), str(report), progress=False, **CHECKS)  # resumes: nothing decoded twice
    assert again["shards_skipped"] == 2 and again["reasons"] == summary["reasons"]

    assert sorted(p.name for p in clean.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert [k for k, _ in read_tar(str(clean / "00000.tar"))] == ["a1", "a2", "b1"]
    assert [k for k, _ in read_tar(str(clean / "00001.tar"))] == ["b2", "c_00000", "c_00001"]
    assert dict(read_tar(str(clean / "00001.tar")))["b2"] == dict(read_tar(str(planted / "00001.tar")))["b2"]
    rescan = v2d_vox.scan(str(clean / "{00000..00001}.tar"), str(tmp_path / "report2"), progress=False,
                          write_clean=str(tmp_path / "clean2"), **CHECKS)
    assert (rescan["samples"], rescan["bad_samples"], rescan["reasons"]) == (6, 0, {})
    for name in ("00000.tar", "00001.tar"):  # deterministic: the same samples give the same bytes
        assert (tmp_path / "clean2" / name).read_bytes() == (clean / name).read_bytes()


def remux(video: bytes, audio: bytes) -> bytes:
    """The video stream of one file and the audio stream of another in one mp4."""
    buf = io.BytesIO()
    with av.open(io.BytesIO(video)) as v, av.open(io.BytesIO(audio)) as a, \
            av.open(buf, "w", format="mp4") as out:
        streams = {s: out.add_stream_from_template(s) for s in (v.streams.video[0], a.streams.audio[0])}
        for src in (v, a):
            for packet in src.demux(*(s for s in streams if s.container is src)):
                if packet.dts is not None:
                    packet.stream = streams[packet.stream]
                    out.mux(packet)
    return buf.getvalue()


def test_audio_video_mismatch(tmp_path, synthetic_dir):
    media = remux(*((synthetic_dir / name).read_bytes() for name in ("video_only_2s.mp4", "av_3s.mp4")))
    make_tar(tmp_path / "x.tar", [("late_audio", {"mp4": media})])
    strict = v2d_vox.scan(str(tmp_path), str(tmp_path / "r"), progress=False)
    assert strict["reasons"] == {"audio/video mismatch": 1}
    loose = v2d_vox.scan(str(tmp_path), str(tmp_path / "r"), av_tolerance=1.1, progress=False)
    assert loose["bad_samples"] == 0


def test_identity_coverage_follows_the_loaders_triplet_rule():
    """B has one video: never an anchor, but a negative for A's anchors, as in training; so all three stay."""
    def flagged(pairs):
        records = [{"identity": i, "video_id": v, "reasons": []} for i, v in pairs]
        flag_identities(records)
        return [r["reasons"][0].split(":")[0] if r["reasons"] else None for r in records]

    assert flagged([("A", "1"), ("A", "2"), ("B", "3")]) == [None, None, None]
    assert flagged([("A", "1"), ("A", "2")]) == ["no negative", "no negative"]  # one identity: no negative
    assert flagged([("A", "1"), ("A", "1"), ("B", "3")]) == ["no positive"] * 3  # no identity with two videos


def test_cli_reports_unreadable_shards(planted, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "00000.tar").write_bytes((planted / "00000.tar").read_bytes())
    (folder / "00001.tar").write_bytes(b"not a tar at all" * 100)
    rc = main(["scan", str(folder), "--report_folder", str(tmp_path / "r"), "--min_duration", "1.5",
               "--no-progress"])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert rc == 1 and summary["shards_failed"] == [str(folder / "00001.tar")]
    assert (summary["samples"], summary["reasons"]) == (4, {"decode error": 1})
