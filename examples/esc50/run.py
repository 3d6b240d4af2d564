"""ESC-50 end to end, offline: meta csv -> table -> 16 kHz shards with log-mels -> a small CNN with
SpecAugment trained on folds 1-4 and evaluated on fold 5.

    python examples/esc50/run.py --out out/esc50 --steps 30

``meta/esc50.csv`` has ESC-50's columns over real sounds in ``audio/`` (two classes: speech and other
sounds; one file is shorter than 1 s and is filtered on purpose). A rerun reuses the table and resumes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn

import v2d_vox
from v2d_vox.loader import SpecAugment, make_loader

HERE = Path(__file__).resolve().parent
TRAIN, TEST = [1, 2, 3, 4], [5]


class MelCNN(nn.Module):
    """Log-mel (B, M, F) -> two conv blocks -> global pooling -> class logits."""

    def __init__(self, classes: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(16, classes))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel[:, None].float())  # stored mels may be float16


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/esc50")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    table, shards = os.path.join(args.out, "table.parquet"), os.path.join(args.out, "shards")
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(table):
        v2d_vox.recipe("esc50", str(HERE / "meta" / "esc50.csv"), table)  # audio_base: ../audio, as in ESC-50
    v2d_vox.download(table, shards, config="esc50", samples_per_shard=4, processes_count=2, progress=False)
    urls = sorted(str(p) for p in Path(shards).glob("*.tar"))
    common = dict(batch_size=4, clip_seconds=1.0, video=False, stored_mel=True, label_field="target",
                  num_workers=0, seed=0)
    train = make_loader(urls, select={"fold": TRAIN}, resampled=True, epoch_batches=args.steps,
                        transforms={"mel": SpecAugment(freq_masks=1, freq_width=8, time_masks=1, time_width=10)},
                        **common)
    model = MelCNN(classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step, batch in enumerate(train):
        loss = nn.functional.cross_entropy(model(batch["mel"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch in make_loader(urls, select={"fold": TEST}, random_start=False, **common):
            correct += (model(batch["mel"]).argmax(1) == batch["label"]).sum().item()
            total += len(batch["label"])
    print(f"fold {TEST[0]} accuracy: {correct}/{total} = {correct / max(total, 1):.2f}")
    return {"losses": losses, "correct": correct, "total": total}


if __name__ == "__main__":
    main()
