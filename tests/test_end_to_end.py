"""The whole mission on real talking heads: URL table over HTTP -> voxceleb shards -> scan -> triplet batches."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

import v2d_vox
from v2d_vox.loader import build_label_map, make_loader

VIDEOS = {  # file -> identity; two videos for identities a and b, one for c
    "pc-avs__Input_00010.mp4": "a", "pc-avs__Pose_Source_517600055.mp4": "a",
    "pc-avs__Audio_Source_00086.mp4": "b", "imageio__realshort.mp4": "b",
    "decord__corrupted.mp4": "c",
}


def test_download_scan_and_train_batches(http_server, tmp_path):
    rows = [{"url": f"{http_server}/media/{name}", "identity": ident, "video_id": name, "caption": name}
            for name, ident in VIDEOS.items()]
    rows.append({"url": f"{http_server}/missing.mp4", "identity": "d", "video_id": "missing", "caption": "x"})
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "vox"
    summary = v2d_vox.download(str(tmp_path / "t.jsonl"), str(out), caption_col="caption", config="voxceleb",
                               samples_per_shard=2, processes_count=2, progress=False, timeout=5)
    meta = {r["video_id"]: r for p in sorted(out.glob("0000?.parquet")) for r in pq.read_table(p).to_pylist()}
    assert meta["missing"]["status"] == "failed_to_download"
    assert meta["imageio__realshort.mp4"]["status"] == "filtered"  # 1.2 s: no 2 s clip fits
    assert meta["pc-avs__Input_00010.mp4"]["status"] == "success" and meta["pc-avs__Input_00010.mp4"]["outputs"] == 2
    assert summary["outputs"] == sum(r["outputs"] for r in meta.values())

    shards = sorted(str(p) for p in out.glob("*.tar"))
    report = v2d_vox.scan(shards, str(tmp_path / "report"), min_duration=1.9, identity_field="identity",
                          progress=False)
    assert report["samples"] == summary["outputs"]

    labels = build_label_map(shards, field="identity")
    assert set(labels) >= {"a", "b"}
    loader = make_loader(shards, batch_size=2, clip_seconds=1.0, fps=25, size=64, sample_rate=16000,
                         num_workers=0, triplets=True, label_map=labels, shuffle_buffer=8, triplet_buffer=32)
    batches = list(loader)
    assert batches, "triplets must come out of identities with two videos"
    for batch in batches:
        a, p, n = batch["anchor"], batch["positive"], batch["negative"]
        assert a["video"].shape[1:] == (25, 3, 64, 64) and a["audio"].shape[1] == 16000
        assert (a["label"] == p["label"]).all() and (a["label"] != n["label"]).all()
        for ja, jp in zip(a["json"], p["json"]):
            assert ja["video_id"] != jp["video_id"] and ja["identity"] == jp["identity"]
