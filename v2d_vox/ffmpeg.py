"""Compile a MediaPlan into ONE ffmpeg process per source and run it.

The source is decoded once; a filter graph ``split``s/``asplit``s each stream into one branch per
clip, cuts it exactly with ``trim``/``atrim`` + ``setpts``/``asetpts`` (frame- and sample-accurate,
audio and video cut at the same times), resamples, and every clip and stream is encoded in that same
pass. When clips are given, the source is read only around them: one input per ``Segment`` of the
layout (``-ss``/``-t`` on the input), each an independent descriptor of the same spilled file, so a few
clips far apart in a long source decode only near themselves, and dense clips read one range. A source
fetched only in sections (``Sample.pieces``) gives each segment's input from the piece that holds it.

``compile_plan`` returns the command as data (``Command``: inputs, filter graph text, outputs), built
clip by clip in time linear in the clip count. The graph goes to a file (``-/filter_complex FILE``):
as one argument it passes Linux's 128 KiB limit per argument at a few hundred clips.

Safety and hygiene:
- every input is an unlinked temp file handed over as an inherited descriptor (``-fd N -i fd:``) with
  ``-protocol_whitelist fd``: seekable (an mp4 whose moov atom is at the end cannot be read from a
  pipe), never visible by name, and a crafted file (an HLS playlist, a concat list) cannot make
  ffmpeg open any other file or URL;
- outputs and the graph file go to a private temp dir (tmpfs when available) under short relative
  names, outputs are read back into bytes, and the dir is removed whatever happens; error messages
  hold no paths or addresses;
- a hard timeout kills ffmpeg and fails only that sample.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cache
from typing import IO, Any

from .errors import SubsampleError
from .plan import (
    AUDIO_FORMATS,
    VIDEO_CONTAINERS,
    AudioSpec,
    Clip,
    Crop,
    Edit,
    MediaPlan,
    Segment,
    VideoSpec,
    channel_layout,
)
from .probe import display_size
from .sample import TXT, Sample

GRAPH_FILE = "graph.txt"  # in the private work dir; outputs are named NNNNN.<ext>
CLIPS_PER_PASS = 32  # clips per ffmpeg process: each holds an encoder (tens of MB); more clips, more passes


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


@cache
def graph_option(exe: str) -> str:
    """How ``exe`` reads a filter graph from a file: ``-/filter_complex`` (FFmpeg >= 7; 8 removed the
    older option) or ``-filter_complex_script`` (6.1)."""
    probe = subprocess.run([exe, "-hide_banner", "-/filter_complex", os.devnull], capture_output=True, timeout=10)
    return "-filter_complex_script" if b"Unrecognized option" in probe.stderr else "-/filter_complex"


@dataclass
class Input:
    """One ``-i fd:``: the bytes ffmpeg reads and the options placed before it."""

    data: bytes
    options: list[str] = field(default_factory=list)


@dataclass
class Output:
    """One written file: clip index, member extension (``mp4``, ``corrupt.flac``), graph labels it maps,
    encoder and muxer options."""

    clip: int
    ext: str
    maps: list[str]
    options: list[str]

    @property
    def filename(self) -> str:
        return f"{self.clip:05d}.{self.ext}"


@dataclass
class Command:
    """An ffmpeg invocation as data; ``args`` renders it once descriptors and the graph file exist."""

    inputs: list[Input]
    graph: str  # filter graph text, one chain per line
    outputs: list[Output]

    def args(self, fds: list[int], graph_file: str, graph_opt: str = "-/filter_complex") -> list[str]:
        """The argument list (without the binary); ``fds[k]`` holds ``inputs[k]``."""
        args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        for fd, inp in zip(fds, self.inputs, strict=True):
            args += ["-protocol_whitelist", "fd", "-fd", str(fd), *inp.options, "-i", "fd:"]
        args += [graph_opt, graph_file]
        for out in self.outputs:
            args += [*(a for label in out.maps for a in ("-map", label)), *out.options, out.filename]
        return args


def escape(spec: str) -> str:
    """One filter as written for ``-vf`` (``select=not(between(n,3,7))``) -> text for a filter graph."""
    return re.sub(r"([\\'\[\],;])", r"\\\1", spec)


@dataclass(frozen=True)
class Target:
    """The plan resolved against the probed source: what every clip's branch needs."""

    video: dict[str, Any] | None  # the kept source streams
    audio: dict[str, Any] | None
    vspec: VideoSpec
    aspec: AudioSpec
    fps: float
    rate: int
    channels: int


