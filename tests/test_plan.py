"""The typed media plan and its compiled command as data: branches and outputs per clip, identity,
resolved output parameters, cost linear in the clip count, and 2,000 clips through the real ffmpeg."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from v2d_vox import ffmpeg as vf
from v2d_vox import plan as vp
from v2d_vox.config import Limits
from v2d_vox.plan import AudioSpec, Clip, Edit, Layout, MediaPlan, Mix, Segment, VideoSpec
from v2d_vox.probe import probe
from v2d_vox.sample import Sample
from v2d_vox.subsampler import Chain
from v2d_vox.worker import run_chain

DATA = Path(__file__).parent / "data"
TALK = DATA / "pc-avs__Pose_Source_517600055.mp4"  # 4.48 s, 224x224@25, aac 16 kHz mono
SPEECH = DATA / "lhotse__LJ002-0020.wav"  # 1.54 s, 22.05 kHz mono


def load(path: Path, **meta) -> Sample:
    data = path.read_bytes()
    return Sample(path.stem, {"mp4": data}, {"probe": probe(data), **meta})


def spans(n: int, step: float = 0.0007, length: float = 0.002) -> list[tuple[float, float]]:
    return [(round(i * step, 6), round(i * step + length, 6)) for i in range(n)]


def test_three_clips_compile_to_three_branches_and_their_outputs():
    plan = MediaPlan(Layout(spans=[(1.5, 2.0), (2.0, 3.0), (3.0, 4.0)], video=VideoSpec(fps=10, short_side=112),
                            audio=AudioSpec(sample_rate=8000, format="flac", separate=True)),
                     edits={1: Edit(video_filters=["hflip"], crf=40)}, variant="bad")
    command = vf.compile_plan(plan, load(TALK))
    # the input is seeked to 1 s before the first clip and read to the end of the last; trims are relative to it
    assert [(i.data, i.options) for i in command.inputs] == [(TALK.read_bytes(), ["-ss", "0.500000", "-t", "3.500000"])]
    lines = command.graph.split(";\n")
    assert lines[:2] == ["[0:0]split=3[sv0][sv1][sv2]", "[0:1]asplit=3[sa0][sa1][sa2]"]
    assert [line.split(",")[0] for line in lines if "trim=" in line] == [
        "[sv0]trim=start=1.000000:end=1.500000", "[sa0]atrim=start=1.000000:end=1.500000",
        "[sv1]trim=start=1.500000:end=2.500000", "[sa1]atrim=start=1.500000:end=2.500000",
        "[sv2]trim=start=2.500000:end=3.500000", "[sa2]atrim=start=2.500000:end=3.500000"]
    assert "[v1]split[xv1][cv1]" in lines and "[xv1]hflip[ev1]" in lines
    # per clip: the clean copy, then the variant that takes the clip's edit (only clip 1 has one)
    video = {i: "ev1" if i == 1 else f"xv{i}" for i in range(3)}
    assert [(o.filename, o.maps) for o in command.outputs] == [
        pair for i in range(3) for pair in (
            (f"{i:05d}.mp4", [f"[cv{i}]"]), (f"{i:05d}.flac", [f"[ca{i}]"]),
            (f"{i:05d}.bad.mp4", [f"[{video[i]}]"]), (f"{i:05d}.bad.flac", [f"[xa{i}]"]))]
    crf = [o.options[o.options.index("-crf") + 1] for o in command.outputs if o.ext.endswith("mp4")]
    assert crf == ["23", "23", "23", "40", "23", "23"]
    assert command.outputs[1].options == ["-c:a", "flac", "-ar", "8000", "-f", "flac"]
    args = command.args([3], "graph.txt")
    assert args[args.index("-/filter_complex") + 1] == "graph.txt" and command.graph not in args


def test_graph_file_option_of_the_wheel_ffmpeg():
    """FFmpeg 8 removed -filter_complex_script; the wheel's ffmpeg (9.x) reads the graph with -/filter_complex."""
    import imageio_ffmpeg

    assert vf.graph_option(imageio_ffmpeg.get_ffmpeg_exe()) == "-/filter_complex"


