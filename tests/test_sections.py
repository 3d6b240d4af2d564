"""yt-dlp rows with clip spans download only the sections holding them (``download_ranges``): against a
loopback server, a long source with three short spans gives the same clips as the whole-file path for a small
part of its bytes, and a section download that fails falls back to the whole file with the row still ok. The
same holds for a DASH manifest with separate video-only and audio-only formats (YouTube's shape: yt-dlp's
ffmpeg reads two inputs per section and merges them), and for its audio alone when the chain drops video."""

from __future__ import annotations

import io
import json
import tarfile

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from support import long_media, serve, split_media

import v2d_vox
from v2d_vox import ytdlp
from v2d_vox.config import ReaderConfig, YtdlpConfig
from v2d_vox.errors import SubsampleError
from v2d_vox.ffmpeg import compile_plan
from v2d_vox.plan import MediaPlan, Segment
from v2d_vox.probe import probe, probe_pieces
from v2d_vox.sample import Piece, Sample

SECONDS, FPS = 60.0, 25
SPANS = [[5.0, 7.5], [31.3, 33.9], [52.0, 54.0]]
CLIP, AUDIO = {"name": "clip"}, {"name": "resample_audio", "sample_rate": 16000, "channels": 1}
STEPS = [CLIP, {"name": "resample_video", "fps": FPS, "width": 96, "height": 64, "mode": "crop"}, AUDIO]
AUDIO_STEPS = [CLIP, {"name": "streams", "video": False}, AUDIO]  # yt-dlp then fetches the audio format only


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory):
    """A 60 s source with 10 s GOPs (each section reaches back to its keyframe): its index before the media,
    and one with the index after it, which ffmpeg cannot seek into on a server without Range."""
    d = tmp_path_factory.mktemp("sections")
    long_media(d / "fast.mp4", SECONDS, size=(160, 90), gop=10 * FPS)
    long_media(d / "end.mp4", SECONDS, size=(160, 90), gop=10 * FPS, faststart=False)
    split_media(d / "fast.mp4", d)  # fast.video.mp4 + fast.audio.m4a, for /dash/
    return d


DASH = "dash/fast.video.mp4,fast.audio.m4a/manifest.mpd"


def test_sections_are_the_pass_segments_with_margins():
    assert ytdlp.sections([(5.0, 7.5), (31.3, 33.9), (52.0, 54.0)]) == [(3.5, 8.5), (29.8, 34.9), (50.5, 55.0)]
    assert ytdlp.sections([(0.2, 2.0), (3.0, 4.0)]) == [(0.0, 5.0)]  # close spans share one


def test_pieces_feed_the_segment_each_holds(long_dir):
    """Each segment's input is the piece that holds it, seeked by timestamp; a segment no piece holds, or an
    output of the whole source, fails the row with one line."""
    data = (long_dir / "fast.mp4").read_bytes()
    a, b = Piece(0.0, 10.0, b"first"), Piece(20.0, 40.0, b"second")
    sample = Sample("k", {"mp4": a.data}, {"probe": probe(data)}, pieces=(a, b))
    plan = MediaPlan()
    plan.layout.spans = [(5.0, 7.0), (31.0, 33.0)]
    assert [s for s in plan.layout.segments()] == [Segment(4.0, 7.0, (0,)), Segment(30.0, 33.0, (1,))]
    inputs = compile_plan(plan, sample).inputs
    assert [i.data for i in inputs] == [b"first", b"second"]
    assert inputs[1].options == ["-seek_timestamp", "1", "-ss", "30.000000", "-t", "3.000000"]
    plan.layout.spans = [(45.0, 47.0)]
    with pytest.raises(SubsampleError, match="no fetched section holds the source's 44.00-47.00 s"):
        compile_plan(plan, sample)
    with pytest.raises(SubsampleError, match="fetched in sections only"):
        compile_plan(MediaPlan(), sample)