def resolve(plan: MediaPlan, info: dict[str, Any]) -> Target:
    video, audio = plan.streams(info)
    if not video and not audio:
        kept = "audio" if plan.layout.keep_audio else "video"
        raise SubsampleError(f"no {kept} stream to keep (source has_video={info.get('has_video')}, "
                             f"has_audio={info.get('has_audio')})")
    return Target(video, audio, plan.layout.video or VideoSpec(), plan.layout.audio or AudioSpec(),
                  plan.output_fps(info) if video else 0.0, *(plan.output_audio(info) if audio else (0, 0)))


def seek(segment: Segment) -> list[str]:
    """Input options that read only one source range."""
    start, end = segment.start, segment.end
    return (["-ss", f"{start:.6f}"] if start else []) + ["-t", f"{end - start:.6f}"]


def source_inputs(sample: Sample, segments: list[Segment] | None) -> list[Input]:
    """One input per segment, seeked there (one unseeked input for all of the source). A source fetched in
    pieces gives each segment the piece that holds it, seeked by timestamp (``-seek_timestamp``): a piece keeps
    the source's timeline but starts later, and a plain ``-ss`` counts from where the file starts. Both paths
    then cut on the same times when the source's timeline starts at 0, as the mp4/webm yt-dlp writes do."""
    if not sample.pieces:
        return [Input(sample.media, seek(s)) for s in segments] if segments else [Input(sample.media)]
    if not segments:
        raise SubsampleError("the source was fetched in sections only: an output of all of it cannot be made")
    inputs = []
    for s in segments:
        piece = sample.piece(s.start, s.end)
        if piece is None:
            raise SubsampleError(f"no fetched section holds the source's {s.start:.2f}-{s.end:.2f} s")
        inputs.append(Input(piece.data, ["-seek_timestamp", "1", *seek(s)]))
    return inputs


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


def geometry(spec: VideoSpec, src: dict[str, Any]) -> list[str]:
    """Scale/crop/pad to the requested size; sizes are computed here from the (rotated) source."""
    w, h = display_size(src)
    if spec.width and spec.height:
        size = f"{spec.width}:{spec.height}"
        filters = {
            "crop": [f"scale={size}:force_original_aspect_ratio=increase", f"crop={size}"],
            "pad": [f"scale={size}:force_original_aspect_ratio=decrease:force_divisible_by=2",
                    f"pad={size}:(ow-iw)/2:(oh-ih)/2"],
            "scale": [f"scale={size}"],
        }[spec.mode]
    elif spec.short_side:
        short = spec.short_side
        filters = [f"scale={short}:{_even(h * short / w)}" if w <= h else f"scale={_even(w * short / h)}:{short}"]
    elif w % 2 or h % 2:  # yuv420p needs even sizes
        filters = [f"scale={w - w % 2}:{h - h % 2}"]
    else:
        return []
    return [*filters, "setsar=1"]


