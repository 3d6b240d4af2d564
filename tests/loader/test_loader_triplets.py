"""Triplet mode: identity and video rules, determinism, bounded buffer with counted drops."""

import json
import random

import pytest

from v2d_vox.loader import make_loader
from v2d_vox.loader.decode import video_id
from v2d_vox.loader.state import LoaderStats
from v2d_vox.loader.triplets import NoTriplets, triplets


def keys(batch):
    return list(zip(batch["anchor"]["__key__"], batch["positive"]["__key__"], batch["negative"]["__key__"]))


def run(shards, seed):
    loader = make_loader(shards, batch_size=4, clip_seconds=0.4, size=16, num_workers=2, triplets=True,
                         seed=seed, triplet_buffer=64, shuffle_buffer=8)
    batches = list(loader)
    return batches, loader


def test_triplet_rules_on_shards_with_several_identities(identity_shards):
    batches, loader = run(identity_shards, seed=0)
    assert batches
    for b in batches:
        a, p, n = (b[r] for r in ("anchor", "positive", "negative"))
        assert a["video"].shape == p["video"].shape == n["video"].shape == (len(a["__key__"]), 10, 3, 16, 16)
        for i in range(len(a["__key__"])):
            assert a["json"][i]["identity"] == p["json"][i]["identity"] != n["json"][i]["identity"]
            ids = [{"__key__": x["__key__"][i], "json": x["json"][i]} for x in (a, p)]
            assert video_id(ids[0]) != video_id(ids[1])
    anchors = [k for b in batches for k in b["anchor"]["__key__"]]
    assert len(anchors) == len(set(anchors))
    # every sample is an anchor once or counted as unmatched (each worker sees half of the stream)
    assert len(anchors) + loader.stats.counts["triplet_unmatched"] == 24
    assert set(loader.stats.counts) <= {"triplet_unmatched"}


def test_video_id_fallbacks():
    assert video_id({"__key__": "a_00001", "json": {"video_id": "v", "source_key": "s"}}) == "v"
    assert video_id({"__key__": "a_00001", "json": {"source_key": "s"}}) == "s"
    assert video_id({"__key__": "abc_def_00001", "json": {}}) == "abc_def"


def test_deterministic_for_a_seed(identity_shards):
    a = [keys(b) for b in run(identity_shards, seed=3)[0]]
    b = [keys(b) for b in run(identity_shards, seed=3)[0]]
    c = [keys(b) for b in run(identity_shards, seed=4)[0]]
    assert a == b and a != c


def fake(key, identity, video):
    return {"__key__": key, "__url__": "u", "__index__": int(key[1:]),
            "json": {"identity": identity, "video_id": video}}


def test_waiting_anchors_and_eviction_are_counted():
    stream = [fake("k0", "A", "a1"), fake("k1", "B", "b1"), fake("k2", "C", "c1"), fake("k3", "A", "a2"),
              fake("k4", "B", "b1"), fake("k5", "B", "b2"), fake("k6", "D", "d1")]
    stats = LoaderStats()
    out = list(triplets(stream, buffer_size=3, rng=random.Random(0), stats=stats))
    # k0 (A) is evicted by k3 before a second A video arrives; k3 then has no positive (k0 is gone)
    # k1 (B, b1) is evicted by k4 and k2 by k5; k4 and k5 are B videos b1/b2 and pair up (negative: A or C)
    got = [(t["anchor"]["__key__"], t["positive"]["__key__"]) for t in out]
    assert got == [("k4", "k5"), ("k5", "k4")]
    assert all(t["negative"]["json"]["identity"] != "B" for t in out)
    assert stats.counts == {"triplet_evicted": 4, "triplet_unmatched": 1}  # k0,k1,k2,k3 evicted; k6 left
    assert sorted(i for _, i in stats.dropped) == [0, 1, 2, 3, 6]


def test_samples_without_identity_are_counted():
    stats = LoaderStats()
    stream = [fake("k0", None, "x"), fake("k1", "A", "a1"), fake("k2", "A", "a2"), fake("k3", "B", "b")]
    out = list(triplets(stream, buffer_size=10, rng=random.Random(0), stats=stats))
    assert {t["anchor"]["__key__"] for t in out} == {"k1", "k2"}
    assert stats.counts == {"triplet_no_identity": 1, "triplet_unmatched": 1}


def one_video_per_identity(tmp_path, n=3):
    """Shards where every identity has one video: no triplet can ever form."""
    from support import DATA, write_shard

    wav = (DATA / "fsdd__3_george_7.wav").read_bytes()
    return [write_shard(tmp_path / f"{k:05d}.tar", [{"__key__": f"v{k}_{j:05d}", "wav": wav,
                                                     "json": json.dumps({"identity": f"id{k}"}).encode()}
                                                    for j in range(2)]) for k in range(n)]


@pytest.mark.timeout(120)
def test_resampled_triplets_that_cannot_form_raise_instead_of_hanging(tmp_path):
    shards = one_video_per_identity(tmp_path)
    loader = make_loader(shards, batch_size=2, num_workers=1, triplets=True, resampled=True, epoch_batches=5)
    with pytest.raises(Exception, match="no triplet can be formed.*3 identities, 0 of them with clips from 2"):
        next(iter(loader))


@pytest.mark.timeout(120)
def test_finite_triplets_that_cannot_form_warn_with_counts(tmp_path):
    shards = one_video_per_identity(tmp_path)
    with pytest.warns(UserWarning, match="no triplet formed.*6 samples of 3 identities, 0 of them"):
        assert list(make_loader(shards, batch_size=2, num_workers=0, triplets=True)) == []


def test_endless_stream_gives_up_after_patience_when_the_buffer_cannot_pair():
    """Possible in principle (2 videos of id0) but never together in a buffer of 2: give up, do not spin."""
    def stream():
        for n in range(10_000):
            ident, vid = ("id0", f"v{n % 2}") if n % 50 == 0 else (f"x{n}", f"w{n}")
            yield {"__url__": "u", "__index__": n, "__key__": f"{vid}_{n:05d}",
                   "json": {"identity": ident, "video_id": vid}}

    with pytest.raises(NoTriplets, match="no triplet"):
        list(triplets(stream(), buffer_size=2, rng=random.Random(0), stats=LoaderStats(), shards=1, patience=500))
