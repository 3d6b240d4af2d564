"""The loader end to end: batches, node/worker splitting, fault tolerance, labels, devices, epochs."""

import json
import time
import warnings
from collections import Counter

import pytest
import torch

from v2d_vox.loader import Normalize, build_label_map, make_dataset, make_loader


def ids_of(batches):
    return [tuple(i) for b in batches for i in b["__ids__"]]


def test_batches_from_two_workers(identity_shards):
    labels = build_label_map(identity_shards)
    assert labels == {"id0": 0, "id1": 1, "id2": 2, "id3": 3}
    loader = make_loader(identity_shards, batch_size=5, clip_seconds=0.8, size=32, num_workers=2,
                         label_map=labels, shuffle_buffer=4)
    batches = list(loader)
    assert Counter(b["__origin__"][1] for b in batches).keys() == {0, 1}
    b = batches[0]
    assert b["video"].shape == (5, 20, 3, 32, 32) and b["video"].dtype == torch.uint8
    assert b["audio"].shape == (5, 12800) and b["audio"].dtype == torch.float32
    assert b["video_mask"].all() and b["audio_mask"].all()
    assert b["label"].tolist() == [labels[m["identity"]] for m in b["json"]]
    assert sorted(ids_of(batches)) == sorted(set(ids_of(batches))) and len(ids_of(batches)) == 24
    assert loader.stats.skipped == 0


def test_two_ranks_times_two_workers_see_disjoint_shards(many_shards):
    seen = {}
    for rank in range(2):
        loader = make_loader(many_shards, batch_size=3, num_workers=2, rank=rank, world_size=2, video=False,
                             clip_seconds=0.2, shuffle_buffer=1, seed=5)
        for batch in loader:
            seen.setdefault(batch["__origin__"], set()).update(url for url, _ in batch["__ids__"])
    assert set(seen) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    parts = list(seen.values())
    assert all(parts) and sum(map(len, parts)) == len(many_shards) == len(set().union(*parts))


def test_rank_from_environment(many_shards, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    loader = make_loader(many_shards, batch_size=3, num_workers=0, video=False, clip_seconds=0.2, seed=5)
    assert {b["__origin__"] for b in loader} == {(1, 0)}
    assert len(ids_of(loader)) == 12  # 4 of the 12 shards, 3 samples each


def test_corrupt_samples_and_truncated_tar_are_skipped_and_counted(corrupt_shards, monkeypatch):
    urls, n_good = corrupt_shards
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("the loader must not sleep on errors"))
    loader = make_loader(urls, batch_size=4, clip_seconds=0.4, size=32, num_workers=0)
    keys = [k for b in loader for k in b["__key__"]]
    assert sorted(keys) == sorted(f"g{i}_00000" for i in range(n_good))
    assert loader.stats.counts == {"decode_errors": 3, "shard_errors": 1}
    assert any("shard_errors" in e for e in loader.stats.errors)


def test_counts_are_aggregated_across_worker_processes(corrupt_shards):
    urls, n_good = corrupt_shards
    loader = make_loader(urls * 2, batch_size=4, clip_seconds=0.4, size=32, num_workers=2)
    keys = [k for b in loader for k in b["__key__"]]
    assert len(keys) == 2 * n_good
    assert loader.stats.counts == {"decode_errors": 6, "shard_errors": 2}


@pytest.mark.filterwarnings("ignore:.pin_memory.:UserWarning")
def test_device_transfer_and_batch_transforms(identity_shards):
    loader = make_loader(identity_shards[:1], batch_size=2, clip_seconds=0.4, size=16, num_workers=0,
                         device="cpu", pin_memory=True, batch_transforms={"video": Normalize([0.5] * 3, [0.5] * 3)})
    batch = next(iter(loader))
    assert batch["video"].dtype == torch.float32 and batch["video"].device.type == "cpu"
    assert batch["video"].min() >= -1.0 and batch["video"].max() <= 1.0


def test_resampled_with_epoch_is_infinite_but_cut_and_varies(many_shards):
    loader = make_loader(many_shards, batch_size=2, num_workers=2, video=False, clip_seconds=0.2,
                         resampled=True, epoch_batches=5)
    first, second = ids_of(loader), ids_of(loader)
    assert len(first) == len(second) == 10
    assert first != second  # each epoch draws afresh
    assert loader.progress.epoch == 1


