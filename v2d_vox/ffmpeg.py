"""Compile a MediaPlan into ONE ffmpeg process per source and run it.

The source is decoded once; a filter graph ``split``s/``asplit``s each stream into one branch per
clip, cuts it exactly with ``trim``/``atrim`` + ``setpts``/``asetpts`` (frame- and sample-accurate,
audio and video cut at the same times), resamples, and every clip and stream is encoded in that same
pass. When clips are given, the input is also seeked to the first clip and read up to the last one
(``-ss``/``-t`` on the input), so a few clips of a long source do not decode all of it.

Safety and hygiene:
- the input is an unlinked temp file handed over as an inherited descriptor (``-fd N -i fd:``) with
  ``-protocol_whitelist fd``: seekable (an mp4 whose moov atom is at the end cannot be read from a
  pipe), never visible by name, and a crafted file (an HLS playlist, a concat list) cannot make
  ffmpeg open any other file or URL;
- outputs go to a private temp dir (tmpfs when available) under short relative names, are read back
  into bytes, and the dir is removed whatever happens; error messages hold no paths or addresses;
- a hard timeout kills ffmpeg and fails only that sample.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from typing import IO, Any

import ffmpeg

from .errors import SubsampleError
from .plan import MediaPlan
from .sample import Sample

# audio format (= member extension) -> (encoder, muxer)
AUDIO_FORMATS = {
    "m4a": ("aac", "ipod"), "flac": ("flac", "flac"), "wav": ("pcm_s16le", "wav"),
    "opus": ("libopus", "ogg"), "ogg": ("libvorbis", "ogg"), "mp3": ("libmp3lame", "mp3"),
}
VIDEO_CONTAINERS = {"mp4": "mp4", "mkv": "matroska", "webm": "webm"}
PREROLL = 1.0  # seconds decoded before the first clip after seeking: audio decoders (opus, aac) warm up
VIDEO_DEFAULTS = {"codec": "libx264", "crf": 23, "preset": "veryfast", "gop_seconds": 1.0}


@cache
def ffmpeg_exe() -> str:
    """``ffmpeg`` on PATH if it has the ``fd`` protocol (FFmpeg >= 6.1), else the imageio-ffmpeg wheel's."""
    found = shutil.which("ffmpeg")
    if found and _has_fd_protocol(found):
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _has_fd_protocol(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-hide_banner", "-protocols"], capture_output=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    inputs = out.decode(errors="replace").split("Output:")[0]
    return "fd" in inputs.split()


@dataclass
class Output:
    clip: int  # index into the plan's spans (0 when the whole source is the output)
    ext: str
    filename: str


def _filter(stream: Any, spec: str) -> Any:
    """Apply one ffmpeg filter string, ``name`` or ``name=a:b`` or ``name=k=v:k2=v2``."""
    name, _, params = spec.partition("=")
    args, kwargs = [], {}
    for item in filter(None, params.split(":")):
        key, eq, value = item.partition("=")
        if eq:
            kwargs[key] = value
        else:
            args.append(item)
    return stream.filter(name, *args, **kwargs)


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def _geometry(v: Any, opts: dict[str, Any], src: dict[str, Any]) -> Any:
    """Scale/crop/pad to the requested size; sizes are computed here from the (rotated) source."""
    w, h = src["width"], src["height"]
    if abs(src.get("rotation") or 0) in (90, 270):
        w, h = h, w
    width, height, short = opts.get("width"), opts.get("height"), opts.get("short_side")
    if width and height:
        mode = opts.get("mode", "scale")
        if mode == "crop":
            v = v.filter("scale", width, height, force_original_aspect_ratio="increase")
            v = v.filter("crop", width, height)
        elif mode == "pad":
            v = v.filter("scale", width, height, force_original_aspect_ratio="decrease", force_divisible_by=2)
            v = v.filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2")
        else:
            v = v.filter("scale", width, height)
    elif short:
        size = (short, _even(h * short / w)) if w <= h else (_even(w * short / h), short)
        v = v.filter("scale", *size)
    elif w % 2 or h % 2:  # yuv420p needs even sizes
        v = v.filter("scale", w - w % 2, h - h % 2)
    else:
        return v
    return v.filter("setsar", 1)


def _fork(stream: Any, name: str) -> tuple[Any, Any]:
    """Two branches of one stream (``split``/``asplit``); None stays None."""
    if stream is None:
        return None, None
    node = stream.filter_multi_output(name)
    return node[0], node[1]


def output_fps(plan: MediaPlan, video: dict[str, Any]) -> float:
    """The frame rate every clip is written at."""
    return plan.video.get("fps") or video.get("fps") or 25


def output_audio(plan: MediaPlan, audio: dict[str, Any]) -> tuple[int, int]:
    """The sample rate and channel count every clip's audio is written with."""
    return plan.audio.get("sample_rate") or audio["sample_rate"], plan.audio.get("channels") or audio["channels"]


def channel_layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


def _video_args(opts: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    opts = {**VIDEO_DEFAULTS, **opts}
    gop = max(1, round((opts.get("fps") or src.get("fps") or 25) * opts["gop_seconds"]))
    args = {"vcodec": opts["codec"], "pix_fmt": "yuv420p", "g": gop, "keyint_min": gop}
    if opts["codec"] == "libx264":
        args.update(crf=opts["crf"], preset=opts["preset"])
    if opts.get("threads"):
        args["threads"] = opts["threads"]
    return args


def _audio_args(opts: dict[str, Any], codec: str) -> dict[str, Any]:
    args = {"acodec": codec}
    if opts.get("sample_rate"):
        args["ar"] = opts["sample_rate"]
    if opts.get("channels"):
        args["ac"] = opts["channels"]
    if opts.get("bitrate"):
        args["b:a"] = opts["bitrate"]
    return args


def compile_plan(plan: MediaPlan, info: dict[str, Any], fds: list[int]) -> tuple[list[str], list[Output]]:
    """The ffmpeg arguments (without the binary) and the files they write, for a probed source.

    ``fds[0]`` is the source, ``fds[1:]`` the plan's extra audio inputs."""
    video = None if plan.drop_video else info.get("video")
    audio = None if plan.drop_audio else info.get("audio")
    if not video and not audio:
        kept = "video" if plan.drop_audio else "audio"
        raise SubsampleError(f"no {kept} stream to keep (source has_video={info.get('has_video')}, "
                             f"has_audio={info.get('has_audio')})")
    spans = plan.spans or [(0.0, None)]
    in_opts: dict[str, Any] = {"protocol_whitelist": "fd", "fd": fds[0]}
    offset = 0.0
    if plan.spans:
        offset = max(0.0, min(s for s, _ in spans) - PREROLL)
        if offset:
            in_opts["ss"] = f"{offset:.6f}"
        in_opts["t"] = f"{max(e for _, e in spans) - offset:.6f}"
    source = ffmpeg.input("fd:", **in_opts)
    extras = [ffmpeg.input("fd:", protocol_whitelist="fd", fd=fd, stream_loop=-1) for fd in fds[1:]]
    extra_splits = {j: extras[j]["a:0"].filter_multi_output("asplit") for j in {m.input for m in plan.mix.values()}}
    extra_used = dict.fromkeys(extra_splits, 0)
    vsplit = source[str(video["index"])].split() if video else None
    asplit = source[str(audio["index"])].filter_multi_output("asplit") if audio else None
    fps = output_fps(plan, video) if video else None
    vcodec_args = _video_args(plan.video, video) if video else {}
    afmt = plan.audio.get("format", "m4a")
    if afmt not in AUDIO_FORMATS:
        raise SubsampleError(f"unknown audio format {afmt!r}; choose one of {', '.join(AUDIO_FORMATS)}")
    container = VIDEO_CONTAINERS[plan.container]
    audio_rate, audio_channels = output_audio(plan, audio) if audio else (None, None)
    outs, outputs = [], []

    def emit(i: int, v: Any, a: Any, tag: str, video_args: dict[str, Any]) -> None:
        """Encode clip i's streams as ``{i:05d}.{tag}{ext}`` (video+audio, video only, or audio only)."""
        if v is not None:
            streams = [v] if plan.split_audio or a is None else [v, a]
            kwargs = {**video_args, "f": container}
            if len(streams) == 2:
                kwargs.update(_audio_args(plan.audio, plan.audio.get("codec", "aac")))
            if plan.container == "mp4":
                kwargs["movflags"] = "+faststart"
            outs.append(ffmpeg.output(*streams, f"{i:05d}.{tag}{plan.container}", **kwargs))
            outputs.append(Output(i, tag + plan.container, f"{i:05d}.{tag}{plan.container}"))
        if a is not None and (v is None or plan.split_audio):
            codec, muxer = AUDIO_FORMATS[afmt]
            outs.append(ffmpeg.output(a, f"{i:05d}.{tag}{afmt}", f=muxer, **_audio_args(plan.audio, codec)))
            outputs.append(Output(i, tag + afmt, f"{i:05d}.{tag}{afmt}"))

    for i, (start, end) in enumerate(spans):
        v = a = None
        rel = (f"{start - offset:.6f}", None if end is None else f"{end - offset:.6f}")
        if video:
            v = vsplit[i]
            if end is not None:
                v = v.trim(start=rel[0], end=rel[1])
            # constant rate from the clip's start: a late first frame is held from 0, so video stays in sync
            v = v.filter("fps", fps, start_time=rel[0]).setpts("PTS-STARTPTS")
            v = _geometry(v, plan.video, video)
            for spec in plan.video_filters:
                v = _filter(v, spec)
        if audio:
            a = asplit[i]
            if end is not None:
                a = a.filter("atrim", start=rel[0], end=rel[1]).filter("asetpts", f"PTS-{rel[0]}/TB")
            # silence fills a late start or a gap, so audio stays in sync with video and has the clip's length
            a = a.filter("aresample", min_comp=0.001, first_pts=0)
            if end is not None:
                a = a.filter("apad", whole_dur=f"{end - start:.6f}")
            for spec in plan.audio_filters:
                a = _filter(a, spec)
        if plan.variant:  # the clip as cut, then a copy that takes the per-clip changes
            (v, clean_v), (a, clean_a) = _fork(v, "split"), _fork(a, "asplit")
            emit(i, clean_v, clean_a, "", vcodec_args)
        if v is not None:
            for spec in plan.clip_video_filters.get(i, []):
                v = _filter(v, spec)
        if a is not None and (i in plan.mix or plan.clip_audio_filters.get(i)):
            # in the output's rate and channels: a mix gain and filter times mean what they do on the written clip
            layout = {"sample_rates": audio_rate, "channel_layouts": channel_layout(audio_channels)}
            a = a.filter("aformat", **layout)
            if i in plan.mix:
                m = plan.mix[i]
                noise = extra_splits[m.input][extra_used[m.input]]
                extra_used[m.input] += 1
                noise = noise.filter("aformat", **layout).filter("volume", f"{m.gain_db}dB")
                a = ffmpeg.filter([a, noise], "amix", inputs=2, duration="first", normalize=0)
            for spec in plan.clip_audio_filters.get(i, []):
                a = _filter(a, spec)
        video_args = _video_args({**plan.video, **plan.clip_video[i]}, video) if i in plan.clip_video else vcodec_args
        emit(i, v, a, f"{plan.variant}." if plan.variant else "", video_args)
    args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", *ffmpeg.merge_outputs(*outs).get_args()]
    return args, outputs


def _workdir() -> tempfile.TemporaryDirectory:
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix="v2d_vox_", dir=base)


def _spill(stack: contextlib.ExitStack, folder: str, data: bytes) -> IO[bytes]:
    """Bytes -> an unlinked temp file positioned at 0, to be inherited by ffmpeg as a descriptor."""
    f = stack.enter_context(tempfile.TemporaryFile(dir=folder))
    f.write(data)
    f.flush()
    f.seek(0)
    return f


def clean_error(stderr: bytes, folder: str = "") -> str:
    """The last lines of ffmpeg's stderr without paths or addresses, so identical errors group."""
    text = stderr.decode("utf-8", "replace")
    if folder:
        text = text.replace(folder + os.sep, "").replace(folder, "")
    text = re.sub(r" @ 0x[0-9a-f]+", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-2:])[:240] or "no message"


