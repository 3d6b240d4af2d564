"""The yt-dlp reader against a loopback "video site": pages with <video>/og:video and direct media through its
generic extractor, format choice, yt-dlp's messages and metadata in the rows, and a host that blocks us."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import yt_dlp
from support import DATA, serve

import v2d_vox
from v2d_vox import ytdlp
from v2d_vox.config import ReaderConfig, YtdlpConfig
from v2d_vox.layout import Layout

A, B = "pc-avs__Input_00010.mp4", "imageio__realshort.mp4"  # 224x224 and 320x240


def test_auto_picks_yt_dlp_only_for_sites_it_knows():
    assert ytdlp.knows("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert not ytdlp.knows("http://127.0.0.1:8000/media/a.mp4") and not ytdlp.knows("/data/a.mp4")
    assert ytdlp.knows("https://www.dropbox.com/s/abc/clip.mp4?dl=0")  # a page, though it ends in .mp4


def test_format_choice_between_the_sources_of_a_page():
    """Default: the best at most 360p high (B, 240p); ``worst``: the 224p one. Direct media keeps its bytes."""
    with serve(DATA) as srv:
        page = f"{srv.url}/page/{A},{B}"
        default, meta = ytdlp.read(page, YtdlpConfig(), ReaderConfig())
        worst, _ = ytdlp.read(page, YtdlpConfig(format="worst"), ReaderConfig())
        direct, direct_meta = ytdlp.read(f"{srv.url}/media/{A}", YtdlpConfig(), ReaderConfig())
    assert default == (DATA / B).read_bytes() and worst == direct == (DATA / A).read_bytes()
    assert meta["title"] == f"clip {A} (1)" and meta["version"] == yt_dlp.version.__version__
    assert direct_meta["extractor"] == "generic" and meta["webpage_url"] == page


def test_download_with_yt_dlp_rows_template_messages_and_metadata(tmp_path):
    """An id column turned into URLs by url_template: an og:video/<video> page, direct media, a page without
    video and a format no source has; every row ends with yt-dlp's message or its metadata in the json."""
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps({"url": u}) + "\n" for u in (
        f"page/{A}", f"media/{B}", "html/gone", f"page/{A}")))
    out = tmp_path / "out"
    with serve(DATA) as srv:
        summary = v2d_vox.download(str(tmp_path / "ids.jsonl"), str(out), reader="yt-dlp",
                                   url_template=srv.url + "/{url}", processes_count=1, thread_count=2,
                                   progress=False)
    assert summary["shards_done"] == 1
    rows = pq.read_table(out / "00000.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["success", "success", "failed_to_download", "success"]
    assert rows[2]["error_message"] == "yt-dlp: Unsupported URL: <url>"
    assert rows[0]["bytes_downloaded"] == (DATA / A).stat().st_size
    keys = [r["key"] for r in rows]
    with tarfile.open(out / "00000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    meta = json.loads(members[f"{keys[1]}.json"])
    assert meta["yt_dlp"]["extractor"] == "generic" and meta["yt_dlp"]["version"] == yt_dlp.version.__version__
    assert members[f"{keys[1]}.mp4"] == (DATA / B).read_bytes()
    assert json.loads(members[f"{keys[0]}.json"])["yt_dlp"]["title"] == f"clip {A} (1)"


def test_a_missing_format_reaches_the_row(tmp_path):
    (tmp_path / "t.csv").write_text(f"url\npage/{A}\n")
    with serve(DATA) as srv:
        v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "out"), reader="yt-dlp",
                         url_template=srv.url + "/{url}", ytdlp_format="bestvideo[height>=1080]",
                         processes_count=1, progress=False)
    [row] = pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()
    assert row["status"] == "failed_to_download"
    assert row["error_message"].startswith("yt-dlp: [html5]") and "Requested format is not available" in \
        row["error_message"]


def test_a_host_answering_429_is_slowed_then_the_shard_stops_not_done(tmp_path, capsys):
    """Eight rows of a host that answers 429: after max_blocked of them in a row the shard stops (the rest of
    the table is not tried) and stays not-done, so a rerun retries it."""
    (tmp_path / "t.csv").write_text("url\n" + "".join(f"status/429/v{i}\n" for i in range(8)))
    with serve(DATA) as srv:
        summary = v2d_vox.download(str(tmp_path / "t.csv"), str(tmp_path / "out"), reader="yt-dlp",
                                   url_template=srv.url + "/{url}", max_blocked=3, thread_count=1,
                                   processes_count=1, max_shard_retry=0, progress=False)
        hits = sum(n for path, n in srv.hits.items() if path.startswith("/status/429/"))
    assert summary["shards_failed"] == [0] and not Layout(str(tmp_path / "out")).is_done(0)
    assert hits == 3  # v0..v2 were refused; v3 and later never asked
    assert "127.0.0.1 refused 3 requests in a row (HTTP 429/403): stopping" in capsys.readouterr().out
