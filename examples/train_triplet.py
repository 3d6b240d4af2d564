"""Train a tiny audio-visual speaker embedding with triplet loss on v2d_vox shards (CPU is enough).

    python examples/train_triplet.py "out/{00000..00003}.tar" --steps 30

Each batch holds (anchor, positive, negative) clips: the positive is the anchor's identity from another
video, the negative another identity (json "identity"). The log-mel runs on the batch after the transfer
to ``--device``, as it would on a GPU; the loss printed every few steps should go down.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from v2d_vox.loader import LogMel, Normalize, SpecAugment, compute_stats, make_loader


class AVEmbedding(nn.Module):
    """Frames -> small CNN, log-mel -> 1-D CNN, both pooled over time, fused into a unit-norm embedding."""

    def __init__(self, n_mels: int = 40, dim: int = 32):
        super().__init__()
        self.video = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.audio = nn.Sequential(nn.Conv1d(n_mels, 32, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(16 + 32, dim)

    def forward(self, batch: dict) -> torch.Tensor:
        b, t = batch["video"].shape[:2]
        frames = self.video(batch["video"].flatten(0, 1)).view(b, t, -1).mean(1)
        return F.normalize(self.head(torch.cat([frames, self.audio(batch["mel"])], dim=1)), dim=1)


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shards", nargs="+", help="shard urls or brace patterns")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    mean, std = compute_stats(args.shards, max_samples=32)
    loader = make_loader(
        args.shards, batch_size=args.batch_size, clip_seconds=0.8, fps=10, size=32, num_workers=args.workers,
        triplets=True, resampled=True, epoch_batches=args.steps, seed=args.seed, device=args.device,
        batch_transforms={"video": Normalize(mean, std), "audio->mel": LogMel(n_mels=40),
                          "mel": SpecAugment(freq_masks=1, freq_width=4, time_masks=1, time_width=8)},
    )
    model = AVEmbedding().to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.TripletMarginLoss(margin=1.0)
    losses = []
    for step, batch in enumerate(loader):
        anchor, positive, negative = (model(batch[r]) for r in ("anchor", "positive", "negative"))
        loss = loss_fn(anchor, positive, negative)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 5 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}  skipped {loader.stats.skipped}")
    print(f"first 5 steps {sum(losses[:5]) / 5:.4f} -> last 5 steps {sum(losses[-5:]) / 5:.4f}")
    return losses


if __name__ == "__main__":
    main()