def _download(tmp_path, url: str, name: str, steps: list[dict] = STEPS, **options) -> tuple[dict, dict[str, bytes]]:
    table = tmp_path / f"{name}.jsonl"
    table.write_text(json.dumps({"url": url, "clips": SPANS}) + "\n")
    out = tmp_path / name
    v2d_vox.download(str(table), str(out), config={"subsamplers": steps}, clip_col="clips", reader="yt-dlp",
                     processes_count=1, thread_count=1, progress=False, **options)
    [row] = pq.read_table(out / "00000.parquet").to_pylist()
    with tarfile.open(out / "00000.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return row, members


def _clip(data: bytes) -> dict[str, object]:
    """Each stream's start and duration (seconds), the decoded grey frames and the audio sample count."""
    frames, samples = [], 0
    with av.open(io.BytesIO(data)) as c:
        times = {s.type: (float(s.start_time * s.time_base), float(s.duration * s.time_base)) for s in c.streams}
        for frame in c.decode():
            if isinstance(frame, av.VideoFrame):
                frames.append(frame.to_ndarray(format="gray"))
            else:
                samples += frame.samples
    frames = np.stack(frames) if frames else None
    return {**times, "frames": frames, "samples": samples}


def _same_clips(parts: dict[str, bytes], whole: dict[str, bytes]) -> list[str]:
    """The clip keys, after checking that both outputs hold the same clips: durations within a frame, starts
    within 40 ms, A/V in sync, the same decoded frames."""
    keys = sorted(k for k in whole if k.endswith(".mp4"))
    assert len(keys) == len(SPANS) and sorted(k for k in parts if k.endswith(".mp4")) == keys
    for key in keys:
        a, b = _clip(parts[key]), _clip(whole[key])
        for kind in ("video", "audio"):
            assert abs(a[kind][1] - b[kind][1]) <= 1 / FPS  # durations within a frame
            assert abs(a[kind][0] - b[kind][0]) <= 0.04
        assert abs(a["video"][0] - a["audio"][0]) <= 0.04  # A/V in sync
        assert a["frames"].shape == b["frames"].shape and np.array_equal(a["frames"], b["frames"])
    return keys


def test_sections_give_the_same_clips_as_the_whole_file(tmp_path, long_dir):
    size = (long_dir / "fast.mp4").stat().st_size
    with serve(long_dir) as srv:
        url = f"{srv.url}/range/fast.mp4"
        parts, part_members = _download(tmp_path, url, "sections")
        whole, whole_members = _download(tmp_path, url, "whole", ytdlp_sections=False)
    assert parts["status"] == whole["status"] == "success" and parts["outputs"] == whole["outputs"] == 3
    assert whole["bytes_downloaded"] == whole["source_bytes"] == size
    assert parts["source_bytes"] is None and 0 < parts["bytes_downloaded"] < 0.7 * size  # 10 s GOPs: from keyframes
    keys = _same_clips(part_members, whole_members)
    meta, whole_meta = (json.loads(m[keys[0].replace(".mp4", ".json")]) for m in (part_members, whole_members))
    assert meta["yt_dlp"]["sections"] == [[3.5, 8.5], [29.8, 34.9], [50.5, 55.0]]
    assert meta["span"] == whole_meta["span"] == SPANS[0] and "sections" not in whole_meta["yt_dlp"]
    # the generic extractor gives no duration: the last section's end stands for it (spans lie inside)
    assert SPANS[-1][1] < meta["probe"]["duration"] < SECONDS


def test_a_failed_section_download_falls_back_to_the_whole_file(tmp_path, long_dir):
    """An mp4 with its index at the end, on a server without Range: yt-dlp's ffmpeg writes sections without
    frames; the row downloads the whole file from the same extraction and its clips come out as usual."""
    size = (long_dir / "end.mp4").stat().st_size
    with serve(long_dir) as srv:
        row, members = _download(tmp_path, f"{srv.url}/media/end.mp4", "fallback")
    assert row["status"] == "success" and row["outputs"] == 3
    assert row["bytes_downloaded"] == row["source_bytes"] == size
    meta = json.loads(members[f"{row['key']}_00000.json"])
    assert meta["yt_dlp"]["sections_error"].startswith("not decodable media") and "sections" not in meta["yt_dlp"]
    assert meta["probe"]["duration"] == SECONDS


def test_separate_video_and_audio_formats_are_fetched_as_merged_sections(long_dir):
    """A DASH manifest of a video-only and an audio-only file: the default format takes both (``bv*+ba``),
    and each section is one file where yt-dlp's ffmpeg merged the two inputs, on the source timeline: video
    from its keyframe, audio from the section's start. The pieces probe as one source with both streams."""
    with serve(long_dir) as srv:
        got, meta = ytdlp.read(f"{srv.url}/{DASH}", YtdlpConfig(), ReaderConfig(), spans=SPANS)
    pieces = got.pieces
    assert meta["format_id"] == "video0+audio1" and "duration" not in meta  # a static MPD: yt-dlp gives none
    assert [(p.start, p.end) for p in pieces] == [tuple(s) for s in meta["sections"]]
    for p in pieces:
        with av.open(io.BytesIO(p.data)) as c:
            video, audio = c.streams.video[0], c.streams.audio[0]
            v0, a0 = float(video.start_time * video.time_base), float(audio.start_time * audio.time_base)
        assert v0 <= p.start and v0 % 10 == 0 and abs(a0 - p.start) < 0.07  # keyframes every 10 s; AAC frames
    info = got.info  # probed once, in ytdlp (probe_pieces)
    assert info == probe_pieces(pieces, None) and info["has_video"] and info["has_audio"]
    assert info["duration"] == pytest.approx(SPANS[-1][1] + 1, abs=0.1)


def test_dash_sections_give_the_same_clips_as_the_merged_whole_file(tmp_path, long_dir):
    """Sections on and off over the DASH manifest: the same clips; the whole-file path merges the two formats
    into one sample with both streams, and the sections cost a fraction of its bytes."""
    with serve(long_dir) as srv:
        url = f"{srv.url}/{DASH}"
        parts, part_members = _download(tmp_path, url, "sections")
        whole, whole_members = _download(tmp_path, url, "whole", ytdlp_sections=False)
    assert parts["status"] == whole["status"] == "success" and parts["outputs"] == whole["outputs"] == 3
    assert 0 < parts["bytes_downloaded"] < 0.7 * whole["bytes_downloaded"]
    keys = _same_clips(part_members, whole_members)
    meta, whole_meta = (json.loads(m[keys[0].replace(".mp4", ".json")]) for m in (part_members, whole_members))
    assert meta["yt_dlp"]["format_id"] == whole_meta["yt_dlp"]["format_id"] == "video0+audio1"
    assert meta["yt_dlp"]["sections"] == [[3.5, 8.5], [29.8, 34.9], [50.5, 55.0]]
    assert whole_meta["probe"]["has_video"] and whole_meta["probe"]["has_audio"]
    assert whole_meta["probe"]["duration"] == pytest.approx(SECONDS, abs=0.1)


def test_audio_only_sections_give_the_same_clips_as_the_whole_audio(tmp_path, long_dir):
    """A chain that drops video fetches the audio format alone (``AUDIO_FORMAT``): its sections are
    audio-only files, whose clips equal the whole audio file's (durations within 20 ms, sample counts within
    one AAC frame)."""
    with serve(long_dir) as srv:
        url = f"{srv.url}/{DASH}"
        parts, part_members = _download(tmp_path, url, "sections", AUDIO_STEPS)
        whole, whole_members = _download(tmp_path, url, "whole", AUDIO_STEPS, ytdlp_sections=False)
    assert parts["status"] == whole["status"] == "success" and parts["outputs"] == whole["outputs"] == 3
    size = (long_dir / "fast.audio.m4a").stat().st_size  # the whole audio file (yt-dlp remuxes DASH m4a: +20 B)
    assert whole["bytes_downloaded"] == whole["source_bytes"] == pytest.approx(size, rel=0.01)
    assert 0 < parts["bytes_downloaded"] < 0.5 * whole["bytes_downloaded"]
    keys = sorted(k for k in whole_members if k.endswith(".m4a"))
    assert len(keys) == len(SPANS) and sorted(k for k in part_members if k.endswith(".m4a")) == keys
    for key in keys:
        a, b = _clip(part_members[key]), _clip(whole_members[key])
        assert "video" not in a and abs(a["audio"][1] - b["audio"][1]) <= 0.02
        assert abs(a["samples"] - b["samples"]) <= 1024
    meta = json.loads(part_members[keys[0].replace(".m4a", ".json")])
    assert meta["yt_dlp"]["format_id"] == "audio1" and meta["yt_dlp"]["sections"] == [[3.5, 8.5], [29.8, 34.9],
                                                                                       [50.5, 55.0]]
    assert not meta["probe"]["has_video"] and meta["span"] == SPANS[0]


def test_sections_of_a_source_whose_timeline_does_not_start_at_0_are_refused(tmp_path):
    """An MPEG-TS section keeps the source's timeline, which starts anywhere (~1.4 s as ffmpeg writes it): cuts
    measured from 0 would shift, so probing refuses the pieces and the row takes the whole file."""
    import subprocess

    from v2d_vox.errors import DownloadError
    from v2d_vox.ffmpeg import ffmpeg_exe

    mp4 = long_media(tmp_path / "s.mp4", 4.0)
    ts = tmp_path / "s.ts"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(ts)],
                   check=True)
    assert probe(ts.read_bytes())["ext"] == "ts"
    with pytest.raises(DownloadError, match="timeline starts at 0"):
        probe_pieces((Piece(0.0, 2.0, ts.read_bytes()),), 4.0)
    assert probe_pieces((Piece(0.0, 2.0, mp4.read_bytes()),), 4.0)["duration"] == 4.0