def test_finite_epochs_reshuffle_and_cover_everything(many_shards):
    loader = make_loader(many_shards, batch_size=4, num_workers=2, video=False, clip_seconds=0.2, seed=1)
    first, second = ids_of(loader), ids_of(loader)
    assert sorted(first) == sorted(second) and len(set(first)) == 36
    assert first != second and loader.progress.epoch == 2


def test_dataset_is_a_webdataset_pipeline(many_shards):
    import webdataset as wds

    dataset = make_dataset(many_shards[0], batch_size=3, video=False, clip_seconds=0.2)
    assert isinstance(dataset, wds.DataPipeline) and isinstance(make_loader(many_shards), wds.WebLoader)
    items = list(dataset)
    assert [len(i["__key__"]) for i in items] == [3]
    assert json.loads(json.dumps(items[0]["json"]))[0]["identity"].startswith("spk")


def test_loader_composes_webdataset_without_overriding_it():
    import importlib
    import inspect
    import pickle
    import pkgutil

    import webdataset as wds

    import v2d_vox.loader as loader_pkg

    modules = [importlib.import_module(f"v2d_vox.loader.{m.name}") for m in pkgutil.iter_modules(loader_pkg.__path__)]
    classes = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass) if c.__module__ == m.__name__}
    assert {loader_pkg.Loader, loader_pkg.ClipDataset} <= classes
    for cls in classes:
        assert not {"iterator1", "iterator", "invoke"} & set(vars(cls)), cls
        for base in (wds.WebLoader, wds.DataPipeline):
            if issubclass(cls, base):
                overridden = {n for n in vars(cls) if n != "__init__" and callable(getattr(base, n, None))}
                assert not overridden, (cls, overridden)
    dataset = make_dataset(["a.tar"])
    assert pickle.loads(pickle.dumps(dataset)).urls == ["a.tar"]  # spawn-started workers get a pickled copy


def labels_of(loader) -> list[tuple[str, int]]:
    return sorted((k, int(lab)) for b in loader for k, lab in zip(b["__key__"], b["label"], strict=True))


def test_select_keeps_matching_json_before_decoding(many_shards):
    """many_shards: 12 shards x (spk0, spk1, spk2) with json label 0, 1, 2."""
    kept = labels_of(make_loader(many_shards, batch_size=5, num_workers=2, select={"label": [0, 2]},
                                 label_field="label"))
    assert len(kept) == 24 and {lab for _, lab in kept} == {0, 2}
    loader = make_loader(many_shards, batch_size=5, num_workers=0, select=lambda j: j["identity"] == "spk1")
    assert {k[-1] for b in loader for k in b["__key__"]} == {"1"} and loader.stats.skipped == 0


@pytest.mark.parametrize("label_map", [{0: 10, 1: 11, 2: 12}, {"0": 10, "1": 11, "2": 12}])
def test_int_fields_with_int_or_str_keyed_maps(many_shards, label_map):
    got = labels_of(make_loader(many_shards, batch_size=6, num_workers=0, label_map=label_map, label_field="label"))
    assert len(got) == 36 and {(k[-1], lab) for k, lab in got} == {("0", 10), ("1", 11), ("2", 12)}


def test_int_field_without_a_map_and_str_field_with_a_map(many_shards):
    assert {lab for _, lab in labels_of(make_loader(many_shards[:2], batch_size=6, num_workers=0,
                                                    label_field="label"))} == {0, 1, 2}
    with pytest.warns(UserWarning, match="not in the label map"):
        got = labels_of(make_loader(many_shards[:2], batch_size=6, num_workers=0, label_map={"spk2": 0}))
    assert {lab for _, lab in got} == {0}


def test_unknown_labels_are_skipped_counted_and_warned_once(many_shards):
    loader = make_loader(many_shards, batch_size=6, num_workers=0, label_map={0: 0, 1: 1}, label_field="label")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = labels_of(loader)
    assert len(got) == 24 and -1 not in {lab for _, lab in got}
    assert loader.stats.counts["unknown_label"] == 12
    assert [str(w.message) for w in caught if "label map" in str(w.message)] == [
        "label 2 of json field 'label' is not in the label map (2 labels); such samples are skipped and counted "
        "as unknown_label"]
