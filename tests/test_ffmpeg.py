"""The fused ffmpeg pass on real media: exact clips, resampling, stream choice, odd inputs, safety."""

from __future__ import annotations

import glob
import io
import os
import stat
import subprocess
import tempfile
from pathlib import Path

import av
import pytest
from support import DATA, make_media, stream_types, streams

from v2d_vox import ffmpeg as vf
from v2d_vox import plan as vp
from v2d_vox.errors import SampleError, SubsampleError
from v2d_vox.plan import AudioSpec, Edit, Layout, MediaPlan, Mix
from v2d_vox.probe import probe
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Chain
from v2d_vox.worker import run_chain

TALK = DATA / "pc-avs__Pose_Source_517600055.mp4"  # 4.54 s, 224x224@25, aac 16 kHz mono
SHORT = DATA / "imageio__realshort.mp4"  # 1.2 s, 320x240@30, aac 48 kHz
WAV = DATA / "lhotse__LJ002-0020.wav"  # 1.54 s, 22.05 kHz mono
FRAME = 1 / 25
VOX = [{"name": "clip", "clip_seconds": 2.0}, {"name": "resample_video", "fps": 25, "width": 224, "height": 224,
                                               "mode": "crop"},
       {"name": "resample_audio", "sample_rate": 16000, "channels": 1}]


def load(path: Path, **meta) -> Sample:
    data = path.read_bytes()
    info = probe(data)
    return Sample(path.stem, {info["ext"]: data, "txt": b"caption"}, {"probe": info, **meta})


def run(path: Path, specs: list[dict], **meta) -> list[Sample]:
    return run_chain(Chain.from_specs(specs), load(path, **meta))


