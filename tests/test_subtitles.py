"""Subtitles as captions: a loopback page with a ``<track>`` read through yt-dlp, its cues cut to each clip's
span into the clip's txt and json; track choice (languages in order, manual before automatic) and parsing."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
from support import make_media, serve

import v2d_vox
from v2d_vox import subtitles

VTT = """WEBVTT

NOTE a comment block, skipped

00:00:00.500 --> 00:00:01.200 align:start
hello <b>there</b>

cue-2
00:00:01.800 --> 00:00:03.000
across &amp; both

00:03.500 --> 00:04.000
middle
"""


def _members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@pytest.mark.parametrize("captions", [True, False])
def test_page_subtitles_cut_to_clip_spans(tmp_path, captions):
    """Three clips of a 6 s video: a cue crossing clips 0 and 1 lands in both (clamped, timed from each clip's
    start); the clip without cues gets none. With ``captions_are_subtitles`` the cue text is each clip's txt,
    else the row's caption stays the txt and the cues are only in the json."""
    (tmp_path / "v.mp4").write_bytes(make_media(duration=6.0, size=(160, 120)))
    (tmp_path / "en.vtt").write_text(VTT)
    (tmp_path / "t.csv").write_text('url,caption,clips\n"page/v.mp4?subs=fr:none.vtt,en:en.vtt",row,'
                                    '"[[0, 2], [2.5, 4.5], [5, 6]]"\n')
    out = tmp_path / "out"
    with serve(tmp_path) as srv:
        summary = v2d_vox.download(str(tmp_path / "t.csv"), str(out), reader="yt-dlp", caption_col="caption",
                                   clip_col="clips", config={"subsamplers": [{"name": "clip"}]},
                                   url_template=srv.url + "/{url}", subtitle_langs=["de", "en"],
                                   captions_are_subtitles=captions, processes_count=1, progress=False)
    assert summary["status"]["success"] == 1
    [row] = pq.read_table(out / "00000.parquet").to_pylist()
    members = _members(out / "00000.tar")
    keys = [f"{row['key']}_{i:05d}" for i in range(3)]
    metas = [json.loads(members[f"{k}.json"]) for k in keys]
    assert [m["subtitles"]["cues"] for m in metas] == [
        [{"start": 0.5, "end": 1.2, "text": "hello there"}, {"start": 1.8, "end": 2.0, "text": "across & both"}],
        [{"start": 0.0, "end": 0.5, "text": "across & both"}, {"start": 1.0, "end": 1.5, "text": "middle"}],
        []]
    assert all(m["subtitles"]["lang"] == "en" and m["subtitles"]["kind"] == "manual" for m in metas)
    assert all("subtitles" not in m["yt_dlp"] for m in metas)
    txt = [members.get(f"{k}.txt") for k in keys]
    if captions:
        assert txt == [b"hello there\nacross & both", b"across & both\nmiddle", None]
    else:
        assert txt == [b"row"] * 3


def test_whole_source_keeps_every_cue_and_a_bad_track_keeps_the_media(tmp_path):
    """No clips: the output has all cues on the source timeline and their text as its caption. A track that is
    not a subtitle file: the row still succeeds, with the parse error in its json."""
    (tmp_path / "v.mp4").write_bytes(make_media(duration=2.0, size=(160, 120)))
    (tmp_path / "en.vtt").write_text(VTT)
    (tmp_path / "bad.vtt").write_text("WEBVTT\n\nnot a time --> 00:01.000\nx\n")
    (tmp_path / "t.csv").write_text('url\n"page/v.mp4?subs=en:en.vtt"\n"page/v.mp4?subs=en:bad.vtt"\n')
    out = tmp_path / "out"
    with serve(tmp_path) as srv:
        v2d_vox.download(str(tmp_path / "t.csv"), str(out), reader="yt-dlp", url_template=srv.url + "/{url}",
                         subtitle_langs=["en"], captions_are_subtitles=True, processes_count=1, progress=False)
    rows = pq.read_table(out / "00000.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["success", "success"]
    members = _members(out / "00000.tar")
    good, bad = (json.loads(members[f"{r['key']}.json"])["subtitles"] for r in rows)
    assert [c["text"] for c in good["cues"]] == ["hello there", "across & both", "middle"]
    assert good["cues"][2] == {"start": 3.5, "end": 4.0, "text": "middle"}
    assert members[f"{rows[0]['key']}.txt"] == b"hello there\nacross & both\nmiddle"
    assert "cues" not in bad and bad["error"] == "bad cue time 'not a time '"
    assert f"{rows[1]['key']}.txt" not in members and f"{rows[1]['key']}.mp4" in members


def test_choose_languages_in_order_manual_before_automatic():
    info = {"subtitles": {"fr": [{"ext": "vtt", "url": "u/fr"}], "de": [{"ext": "ttml", "url": "u/de"}]},
            "automatic_captions": {"en": [{"ext": "srv1", "url": "a"}, {"ext": "json3", "url": "u/en.j"},
                                          {"ext": "vtt", "url": "u/en.v"}]}}
    assert subtitles.choose(info, ["en", "fr"]) == ("fr", "manual", {"ext": "vtt", "url": "u/fr"})
    assert subtitles.choose(info, ["de", "en"]) == ("en", "automatic", {"ext": "vtt", "url": "u/en.v"})
    assert subtitles.choose(info, ["es"]) is None


def test_parse_srt_and_json3():
    srt = b"1\r\n00:00:01,000 --> 00:00:02,500\r\nfirst\r\nline\r\n\r\n2\r\n00:00:03,000 --> 00:00:03,000\r\nempty\r\n"
    assert subtitles.parse(srt, "srt") == [{"start": 1.0, "end": 2.5, "text": "first line"}]
    j3 = json.dumps({"events": [{"tStartMs": 2000, "dDurationMs": 500, "segs": [{"utf8": "b"}]},
                                {"tStartMs": 0, "dDurationMs": 1500, "segs": [{"utf8": "a "}, {"utf8": "word"}]},
                                {"tStartMs": 100, "dDurationMs": 10, "segs": [{"utf8": "\n"}]}]}).encode()
    assert subtitles.parse(j3, "json3") == [{"start": 0.0, "end": 1.5, "text": "a word"},
                                            {"start": 2.0, "end": 2.5, "text": "b"}]
    with pytest.raises(ValueError, match="bad json3"):
        subtitles.parse(b"[1, 2]", "json3")
