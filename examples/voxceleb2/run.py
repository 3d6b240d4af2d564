"""VoxCeleb2 end to end, offline: metadata -> table -> face-cropped shards -> scan -> triplet training.

    python examples/voxceleb2/run.py --out out/voxceleb2 --steps 20

``metadata/`` is in VoxCeleb2's format (``idNNNNN/REFERENCE/NNNNN.txt``); its references name the real
talking-head files in ``media/`` instead of YouTube ids, so ``--url_template`` points there. A rerun
reuses the table and resumes the shards.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import v2d_vox

HERE = Path(__file__).resolve().parent


def train_triplet():
    """examples/train_triplet.py, the shared training loop."""
    spec = importlib.util.spec_from_file_location("train_triplet", HERE.parent / "train_triplet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/voxceleb2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    table, shards, report = (os.path.join(args.out, p) for p in ("table.parquet", "shards", "scan"))
    os.makedirs(args.out, exist_ok=True)
    if not os.path.exists(table):
        v2d_vox.recipe("voxceleb2", str(HERE / "metadata"), table, url_template=str(HERE / "media/{reference}.mp4"))
    v2d_vox.download(table, shards, clip_col="clips", config="voxceleb2", samples_per_shard=2, processes_count=2,
                     thread_count=2, progress=False)
    urls = sorted(str(p) for p in Path(shards).glob("*.tar"))
    clean = os.path.join(args.out, "clean")  # the samples that can be decoded and form triplets
    v2d_vox.scan(urls, report, min_duration=2.0, require_audio=True, require_video=True, identity_field="identity",
                 write_clean=clean, processes_count=2, progress=True)
    return train_triplet().main([*sorted(str(p) for p in Path(clean).glob("*.tar")), "--steps", str(args.steps),
                                 "--batch-size", "4", "--workers", str(args.workers)])


if __name__ == "__main__":
    main()
