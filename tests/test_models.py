"""Model steps in the worker: batches across rows, one model per process, outputs in the right clips.

The models are tiny torch modules these tests build themselves (no weights are downloaded): a "package"
written to tmp_path whose factory returns an ASR stand-in that answers with its batch size and the loudest
mel band of each clip, and a module exported with ``torch.export`` to a local ``.pt2`` file that returns
each clip's mean colour as its embedding."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from support import download_files, make_media

from subsamplers import build_chain
from subsamplers.models import load_model
from v2d_vox.errors import ConfigError

TINY_ASR = '''
import torch

LOADS = []


class TinyASR(torch.nn.Module):
    """Says how many clips its batch held and which mel band is loudest in each clip."""

    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def forward(self, mel):
        peak = mel.mean(dim=2).argmax(dim=1)
        return [{"text": f"{self.prefix} b{mel.shape[0]} band{int(p)}", "batch": int(mel.shape[0])} for p in peak]


def make(prefix, log):
    with open(log, "a") as f:  # one line per load, from whichever process loads it
        f.write("load\\n")
    return TinyASR(prefix)
'''


class MeanColour(torch.nn.Module):
    """(B, T, 3, H, W) frames -> (B, 3): each clip's mean RGB."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=(1, 3, 4))


@pytest.fixture
def asr_package(tmp_path, monkeypatch) -> tuple[str, Path]:
    """An installed-package stand-in: a module on sys.path (forked workers inherit it) and its load log."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "tiny_asr_models.py").write_text(textwrap.dedent(TINY_ASR))
    monkeypatch.syspath_prepend(str(folder))
    return "tiny_asr_models:make", tmp_path / "loads.log"


def tone(freq: float) -> bytes:
    return make_media(duration=1.0, video=False, container="wav", tone=freq)


def test_asr_batches_across_rows_and_lands_in_each_clips_json(tmp_path, asr_package):
    ref, log = asr_package
    files = {"low.wav": tone(300), "mid.wav": tone(1200), "high.wav": tone(4000)}
    step = {"name": "transcribe", "model": ref, "model_args": {"prefix": "tiny", "log": str(log)},
            "batch_size": 8, "seconds": 2.0, "caption": True}
    meta, members = download_files(tmp_path, files, {"subsamplers": [{"name": "clip", "clip_seconds": 0.5}, step]})
    assert {r["status"] for r in meta.values()} == {"success"}
    assert log.read_text() == "load\n"  # one model for the whole worker
    bands = {}
    for name in files:
        keys = [k for k in members if json.loads(members[k]["json"])["source_key"] == meta[name]["key"]]
        assert len(keys) == 2
        for key in keys:
            transcript = json.loads(members[key]["json"])["transcript"]
            assert transcript["batch"] == 6  # the 6 clips of 3 rows in one model call
            assert members[key]["txt"].decode() == transcript["text"]
            assert transcript["model"] == ref and transcript["mel"]["n_mels"] == 80
            bands.setdefault(name, set()).add(int(transcript["text"].rsplit("band", 1)[1]))
    assert all(len(b) == 1 for b in bands.values())  # both clips of a source: the same tone
    [low], [mid], [high] = (bands[n] for n in files)
    assert low < mid < high  # each clip got its own output


def test_batches_are_bounded_and_a_bad_row_costs_only_itself(tmp_path, asr_package):
    ref, log = asr_package
    files = {"a.wav": tone(300), "video_only.mp4": make_media(duration=1.0, audio=False), "b.wav": tone(900),
             "c.wav": tone(2000)}
    step = {"name": "transcribe", "model": ref, "model_args": {"prefix": "t", "log": str(log)}, "batch_size": 2,
            "seconds": 1.0}
    meta, members = download_files(tmp_path, files, {"subsamplers": [step]})
    bad = meta["video_only.mp4"]
    assert (bad["status"], bad["outputs"]) == ("failed_to_subsample", 0)
    assert bad["error_message"] == "transcribe: the sample has no audio stream"
    assert bad["key"] not in members
    batches = {name: json.loads(members[meta[name]["key"]]["json"])["transcript"]["batch"]
               for name in ("a.wav", "b.wav", "c.wav")}
    assert max(batches.values()) <= 2  # never more than batch_size clips per call
    assert all(meta[n]["status"] == "success" for n in batches)


def test_embedding_from_an_exported_local_file(tmp_path):
    path = tmp_path / "mean_colour.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(torch.export.export(MeanColour(), (torch.rand(2, 4, 3, 16, 16),),
                                          dynamic_shapes=({0: batch},)), str(path))
    colours = {"red.mp4": (200, 40, 40), "green.mp4": (30, 180, 60), "blue.mp4": (20, 50, 220)}
    files = {n: make_media(duration=1.0, color=c, audio=False) for n, c in colours.items()}
    step = {"name": "embed", "model": str(path), "frames": 4, "size": 16, "batch_size": 4, "dtype": "float32"}
    meta, members = download_files(tmp_path, files, {"subsamplers": [step]})
    for name, colour in colours.items():
        sample = members[meta[name]["key"]]
        vector = np.load(io.BytesIO(sample["emb.npy"]))
        assert vector.shape == (3,) and vector.dtype == np.float32
        assert vector * 255 == pytest.approx(colour, abs=6)  # this clip's colour, not a neighbour's
        assert json.loads(sample["json"])["embedding"]["dim"] == 3


def test_model_comes_from_this_machine_only(tmp_path, asr_package):
    for ref in ("https://huggingface.co/openai/whisper-tiny", "openai/whisper-tiny", str(tmp_path / "missing.pt2")):
        with pytest.raises(ConfigError, match="no hub downloads"):
            build_chain([{"name": "transcribe", "model": ref}])
    with pytest.raises(ConfigError, match="not a local file"):
        build_chain([{"name": "embed", "model": asr_package[0], "weights": "hf://x/y.bin"}])
    args = {"prefix": "p", "log": str(asr_package[1])}
    assert load_model(asr_package[0], None, args, "cpu") is load_model(asr_package[0], None, args, "cpu")


def test_weights_from_a_local_state_dict(tmp_path, monkeypatch):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "tiny_linear.py").write_text("import torch\n\ndef make(n):\n    return torch.nn.Linear(n, 2)\n")
    monkeypatch.syspath_prepend(str(folder))
    source = torch.nn.Linear(3, 2)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    model = load_model("tiny_linear:make", str(tmp_path / "w.pt"), {"n": 3}, "cpu")
    assert torch.equal(model.weight, source.weight)


def test_model_steps_work_in_workers_forked_after_the_parent_used_torch(tmp_path, asr_package):
    """A training script that used torch's thread pool, then curates: the forked worker's main thread inherits
    a dead OpenMP pool (torch hangs or crashes there), so batched steps must run on the worker's own threads."""
    torch.set_num_threads(2)
    torch.stft(torch.randn(4, 160000), 400, 160, window=torch.hann_window(400), return_complex=True).abs().sum()
    ref, log = asr_package
    step = {"name": "transcribe", "model": ref, "model_args": {"prefix": "f", "log": str(log)}, "seconds": 1.0}
    meta, _ = download_files(tmp_path, {"a.wav": tone(300), "b.wav": tone(600)}, {"subsamplers": [step]})
    assert [r["status"] for r in meta.values()] == ["success", "success"]