def test_mix_inputs_loop_and_filters_are_escaped():
    plan = MediaPlan(Layout(spans=[(0, 1), (1, 2)]), edits={
        1: Edit(audio_filters=["aeval=exprs=val(ch)*not(between(t,0.1,0.2)):c=same"], mix=Mix(b"noise", -6))})
    command = vf.compile_plan(plan, load(TALK))
    assert [(i.data, i.options) for i in command.inputs[1:]] == [(b"noise", ["-stream_loop", "-1"])]
    assert "[1:a:0]aformat=sample_rates=16000:channel_layouts=mono,volume=-6dB[na1]" in command.graph
    assert ("[ma1][na1]amix=inputs=2:duration=first:normalize=0,"
            "aeval=exprs=val(ch)*not(between(t\\,0.1\\,0.2)):c=same[ea1]") in command.graph


def test_keys_resolved_parameters_and_identity():
    info = probe(TALK.read_bytes())
    plan = MediaPlan()
    assert plan.is_identity and plan.clips("k") == [Clip(0, "k")] and plan.layout.window() is None
    assert (plan.output_fps(info), plan.output_audio(info)) == (25, (16000, 1))
    plan.steps.append({"name": "streams"})
    plan.timeout = 5
    plan.edit(0)
    assert plan.is_identity  # provenance, the timeout and an empty edit shape no output
    plan.layout = Layout(spans=[(2.5, 3.0), (1.5, 2.0)], video=VideoSpec(fps=10), audio=AudioSpec(channels=2))
    assert [c.key for c in plan.clips("k")] == ["k_00000", "k_00001"] and plan.layout.window() == (0.5, 3.0)
    assert (plan.output_fps(info), plan.output_audio(info)) == (10, (16000, 2))
    for changed in (MediaPlan(Layout(keep_audio=False)), MediaPlan(Layout(video=VideoSpec())),
                    MediaPlan(variant="x"), MediaPlan(edits={0: Edit(meta={"a": 1})})):
        assert not changed.is_identity
    with pytest.raises(ValueError, match="even"):
        VideoSpec(short_side=113)


def test_segments_group_close_clips_and_seek_past_long_gaps(monkeypatch):
    """Clips closer than SEEK_GAP share one read range (dense clips: exactly ``window()``); far ones get their
    own seek; at most MAX_SEEKS ranges, the largest gaps skipped. Clip indices keep the table's order."""
    dense = Layout(spans=[(i * 2.0, i * 2.0 + 2) for i in range(50)])
    assert dense.segments() == [Segment(*dense.window(), tuple(range(50)))]
    sparse = Layout(spans=[(200.0, 208.0), (30.0, 38.0), (40.0, 44.0), (120.0, 128.0), (35.0, 36.0)])
    assert sparse.segments() == [Segment(29.0, 44.0, (1, 2, 4)), Segment(119.0, 128.0, (3,)),
                                 Segment(199.0, 208.0, (0,))]
    monkeypatch.setattr(vp, "MAX_SEEKS", 2)  # 44 -> 120 is the largest gap: only it is skipped
    assert sparse.segments() == [Segment(29.0, 44.0, (1, 2, 4)), Segment(119.0, 208.0, (0, 3))]
    assert Layout().segments() is None


def test_sparse_clips_compile_to_one_seeked_input_per_segment():
    plan = MediaPlan(Layout(spans=[(3.5, 4.0), (0.5, 1.0)]))
    sample = load(TALK)
    command = vf.compile_plan(plan, sample)  # 2.5 s apart: one range
    assert [i.options for i in command.inputs] == [["-t", "4.000000"]]
    sample.meta["probe"]["duration"] = 400.0
    plan.layout.spans = [(300.0, 308.0), (10.0, 18.0)]
    command = vf.compile_plan(plan, sample)
    assert [i.options for i in command.inputs] == [["-ss", "9.000000", "-t", "9.000000"],
                                                   ["-ss", "299.000000", "-t", "9.000000"]]
    assert all(i.data is sample.media for i in command.inputs)  # one spilled file, opened once per input
    lines = command.graph.split(";\n")
    assert lines[:4] == ["[0:0]split=1[sv1]", "[0:1]asplit=1[sa1]", "[1:0]split=1[sv0]", "[1:1]asplit=1[sa0]"]
    assert "[sv0]trim=start=1.000000:end=9.000000" in command.graph  # relative to its own seek
    assert "[sv1]trim=start=1.000000:end=9.000000" in command.graph