def cut_video(clip: Clip, t: Target, offset: float = 0.0, crop: Crop | None = None) -> list[str]:
    """Filters that make one clip's video from a source stream seeked to ``offset`` (clip times are relative
    to it): cut, constant rate, the clip's crop (its ``t`` counts from the clip's start), the output size."""
    start = f"{clip.start - offset:.6f}"
    trim = [] if clip.end is None else [f"trim=start={start}:end={clip.end - offset:.6f}"]
    src = t.video if crop is None else {"width": crop.w, "height": crop.h}  # ffmpeg rotates before the graph
    # constant rate from the clip's start: a late first frame is held from 0, so video stays in sync
    return [*trim, f"fps={t.fps}:start_time={start}", "setpts=PTS-STARTPTS", *([escape(crop.filter)] if crop else []),
            *geometry(t.vspec, src)]


def cut_audio(clip: Clip, offset: float = 0.0) -> list[str]:
    """Filters that make one clip's audio from a source stream seeked to ``offset``: silence fills a late
    start or a gap, so audio stays in sync with video and has the clip's length."""
    if clip.end is None:
        return ["aresample=min_comp=0.001:first_pts=0"]
    start = f"{clip.start - offset:.6f}"
    return [f"atrim=start={start}:end={clip.end - offset:.6f}", f"asetpts=PTS-{start}/TB",
            "aresample=min_comp=0.001:first_pts=0", f"apad=whole_dur={clip.end - clip.start:.6f}"]


