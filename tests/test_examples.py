"""Each README example command runs on the data shipped here: the quickstart's download and its training
step (triplets form: identity id_b has two videos), examples/voxceleb2 and examples/esc50."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.parent.name + "_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_quickstart_download_then_training_step(tmp_path):
    out = tmp_path / "quickstart"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "v2d_vox.cli", "download", "examples/quickstart.csv",
                           "--output_folder", str(out), "--caption_col", "caption", "--clip_col", "clips",
                           "--config", "voxceleb", "--samples_per_shard", "5", "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "samples: success=4, failed_to_download=2, failed_to_subsample=0, filtered=3; outputs written=8" \
        in done.stdout
    losses = load(ROOT / "examples" / "train_triplet.py").main([f"{out}/{{00000..00001}}.tar", "--steps", "10",
                                                                 "--batch-size", "4"])
    assert len(losses) == 10 and sum(losses[-3:]) < sum(losses[:3])


@pytest.mark.timeout(400)
def test_voxceleb2_example(tmp_path, capsys):
    losses = load(ROOT / "examples" / "voxceleb2" / "run.py").main(["--out", str(tmp_path), "--steps", "12"])
    out = capsys.readouterr().out
    assert "voxceleb2: 5 rows" in out and "outputs written=10" in out
    # one-video identities serve as negatives, as in training: every clip is clean and trained on
    assert "scanned 10 samples" in out and ": 0 bad" in out and "clean shards: 10 samples" in out
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])


@pytest.mark.timeout(300)
def test_esc50_example(tmp_path, capsys):
    result = load(ROOT / "examples" / "esc50" / "run.py").main(["--out", str(tmp_path), "--steps", "20"])
    out = capsys.readouterr().out
    assert "success=7" in out and "filtered=1" in out and "fold 5 accuracy:" in out
    assert result["total"] == 2 and len(result["losses"]) == 20  # fold 5: one speech, one other sound
    assert sum(result["losses"][-5:]) < sum(result["losses"][:5])