def compiled_size(n: int) -> tuple[int, int, int]:
    """(longest argument, all arguments, graph text) in bytes for n clips with every kind of output."""
    plan = MediaPlan(Layout(spans=spans(n), audio=AudioSpec(format="flac", separate=True)), variant="v",
                     edits={i: Edit(video_filters=["hflip"], audio_filters=["volume=0.5"], crf=30) for i in range(n)})
    command = vf.compile_plan(plan, load(TALK))
    args = command.args([3], vf.GRAPH_FILE)
    return max(map(len, args)), sum(len(a) + 1 for a in args), len(command.graph)


def calls(fn, *args) -> Counter:
    """Function calls (Python and builtin) made by ``fn(*args)``: a deterministic, timing-free measure of work."""
    count: Counter = Counter()

    def profile(frame, event, arg):
        if event in ("call", "c_call"):
            count[event] += 1

    sys.setprofile(profile)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return count


def test_compile_cost_is_linear_in_the_clip_count():
    """No argument grows with the clip count (the graph is a file), and the work per added clip is constant:
    doubling the clips from 500 to 1,000 adds exactly twice the calls that going from 250 to 500 added."""
    sizes = {n: compiled_size(n) for n in (10, 100, 1000)}
    assert len({longest for longest, _, _ in sizes.values()}) == 1
    _, total, graph = sizes[1000]
    assert graph > 128 * 1024 > total / 4  # as one argument the graph alone would pass Linux's limit
    sample = load(TALK)

    def compile_n(n: int) -> None:
        vf.compile_plan(MediaPlan(Layout(spans=spans(n)), variant="v",
                                  edits={i: Edit(video_filters=["hflip"]) for i in range(n)}), sample)

    work = {n: sum(calls(compile_n, n).values()) for n in (250, 500, 1000)}
    assert work[1000] - work[500] == 2 * (work[500] - work[250])


def test_two_thousand_spans_in_one_row_run_in_one_pass():
    """One row with 2,000 clip spans (the issue's row failed at 400 with "Argument list too long"): 2 ms
    spans of a 1.5 s speech file written as wav keep it cheap. ``clip`` does not cap the clip count unless
    ``max_clips`` is set, so all 2,000 go through."""
    sample = load(SPEECH, clips=json.dumps(spans(2000)))
    chain = Chain.from_specs([{"name": "clip"}, {"name": "resample_audio", "format": "wav"}])
    outs = run_chain(chain, sample, Limits(max_clips_per_source=2000))
    assert len(outs) == 2000 and outs[-1].key == f"{SPEECH.stem}_01999"
    assert outs[1234].meta["span"] == list(spans(2000)[1234])
    for out in (outs[0], outs[999], outs[-1]):
        with av.open(io.BytesIO(out.files["wav"])) as c:
            assert sum(f.samples for f in c.decode(audio=0)) == round(0.002 * 22050)


def test_many_clips_run_in_passes_of_bounded_size_with_the_same_outputs(monkeypatch):
    """An ffmpeg process holds an encoder per output: clips run in passes of at most CLIPS_PER_PASS, with
    the same keys, spans, indexes and bytes as one pass over all of them."""
    # spread over the source: later passes read from a later seek point, and their cuts must follow it
    plan = MediaPlan(Layout(spans=spans(40, step=0.035, length=0.035), audio=AudioSpec(format="flac", separate=True)),
                     timeout=60)
    parts = plan.parts(16)
    assert [len(p.layout.spans) for p in parts] == [16, 16, 8]
    assert [c.index for c in parts[2].clips("k")] == list(range(32, 40))
    assert parts[2].clips("k")[0].key == "k_00032"
    sample = load(SPEECH)
    monkeypatch.setattr(vf, "CLIPS_PER_PASS", 16)
    passes = vf.run_plan(plan, sample)
    monkeypatch.setattr(vf, "CLIPS_PER_PASS", 1000)
    single = vf.run_plan(plan, sample)
    assert [o.key for o in passes] == [o.key for o in single] == [f"{sample.key}_{i:05d}" for i in range(40)]
    assert [o.meta["span"] for o in passes] == [o.meta["span"] for o in single]
    for a, b in zip(passes, single):  # a later seek point may shift the cut by a sample, not more
        pa, pb = pcm(a.files["flac"]), pcm(b.files["flac"])
        assert abs(len(pa) - len(pb)) <= 1 and np.abs(pa[: len(pb)][: len(pa)] - pb[: len(pa)]).max() < 0.05


def pcm(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)