def video_options(t: Target, crf: int | None) -> list[str]:
    spec, gop = t.vspec, str(t.vspec.gop(t.video))
    options = ["-c:v", spec.codec, "-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop]
    if spec.codec == "libx264":
        options += ["-crf", str(crf if crf is not None else spec.crf), "-preset", spec.preset]
    return options + ["-f", VIDEO_CONTAINERS[spec.container]]


def audio_options(spec: AudioSpec, codec: str) -> list[str]:
    options = ["-c:a", codec]
    for flag, value in (("-ar", spec.sample_rate), ("-ac", spec.channels), ("-b:a", spec.bitrate)):
        if value:
            options += [flag, str(value)]
    return options


def outputs(i: int, v: str | None, a: str | None, tag: str, t: Target, crf: int | None = None) -> list[Output]:
    """Clip i's files ``{i:05d}.{tag}{ext}`` from graph labels ``v``/``a``: video (with its audio unless
    separate), and audio alone when separate or when there is no video."""
    out = []
    if v is not None:
        maps, options = [f"[{v}]"], video_options(t, crf)
        if a is not None and not t.aspec.separate:
            maps.append(f"[{a}]")
            options += audio_options(t.aspec, t.aspec.codec)
        if t.vspec.container == "mp4":
            options += ["-movflags", "+faststart"]
        out.append(Output(i, tag + t.vspec.container, maps, options))
    if a is not None and (v is None or t.aspec.separate):
        codec, muxer = AUDIO_FORMATS[t.aspec.format]
        out.append(Output(i, tag + t.aspec.format, [f"[{a}]"], audio_options(t.aspec, codec) + ["-f", muxer]))
    return out


class Graph:
    """Filter graph text and the extra inputs it reads (numbered after the ``sources`` source inputs), built
    one chain at a time."""

    def __init__(self, sources: int = 1) -> None:
        self.lines: list[str] = []
        self.inputs: list[Input] = []
        self.sources = sources
        self.offsets: dict[int, float] = {}  # clip index -> where its source input is seeked to

    def add(self, src: str, filters: list[str], dst: str) -> str:
        self.lines.append(f"[{src}]{','.join(filters)}[{dst}]")
        return dst

    def split(self, stream: dict[str, Any] | None, name: str, label: str, clips: list[Clip], source: int = 0) -> None:
        """One branch per clip of a stream of source input ``source``."""
        if stream:
            branches = "".join(f"[{label}{c.index}]" for c in clips)
            self.lines.append(f"[{source}:{stream['index']}]{name}={len(clips)}{branches}")

    def fork(self, src: str | None, name: str, a: str, b: str) -> tuple[str | None, str | None]:
        """Two copies of a stream (``split``/``asplit``); None stays None."""
        if src is None:
            return None, None
        self.lines.append(f"[{src}]{name}[{a}][{b}]")
        return a, b

    def edit_video(self, i: int, v: str, edit: Edit) -> str:
        return self.add(v, [escape(f) for f in edit.video_filters], f"ev{i}") if edit.video_filters else v

    def edit_audio(self, i: int, a: str, edit: Edit, t: Target) -> str:
        """The mix, then the filters, in the output's rate and channels: a mix gain and filter times mean
        what they do on the written clip."""
        if not (edit.mix or edit.audio_filters):
            return a
        fmt = f"aformat=sample_rates={t.rate}:channel_layouts={channel_layout(t.channels)}"
        filters = [escape(f) for f in edit.audio_filters]
        if not edit.mix:
            return self.add(a, [fmt, *filters], f"ea{i}")
        self.inputs.append(Input(edit.mix.audio, ["-stream_loop", "-1"]))
        noise = self.add(f"{self.sources + len(self.inputs) - 1}:a:0", [fmt, f"volume={edit.mix.gain_db}dB"], f"na{i}")
        mixed = self.add(a, [fmt], f"ma{i}")
        self.lines.append(f"[{mixed}][{noise}]" + ",".join(["amix=inputs=2:duration=first:normalize=0", *filters])
                          + f"[ea{i}]")
        return f"ea{i}"

    def clip(self, clip: Clip, edit: Edit, variant: str | None, t: Target, crop: Crop | None = None) -> list[Output]:
        """One clip's branch: cut, crop and resample, then (on a copy when there is a variant) its edit."""
        i, tag, outs, offset = clip.index, "", [], self.offsets.get(clip.index, 0.0)
        v = self.add(f"sv{i}", cut_video(clip, t, offset, crop), f"v{i}") if t.video else None
        a = self.add(f"sa{i}", cut_audio(clip, offset), f"a{i}") if t.audio else None
        if variant:
            v, clean_v = self.fork(v, "split", f"xv{i}", f"cv{i}")
            a, clean_a = self.fork(a, "asplit", f"xa{i}", f"ca{i}")
            outs, tag = outputs(i, clean_v, clean_a, "", t), f"{variant}."
        v = self.edit_video(i, v, edit) if v else None
        a = self.edit_audio(i, a, edit, t) if a else None
        return outs + outputs(i, v, a, tag, t, edit.crf)


def compile_plan(plan: MediaPlan, sample: Sample) -> Command:
    """The ffmpeg command for a probed sample: one source input per segment (the same bytes, or the piece that
    holds it, seeked there), a branch per clip from each kept stream of its segment's input, and the clips'
    outputs."""
    t = resolve(plan, sample.meta["probe"])
    clips = plan.clips(sample.key)
    segments = plan.layout.segments()
    sources = source_inputs(sample, segments)
    graph = Graph(len(sources))
    for k, segment in enumerate(segments or [Segment(0.0, 0.0, tuple(c.index for c in clips))]):
        members = [clips[i] for i in segment.clips]
        graph.offsets.update((clips[i].index, segment.start) for i in segment.clips)
        graph.split(t.video, "split", "sv", members, k)
        graph.split(t.audio, "asplit", "sa", members, k)
    outs = [out for clip in clips
            for out in graph.clip(clip, plan.edits.get(clip.index, Edit()), plan.variant, t,
                                  plan.layout.crops.get(clip.index))]
    return Command([*sources, *graph.inputs], ";\n".join(graph.lines), outs)


def _temp_base() -> str:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def _workdir() -> tempfile.TemporaryDirectory:
    """Named after the process, so that `sweep_stale` can tell when its owner is gone."""
    return tempfile.TemporaryDirectory(prefix=f"v2d_vox_{os.getpid()}_", dir=_temp_base())


def sweep_stale() -> int:
    """Remove work dirs whose process is dead (it was killed before it could clean up); -> how many.
    A dir whose pid is alive is kept, even if the pid was reused: a leak is better than a lost file."""
    removed = 0
    for entry in os.scandir(_temp_base()):
        m = re.match(r"^v2d_vox_(\d+)_", entry.name)
        if not (m and entry.is_dir(follow_symlinks=False)):
            continue
        try:
            os.kill(int(m[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
        except PermissionError:  # alive, another user's
            pass
    return removed


def _spill(stack: contextlib.ExitStack, folder: str, data: bytes) -> IO[bytes]:
    """Bytes -> an unlinked temp file positioned at 0, to be inherited by ffmpeg as a descriptor."""
    f = stack.enter_context(tempfile.TemporaryFile(dir=folder))
    f.write(data)
    f.flush()
    f.seek(0)
    return f


def _descriptors(stack: contextlib.ExitStack, folder: str, inputs: list[Input]) -> list[int]:
    """One descriptor per input. Inputs holding the same bytes object (a source seeked to several segments)
    share one spilled file, each through its own open of it (``/proc/self/fd/N``): an independent offset, so
    ffmpeg's demuxers do not move each other's position."""
    spilled: dict[int, int] = {}
    fds = []
    for inp in inputs:
        first = spilled.get(id(inp.data))
        if first is None:
            fd = spilled[id(inp.data)] = _spill(stack, folder, inp.data).fileno()
        else:
            fd = os.open(f"/proc/self/fd/{first}", os.O_RDONLY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
        fds.append(fd)
    return fds


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
    """Run the plan on ``sample``, one ffmpeg process per ``CLIPS_PER_PASS`` clips (one for most sources);
    one output Sample per clip."""
    return [out for part in plan.parts(CLIPS_PER_PASS) for out in _run_pass(part, sample)]


def _run_pass(plan: MediaPlan, sample: Sample) -> list[Sample]:
    info = sample.meta["probe"]
    timeout = plan.timeout or default_timeout(info)
    command = compile_plan(plan, sample)
    exe = ffmpeg_exe()
    with _workdir() as folder, contextlib.ExitStack() as stack:
        fds = _descriptors(stack, folder, command.inputs)
        with open(os.path.join(folder, GRAPH_FILE), "w") as f:
            f.write(command.graph)
        try:
            proc = subprocess.run([exe, *command.args(fds, GRAPH_FILE, graph_option(exe))], cwd=folder,
                                  pass_fds=fds, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SubsampleError(f"ffmpeg timed out after {timeout:g} s (killed)") from None
        if proc.returncode != 0:
            raise SubsampleError(f"ffmpeg failed (exit {proc.returncode}): {clean_error(proc.stderr, folder)}")
        data = {}
        for out in command.outputs:
            path = os.path.join(folder, out.filename)
            if not os.path.exists(path) or os.path.getsize(path) == 0:
                raise SubsampleError(f"ffmpeg wrote no {out.ext} for clip {out.clip}")
            with open(path, "rb") as f:
                data[out.filename] = f.read()
    return _samples(plan, sample, command.outputs, data)


def _samples(plan: MediaPlan, sample: Sample, outs: list[Output], data: dict[str, bytes]) -> list[Sample]:
    """One Sample per clip under its key, holding its files, the caption and its json fields."""
    clips = {clip.index: clip for clip in plan.clips(sample.key)}
    results: dict[int, Sample] = {}
    for out in outs:
        if out.clip not in results:
            clip = clips[out.clip]
            edit = plan.edits.get(clip.index, Edit())
            meta = {**sample.meta, "subsamplers": plan.steps, **edit.meta}
            if plan.layout.spans is not None:
                meta.update(source_key=sample.key, clip_index=clip.index, span=[clip.start, clip.end])
            extra = {k: v for k, v in sample.files.items() if k == TXT}
            if edit.caption is not None:
                extra = {TXT: edit.caption.encode()} if edit.caption else {}
            results[out.clip] = Sample(clip.key, extra, meta)
        results[out.clip].files[out.ext] = data[out.filename]
    return list(results.values())
