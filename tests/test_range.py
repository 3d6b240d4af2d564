"""Only the bytes the spans need, over a Range-capable loopback server: a long mp4 (index before or after the
media) with three short spans is fetched as a small fraction of its bytes and gives the same clips, byte for
byte, as the whole file; a server without Range, another container, or spans covering most of the file get
the whole file."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
from support import DATA, long_media, serve

import v2d_vox
from subsamplers import build_chain
from v2d_vox.config import ReaderConfig
from v2d_vox.probe import probe
from v2d_vox.reader import read_parts
from v2d_vox.totals import folder_stats, format_stats

SECONDS = 150.0
SPANS = [[20.0, 24.0], [75.5, 79.5], [130.0, 134.0]]
STEPS = [{"name": "filter", "require_video": True, "require_audio": True},
         {"name": "clip", "clip_seconds": 2.0},
         {"name": "resample_video", "fps": 25, "width": 112, "height": 112, "mode": "crop"},
         {"name": "resample_audio", "sample_rate": 16000, "channels": 1}]


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory):
    """Two long sources: the index (moov) before the media (faststart) and after it."""
    d = tmp_path_factory.mktemp("long")
    long_media(d / "fast.mp4", SECONDS, size=(256, 144))
    long_media(d / "end.mp4", SECONDS, size=(256, 144), faststart=False, seed=1)
    return d


@pytest.mark.parametrize("name", ["fast.mp4", "end.mp4"])
def test_read_parts_fetches_the_index_and_the_spans_only(long_dir, name):
    whole = (long_dir / name).read_bytes()
    with serve(long_dir) as srv:
        data, fetched = read_parts(f"{srv.url}/range/{name}", ReaderConfig(), SPANS)
        served = srv.served[f"/range/{name}"]
    assert len(data) == len(whole) and fetched == served < 0.3 * len(whole)
    assert probe(data) == probe(whole)  # head, index and tail check read the same from the sparse body


def test_whole_file_without_range_for_other_containers_and_for_dense_spans(long_dir, synthetic_dir):
    whole = (long_dir / "fast.mp4").read_bytes()
    mkv = (synthetic_dir / "av_1s.mkv").read_bytes()
    with serve(long_dir, synthetic_dir) as srv:
        assert read_parts(f"{srv.url}/media/fast.mp4", ReaderConfig(), SPANS) == (whole, len(whole))
        assert read_parts(f"{srv.url}/range/fast.mp4", ReaderConfig(), [[0, 120]]) == (whole, len(whole))
        assert read_parts(f"{srv.url}/range/av_1s.mkv", ReaderConfig(), [[0, 0.5]]) == (mkv, len(mkv))
        assert srv.served == {"/media/fast.mp4": len(whole), "/range/fast.mp4": len(whole),
                              "/range/av_1s.mkv": len(mkv)}  # nothing fetched twice


def test_chain_narrows_reading_only_from_a_clip_column():
    row = {"clips": json.dumps(SPANS)}
    assert build_chain(STEPS).source_spans(row) == [tuple(s) for s in SPANS]
    assert build_chain(STEPS).source_spans({"clips": None}) is None  # windows tile the whole source
    assert build_chain([{"name": "clip", "use_clip_col": False}]).source_spans(row) is None
    # a step that decodes the source itself (corrupt's noise levels) needs all of it
    assert build_chain([*STEPS, {"name": "corrupt", "p_noise": 1.0}]).source_spans(row) is None


def _members(tar_path) -> dict[str, bytes]:
    with tarfile.open(tar_path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_download_with_range_gives_the_same_clips_as_the_whole_file(tmp_path, long_dir):
    """Each source read twice in one job, through Range and through a server without it: the same clips
    (media bytes, json but for the url), and the parquet and stats say how few bytes were fetched."""
    names = ["fast.mp4", "end.mp4"]
    paths = [f"{route}/{name}" for name in names for route in ("range", "media")]
    table = tmp_path / "rows.jsonl"
    with serve(long_dir) as srv:
        table.write_text("".join(json.dumps({"url": f"{srv.url}/{p}", "clips": SPANS}) + "\n" for p in paths))
        v2d_vox.download(str(table), str(tmp_path / "out"), config={"subsamplers": STEPS}, clip_col="clips",
                         processes_count=1, thread_count=2, progress=False)
        served = dict(srv.served)
    rows = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["success"] * 4 and [r["outputs"] for r in rows] == [6] * 4
    members = _members(tmp_path / "out" / "00000.tar")
    for i, name in enumerate(names):
        size = (long_dir / name).stat().st_size
        ranged, whole = rows[2 * i], rows[2 * i + 1]
        assert ranged["source_bytes"] == whole["source_bytes"] == whole["bytes_downloaded"] == size
        assert ranged["bytes_downloaded"] == served[f"/range/{name}"] < 0.3 * size
        for clip in range(6):
            a, b = f"{ranged['key']}_{clip:05d}", f"{whole['key']}_{clip:05d}"
            assert members[f"{a}.mp4"] == members[f"{b}.mp4"]
            meta_a, meta_b = (json.loads(members[f"{k}.json"]) for k in (a, b))
            for meta in (meta_a, meta_b):
                for field in ("url", "key", "source_key"):
                    meta.pop(field)
            assert meta_a == meta_b
    stats = json.loads((tmp_path / "out" / "00000_stats.json").read_text())
    assert stats["source_bytes"] == 2 * sum((long_dir / n).stat().st_size for n in names)
    assert stats["bytes_downloaded"] == sum(served.values()) < 0.7 * stats["source_bytes"]
    summary = json.loads((tmp_path / "out" / "_job_summary.json").read_text())
    assert summary["source_bytes"] == stats["source_bytes"]
    assert summary["bytes_downloaded"] == stats["bytes_downloaded"]
    assert "of sources (0." in format_stats(folder_stats(str(tmp_path / "out")))


def test_spans_outside_a_short_source_still_work(tmp_path):
    """A source shorter than its spans: the clip step clamps as before, the reader fetches what exists."""
    name = "pc-avs__Input_00010.mp4"
    with serve(DATA) as srv:
        data, fetched = read_parts(f"{srv.url}/range/{name}", ReaderConfig(), [[3.0, 9.0]])
    assert data == (DATA / name).read_bytes() and fetched == len(data)
