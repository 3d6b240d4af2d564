"""Resumption: a job restarted mid-epoch neither repeats nor skips samples (finite mode)."""

import json
import os
from itertools import islice

import pytest

from v2d_vox.loader import make_loader
from v2d_vox.loader.state import Progress

KW = dict(batch_size=2, video=False, clip_seconds=0.2, shuffle_buffer=5, seed=11)


def ids(batches):
    return [tuple(i) for b in batches for i in b["__ids__"]]


@pytest.mark.parametrize("workers,stop", [(0, 4), (2, 7), (2, 17)])
def test_resume_mid_epoch_delivers_exactly_the_rest(many_shards, workers, stop):
    loader = make_loader(many_shards, num_workers=workers, **KW)
    before = ids(islice(loader, stop))
    state = json.loads(json.dumps(loader.state_dict()))  # plain data: survives a checkpoint file

    resumed = make_loader(many_shards, num_workers=workers, **KW)
    resumed.load_state_dict(state)
    after = ids(resumed)
    assert len(before) == 2 * stop
    assert not set(before) & set(after)
    assert sorted(before + after) == sorted(ids(make_loader(many_shards, num_workers=workers, **KW)))
    assert len(before + after) == 36
    assert resumed.progress.epoch == 1  # the resumed pass finished; the next iteration starts epoch 1


def test_finished_shards_are_not_reopened(many_shards, tmp_path):
    loader = make_loader(many_shards, num_workers=0, **KW)
    list(islice(loader, 14))
    state = loader.state_dict()
    done = [u for u in many_shards if Progress.from_state(state["progress"]).shard_done(u)]
    assert done
    # delete the finished shards: a resumed run that opened them would count shard_errors
    moved = {u: (tmp_path / f"{i}.tar") for i, u in enumerate(done)}
    for u, dst in moved.items():
        dst.write_bytes(open(u, "rb").read())
        os.remove(u)
    try:
        resumed = make_loader(many_shards, num_workers=0, **KW)
        resumed.load_state_dict(state)
        after = ids(resumed)
        assert resumed.stats.skipped == 0 and len(after) == 36 - 28
    finally:
        for u, dst in moved.items():
            dst.replace(u)


def test_resume_counts_and_skipped_samples(corrupt_shards):
    urls, n_good = corrupt_shards
    kw = dict(batch_size=2, clip_seconds=0.4, size=16, num_workers=0, shuffle_buffer=0, shuffle_shards=False)
    loader = make_loader(urls, **kw)
    before = ids(islice(loader, 3))
    resumed = make_loader(urls, **kw)
    resumed.load_state_dict(loader.state_dict())
    after = ids(resumed)
    assert len(before) + len(after) == n_good and not set(before) & set(after)
    # the two broken members read before the checkpoint stay skipped and keep their counts
    assert resumed.stats.counts == {"decode_errors": 3, "shard_errors": 1}


def test_resampled_resume_continues_the_epoch_window(many_shards):
    kw = dict(KW, resampled=True, epoch_batches=6, num_workers=2)
    loader = make_loader(many_shards, **kw)
    before = ids(islice(iter(loader), 4))
    resumed = make_loader(many_shards, **kw)
    resumed.load_state_dict(loader.state_dict())
    after = ids(resumed)
    assert len(after) == 2 * (6 - 4)
    assert ids(resumed) and len(ids(resumed)) == 12  # the next epochs have the full length again
    fresh = ids(islice(iter(make_loader(many_shards, **kw)), 6))
    assert after != fresh[8:]  # the draws after a restart are new, not a replay of the first run
    assert before == fresh[:8]


def test_finite_window_spans_passes_and_resumes_mid_window(many_shards):
    kw = dict(KW, batch_size=4, epoch_batches=15, num_workers=2)  # 10 batches per pass
    loader = make_loader(many_shards, **kw)
    first = list(loader)
    assert len(first) == 15 and loader.progress.epoch == 1 and loader.progress.batches == 5
    assert len(list(islice(loader, 12))) == 12  # a new for loop starts a new pass: epochs 2, then 3
    assert loader.progress.epoch == 3 and loader.state_dict()["window"] == 12
    resumed = make_loader(many_shards, **kw)
    resumed.load_state_dict(loader.state_dict())
    assert len(list(resumed)) == 15 - 12 and len(list(resumed)) == 15


def test_resampled_resume_from_a_complete_window_starts_the_next(many_shards):
    kw = dict(KW, resampled=True, epoch_batches=3, num_workers=2)
    loader = make_loader(many_shards, **kw)
    ids(loader)
    state = loader.state_dict()
    assert state["window"] == 3
    second = ids(loader)
    resumed = make_loader(many_shards, **kw)
    resumed.load_state_dict(state)
    assert ids(resumed) == second  # as the uninterrupted run's next for loop