def ffmpeg(*args: str | Path) -> None:
    subprocess.run([vf.ffmpeg_exe(), "-loglevel", "error", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    """Synthetic stand-ins for real-world layouts: what each test needs of them is the structure."""
    d = tmp_path_factory.mktemp("odd_media")

    def write(name: str, data: bytes) -> Path:
        (d / name).write_bytes(data)
        return d / name

    # two programmes in one mp4 (320x180@25 + 8 kHz, 480x270@30 + 16 kHz), each with a mov_text subtitle
    first = write("first.mp4", make_media(3.0, size=(320, 180), sample_rate=8000, seed=1))
    second = write("second.mp4", make_media(3.0, fps=30, size=(480, 270), sample_rate=16000, seed=2))
    (d / "subs.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nhello\n")
    ffmpeg("-i", first, "-i", second, "-i", d / "subs.srt", "-map", "0:v", "-map", "0:a", "-map", "2",
           "-map", "1:v", "-map", "1:a", "-map", "2", "-c", "copy", "-c:s", "mov_text", d / "multi_stream.mp4")
    # 1 s mp3 whose cover picture (mjpeg, attached_pic) shows up as a "video" stream
    tune = write("tune.mp3", make_media(1.0, video=False, container="mp3", acodec="libmp3lame",
                                        sample_rate=44100))
    ffmpeg("-i", tune, "-f", "lavfi", "-i", "testsrc=size=640x480:rate=1", "-map", "0:a", "-map", "1:v",
           "-frames:v", "1", "-c:a", "copy", "-c:v", "mjpeg", "-disposition:v", "attached_pic", d / "cover_art.mp3")
    write("vfr.mp4", make_media(5.0, fps=24, size=(640, 272), audio=False, drop_every=3))  # avg 16 fps
    write("mpeg4_mp3.avi", make_media(7.0, container="avi", vcodec="mpeg4", acodec="libmp3lame",
                                      sample_rate=44100))
    write("h264_opus.mkv", make_media(7.0, fps=30, container="matroska", acodec="libopus", sample_rate=48000))
    return {p.name: p for p in d.iterdir()}


def assert_synced(info: dict, seconds: float, fps: float = 25, rate: int = 16000):
    v, a = info["video"], info["audio"]
    assert abs(v["duration"] - seconds) <= 1 / fps + 1e-6 and v["frames"] == round(seconds * fps)
    assert abs(a["duration"] - v["duration"]) <= 0.040
    assert v["fps"] == fps and a["sample_rate"] == rate


def test_fixed_clips_exact_synced_with_provenance():
    outs = run(TALK, VOX)
    assert [o.key for o in outs] == ["pc-avs__Pose_Source_517600055_00000", "pc-avs__Pose_Source_517600055_00001"]
    for i, out in enumerate(outs):
        assert sorted(out.files) == ["mp4", "txt"]
        info = streams(out.files["mp4"])
        assert_synced(info, 2.0)
        assert (info["video"]["width"], info["video"]["height"], info["audio"]["channels"]) == (224, 224, 1)
        meta = out.meta
        assert (meta["source_key"], meta["clip_index"], meta["span"]) == (TALK.stem, i, [2.0 * i, 2.0 * i + 2])
        assert [s["name"] for s in meta["subsamplers"]] == ["clip", "resample_video", "resample_audio"]
        assert meta["subsamplers"][0]["clip_seconds"] == 2.0 and meta["probe"]["duration"] == 4.48


def test_spans_from_clip_column_and_keyframe_every_second():
    outs = run(TALK, [{"name": "clip"}, {"name": "resample_audio", "sample_rate": 16000}],
               clips="[[0.52, 1.72], [2, 4.4]]")
    assert [o.meta["span"] for o in outs] == [[0.52, 1.72], [2.0, 4.4]]
    for out, seconds in zip(outs, (1.2, 2.4)):
        assert_synced(streams(out.files["mp4"]), seconds)
    with av.open(io.BytesIO(outs[1].files["mp4"])) as c:
        keys = [round(float(p.pts * p.time_base), 2) for p in c.demux(video=0) if p.is_keyframe]
    assert keys == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("args, size", [
    ({"short_side": 120}, (160, 120)),
    ({"width": 224, "height": 224, "mode": "scale"}, (224, 224)),
    ({"width": 200, "height": 100, "mode": "crop"}, (200, 100)),
    ({"width": 224, "height": 224, "mode": "pad"}, (224, 224)),
])
def test_resample_video_size_modes(args, size):
    [out] = run(SHORT, [{"name": "resample_video", "fps": 10, **args}])
    info = streams(out.files["mp4"])
    assert (info["video"]["width"], info["video"]["height"], info["video"]["fps"]) == (*size, 10)
    assert info["audio"]["sample_rate"] == 48000  # audio kept as it was
    assert out.key == SHORT.stem and "span" not in out.meta


@pytest.mark.parametrize("fmt", ["m4a", "flac", "wav", "opus"])
def test_separate_audio_member(fmt):
    [out] = run(SHORT, [{"name": "resample_audio", "sample_rate": 16000, "channels": 1, "format": fmt,
                         "separate": True}])
    assert sorted(out.files) == sorted(["mp4", fmt, "txt"])
    assert stream_types(out.files["mp4"]) == ["video"]
    audio = streams(out.files[fmt])["audio"]
    assert (audio["sample_rate"], audio["channels"]) == (48000 if fmt == "opus" else 16000, 1)  # opus decodes at 48k
    assert abs(audio["duration"] - 1.17) < 0.05


def test_audio_only_source_gives_audio_only_clips():
    outs = run(WAV, [{"name": "clip", "clip_seconds": 0.5}] + VOX[1:])
    assert [sorted(o.files) for o in outs] == [["m4a", "txt"]] * 3
    for out in outs:
        audio = streams(out.files["m4a"])["audio"]
        assert abs(audio["duration"] - 0.5) < 0.01 and audio["sample_rate"] == 16000


def test_streams_video_false_and_flac_format():
    [out] = run(TALK, [{"name": "streams", "video": False}, {"name": "resample_audio", "format": "flac"}])
    assert sorted(out.files) == ["flac", "txt"] and stream_types(out.files["flac"]) == ["audio"]
    with pytest.raises(SubsampleError, match="no audio stream to keep"):
        run(DATA / "pyscenedetect__delayed_start.mp4", [{"name": "streams", "video": False}])


def test_silent_video_with_late_start():
    """No audio and a stream start of 1.075 s (edit list): video-only clips, never a crash."""
    outs = run(DATA / "pyscenedetect__delayed_start.mp4", [{"name": "clip", "clip_seconds": 0.5}])
    assert outs and all(stream_types(o.files["mp4"]) == ["video"] for o in outs)


def test_rotated_source_uses_display_size(tmp_path):
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([vf.ffmpeg_exe(), "-loglevel", "error", "-display_rotation", "90", "-i", str(SHORT),
                    "-c", "copy", str(rotated)], check=True)
    [out] = run(rotated, [{"name": "resample_video", "short_side": 120}])
    info = streams(out.files["mp4"])["video"]
    assert (info["width"], info["height"]) == (120, 160)


def test_moov_at_end_is_read(tmp_path):
    """An mp4 with its index at the end cannot be read from a pipe; the seekable fd input can."""
    moov_end = tmp_path / "moov_end.mp4"
    subprocess.run([vf.ffmpeg_exe(), "-loglevel", "error", "-i", str(TALK), "-c", "copy", str(moov_end)],
                   check=True)
    data = moov_end.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")
    outs = run(moov_end, VOX)
    assert len(outs) == 2


def test_multi_stream_picks_first_video_and_audio(odd):
    assert stream_types(odd["multi_stream.mp4"].read_bytes()) == ["video", "audio", "subtitle"] * 2
    outs = run(odd["multi_stream.mp4"], [{"name": "clip", "clip_seconds": 2, "max_clips": 1}])
    info = streams(outs[0].files["mp4"])
    assert stream_types(outs[0].files["mp4"]) == ["video", "audio"]  # no second video, no subtitles
    assert (info["video"]["width"], info["audio"]["sample_rate"]) == (320, 8000)


def test_vfr_source_becomes_constant_rate(odd):
    outs = run(odd["vfr.mp4"],
               [{"name": "clip", "clip_seconds": 2, "max_clips": 2}, {"name": "resample_video", "fps": 25,
                                                                     "short_side": 128}])
    for out in outs:
        v = streams(out.files["mp4"])["video"]
        assert v["frames"] == 50 and v["fps"] == 25 and (v["width"], v["height"]) == (302, 128)


def test_cover_art_mp3_is_audio_only(odd):
    assert stream_types(odd["cover_art.mp3"].read_bytes()) == ["audio", "video"]
    outs = run(odd["cover_art.mp3"], VOX[1:])
    assert [sorted(o.files) for o in outs] == [["m4a", "txt"]]


def test_avi_and_mkv_opus_clips_stay_in_sync(odd):
    for name in ("mpeg4_mp3.avi", "h264_opus.mkv"):
        outs = run(odd[name], VOX, clips="[[0, 2], [4.5, 6.5]]")
        for out in outs:
            assert_synced(streams(out.files["mp4"]), 2.0)


def test_per_clip_filters_and_noise_mix():
    """The hooks a corruption step uses: per-clip filter strings and an extra (looped) noise input."""
    noise = (DATA / "tflite-micro-speech__no_1000ms.wav").read_bytes()
    plan = MediaPlan(Layout(spans=[(0.0, 2.0), (2.0, 4.0)], audio=AudioSpec(sample_rate=16000)),
                     edits={0: Edit(audio_filters=["volume=0.5"]),
                            1: Edit(video_filters=["hflip", "eq=brightness=0.2"], mix=Mix(noise, gain_db=-6))})
    outs = vf.run_plan(plan, load(TALK))
    for out in outs:
        assert_synced(streams(out.files["mp4"]), 2.0)  # the 1 s noise is looped under the 2 s clip


@pytest.fixture(scope="module")
def long_source() -> bytes:
    return make_media(40.0, size=(64, 48), seed=5)


def test_probe_of_a_long_source_reads_its_tail(long_source, tmp_path):
    """Past 2 x probe.TAIL seconds the probe skips to the last seconds for the truncation check: a whole file
    passes, one whose index is first but whose data is cut in half is still refused."""
    (tmp_path / "long.mp4").write_bytes(long_source)
    ffmpeg("-i", tmp_path / "long.mp4", "-c", "copy", "-movflags", "+faststart", tmp_path / "fast.mp4")
    data = (tmp_path / "fast.mp4").read_bytes()
    assert probe(long_source)["duration"] == probe(data)["duration"] == 40.0
    with pytest.raises(SampleError, match=r"truncated media: data ends before the 40.00 s declared"):
        probe(data[: len(data) // 2])


def test_sparse_clips_seek_per_segment_and_equal_one_range(monkeypatch, long_source):
    """Three clips far apart in a 40 s source: one input per clip, each seeked near it, in ONE ffmpeg process;
    the clips are byte-identical to those of a pass that decodes from the first clip to the last."""
    data = long_source
    sample = Sample("long", {"mp4": data}, {"probe": probe(data)})
    plan = MediaPlan(Layout(spans=[(18.0, 19.5), (2.0, 3.0), (35.0, 36.04)],
                            video=vp.VideoSpec(fps=25, width=32, height=32, mode="crop"),
                            audio=AudioSpec(sample_rate=16000, channels=1)))
    assert len(vf.compile_plan(plan, sample).inputs) == 3
    seeked = vf.run_plan(plan, sample)
    monkeypatch.setattr(vp, "SEEK_GAP", 1e9)
    assert len(vf.compile_plan(plan, sample).inputs) == 1
    whole = vf.run_plan(plan, sample)
    assert [o.key for o in seeked] == [o.key for o in whole] == ["long_00000", "long_00001", "long_00002"]
    for a, b, seconds in zip(seeked, whole, (1.5, 1.0, 1.04)):
        assert a.files["mp4"] == b.files["mp4"] and a.meta == b.meta
        info = streams(a.files["mp4"])
        assert abs(info["video"]["duration"] - seconds) <= FRAME + 1e-6
        assert abs(info["audio"]["duration"] - info["video"]["duration"]) <= 0.040


def shm_dirs() -> set[str]:
    return set(glob.glob(os.path.join("/dev/shm", "v2d_vox_*"))) | set(
        glob.glob(os.path.join(tempfile.gettempdir(), "v2d_vox_*")))


def test_failure_message_is_clean_and_temp_files_removed():
    before = shm_dirs()
    with pytest.raises(SubsampleError) as e:
        vf.run_plan(MediaPlan(edits={0: Edit(video_filters=["nosuchfilter=1"])}), load(TALK))
    msg = str(e.value)
    assert msg.startswith("ffmpeg failed") and "nosuchfilter" in msg
    assert "/" not in msg.replace("/libx264", "") and "0x" not in msg
    assert shm_dirs() == before


def test_timeout_kills_ffmpeg_and_cleans_up():
    before = shm_dirs()
    with pytest.raises(SubsampleError, match=r"ffmpeg timed out after 0.01 s \(killed\)"):
        vf.run_plan(MediaPlan(Layout(spans=[(0.0, 2.0)]), timeout=0.01), load(TALK))
    assert shm_dirs() == before


def test_corrupted_or_broken_inputs_end_with_a_status():
    for path in (DATA / "decord__corrupted.mp4", DATA / "extra" / "moviepy__no_duration.webm"):
        try:
            outs = run(path, VOX)
        except SampleError as e:
            assert e.status in ("failed_to_subsample", "filtered") and str(e)
        else:
            assert all(o.files["mp4"] for o in outs)


def test_inputs_may_only_use_the_fd_protocol(tmp_path):
    """Every input is ``-protocol_whitelist fd``: a playlist naming a local file cannot make ffmpeg read it."""
    command = vf.compile_plan(MediaPlan(Layout(spans=[(0, 1)]), edits={0: Edit(mix=Mix(b""))}), load(TALK))
    args = command.args([3, 4], vf.GRAPH_FILE)
    inputs = [i for i, a in enumerate(args) if a == "-i"]
    assert len(inputs) == 2 and all(args[i + 1] == "fd:" for i in inputs)
    assert args.count("-protocol_whitelist") == 2 and args.count("fd") == 2
    segment = tmp_path / "seg.ts"
    subprocess.run([vf.ffmpeg_exe(), "-loglevel", "error", "-i", str(TALK), "-c", "copy", str(segment)], check=True)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.5,\nfile:{segment}\n#EXT-X-ENDLIST\n".encode()

    def read_playlist(whitelist: str) -> int:
        with tempfile.TemporaryFile() as f:
            f.write(playlist)
            f.flush()
            f.seek(0)
            cmd = [vf.ffmpeg_exe(), "-loglevel", "quiet", "-protocol_whitelist", whitelist, "-f", "hls",
                   "-fd", str(f.fileno()), "-i", "fd:", "-f", "null", "-"]
            return subprocess.run(cmd, pass_fds=(f.fileno(),)).returncode

    assert read_playlist("fd,file") == 0  # the file would be read...
    assert read_playlist("fd") != 0  # ...but not with the whitelist run_plan uses


CORRUPT_ALL = {"name": "corrupt", "keep_clean": True, **{f"p_{c}": 1.0 for c in (
    "drop_frames", "color", "blur", "occlusion", "noise", "compress", "audio_noise", "gain", "dropout")}}


@pytest.mark.parametrize("extra, members", [
    ([], ["flac", "mp4", "txt"]),
    ([CORRUPT_ALL], ["corrupt.flac", "corrupt.mp4", "flac", "mp4", "txt"]),  # + a noise input, clean kept
])
def test_one_ffmpeg_process_per_source(tmp_path, monkeypatch, extra, members):
    """clip + resample video + resample audio into a separate member (+ corrupt): 3 clips, one ffmpeg."""
    log = tmp_path / "calls.log"
    wrapper = tmp_path / "bin" / "ffmpeg"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {vf.ffmpeg_exe()} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    vf.ffmpeg_exe.cache_clear()
    try:
        assert vf.ffmpeg_exe() == str(wrapper)
        outs = run(DATA / "extra" / "pc-avs__Audio_Source_00015.mp4",
                   [{"name": "clip", "clip_seconds": 2}, {"name": "resample_video", "fps": 25, "short_side": 112},
                    {"name": "resample_audio", "sample_rate": 16000, "format": "flac", "separate": True}, *extra])
    finally:
        vf.ffmpeg_exe.cache_clear()
    assert [sorted(o.files) for o in outs] == [members] * 3
    calls = [line for line in log.read_text().splitlines() if " -i " in f" {line} "]
    assert len(calls) == 1