def default_timeout(info: dict[str, Any]) -> float:
    return 60.0 + 2.0 * float(info.get("duration") or 0.0)


def run_plan(plan: MediaPlan, sample: Sample) -> list[Sample]:
    """Run the plan on ``sample`` in one ffmpeg process; one output Sample per clip."""
    info = sample.meta["probe"]
    timeout = plan.timeout or default_timeout(info)
    with _workdir() as folder, contextlib.ExitStack() as stack:
        files = [_spill(stack, folder, sample.media)] + [_spill(stack, folder, b) for b in plan.extra_audio]
        fds = [f.fileno() for f in files]
        args, outputs = compile_plan(plan, info, fds)
        try:
            proc = subprocess.run([ffmpeg_exe(), *args], cwd=folder, pass_fds=fds, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SubsampleError(f"ffmpeg timed out after {timeout:g} s (killed)") from None
        if proc.returncode != 0:
            raise SubsampleError(f"ffmpeg failed (exit {proc.returncode}): {clean_error(proc.stderr, folder)}")
        data = {}
        for out in outputs:
            path = os.path.join(folder, out.filename)
            if not os.path.exists(path) or os.path.getsize(path) == 0:
                raise SubsampleError(f"ffmpeg wrote no {out.ext} for clip {out.clip}")
            with open(path, "rb") as f:
                data[out.filename] = f.read()
    return _samples(plan, sample, outputs, data)


def _samples(plan: MediaPlan, sample: Sample, outputs: list[Output], data: dict[str, bytes]) -> list[Sample]:
    results: dict[int, Sample] = {}
    for out in outputs:
        if out.clip not in results:
            meta = {**sample.meta, "subsamplers": plan.steps, **plan.clip_meta.get(out.clip, {})}
            key = sample.key
            if plan.spans is not None:
                start, end = plan.spans[out.clip]
                key = f"{sample.key}_{out.clip:05d}"
                meta.update(source_key=sample.key, clip_index=out.clip, span=[start, end])
            extra = {k: v for k, v in sample.files.items() if k == "txt"}
            results[out.clip] = Sample(key, extra, meta)
        results[out.clip].files[out.ext] = data[out.filename]
    return list(results.values())
