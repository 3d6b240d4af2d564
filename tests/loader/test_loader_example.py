"""examples/train_triplet.py runs a few CPU steps on the fixture shards and its loss goes down."""

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).parents[2] / "examples" / "train_triplet.py"


def test_train_triplet_example_loss_goes_down(identity_shards):
    spec = importlib.util.spec_from_file_location("train_triplet", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.main([*identity_shards, "--steps", "30", "--workers", "2"])
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
