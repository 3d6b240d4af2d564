"""Batches handed from workers to the main process in reused shared memory (``v2d_vox.loader.handover``)."""

import gc

import pytest
import torch

from v2d_vox.loader import make_loader
from v2d_vox.loader.batch import collate, stack
from v2d_vox.loader.handover import HEADER, Lent, Place, Receiver, Slots
from v2d_vox.loader.memory import shared_empty

SIZES = {"video": 4, "audio": 100}


def clips(seed: int, n: int = 2) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"__key__": f"k{seed}_{i}", "__url__": "u", "__index__": i, "json": {},
             "video": torch.randint(0, 256, (3 + i, 3, 8, 8), dtype=torch.uint8, generator=g),
             "audio": torch.rand(90 + i, generator=g)} for i in range(n)]


def hand_over(slots: Slots, receive: Receiver, samples: list[dict]) -> dict:
    """What the worker's ``batched`` stage and the main process's ``Loader`` do with one batch."""
    arena = slots.arena()
    batch = {**arena.lend(collate(samples, SIZES, empty=arena.empty)), "__origin__": (0, 0)}
    return receive(batch)


def in_slot(x: torch.Tensor, slot: torch.Tensor) -> bool:
    start = slot.data_ptr()
    return start + HEADER <= x.data_ptr() < start + slot.numel()


def test_slots_are_reused_only_when_every_view_of_a_batch_is_gone():
    slots, receive = Slots(2), Receiver()
    first = hand_over(slots, receive, clips(0))  # sizes unknown yet: fresh shared memory, no slot
    assert first["video"].is_shared() and not slots.slots
    assert torch.equal(first["video"], collate(clips(0), SIZES)["video"])

    b1 = hand_over(slots, receive, clips(1))
    b2 = hand_over(slots, receive, clips(2))
    assert len(slots.slots) == 2 and in_slot(b1["video"], slots.slots[0]) and in_slot(b2["audio"], slots.slots[1])
    b3 = hand_over(slots, receive, clips(3))  # both slots lent: fresh shared memory again
    assert not any(in_slot(b3["video"], s) for s in slots.slots)
    for seed, b in ((1, b1), (2, b2), (3, b3)):
        want = collate(clips(seed), SIZES)
        for name in ("video", "audio", "video_mask", "audio_mask"):
            assert torch.equal(b[name], want[name]), (seed, name)

    kept = b1["audio"][1:]  # a view outlives its batch: the slot stays lent
    del b1
    gc.collect()
    assert slots.slots[0][0] == 1 and slots.arena().index is None
    del kept
    gc.collect()
    assert slots.slots[0][0] == 0
    b4 = hand_over(slots, receive, clips(4))  # slot 0 again, named only: its storage crossed once
    assert in_slot(b4["video"], slots.slots[0])
    assert torch.equal(b4["video"], collate(clips(4), SIZES)["video"])


def test_a_lent_batch_names_its_tensors_places_and_sends_the_slot_once():
    slots = Slots(1)
    for seed in range(3):
        arena = slots.arena()
        lent = arena.lend(collate(clips(seed), SIZES, empty=arena.empty))
        if seed == 0:
            assert "__lent__" not in lent
            continue
        assert isinstance(lent["video"], Place) and isinstance(lent["audio_mask"], Place)
        sent = lent["__lent__"]
        assert isinstance(sent, Lent) and sent.slot == 0
        assert sent.storage is (slots.slots[0] if seed == 1 else None)
        slots.slots[0][0] = 0  # as the main process does once it is done


def test_a_larger_batch_replaces_a_free_slot_too_small_for_it():
    slots, receive = Slots(1), Receiver()
    hand_over(slots, receive, clips(0, n=1))
    small = hand_over(slots, receive, clips(1, n=1))
    capacity = slots.slots[0].numel()
    del small
    gc.collect()
    big = hand_over(slots, receive, clips(2, n=3))  # 3 clips do not fit: fresh memory, the need grows
    del big
    gc.collect()
    again = hand_over(slots, receive, clips(3, n=3))
    assert slots.slots[0].numel() > capacity and in_slot(again["video"], slots.slots[0])
    assert torch.equal(again["video"], collate(clips(3, n=3), SIZES)["video"])


class _Stacked(torch.utils.data.IterableDataset):
    """Yields what ``batch.stack`` makes inside a DataLoader worker process."""

    def __iter__(self):
        parts = [torch.full((2, 3), i, dtype=torch.uint8) for i in range(4)]
        out = stack(parts, shared_empty)
        yield {"shared": out.is_shared(), "equal": torch.equal(out, torch.stack(parts))}


def test_stack_writes_into_the_given_memory():
    (seen,) = list(torch.utils.data.DataLoader(_Stacked(), batch_size=None, num_workers=1))
    assert seen == {"shared": True, "equal": True}  # no second copy when the batch crosses to the main process
    assert not stack([torch.zeros(2), torch.ones(2)]).is_shared()  # without: ordinary memory
    half = [torch.zeros(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16)]  # no numpy dtype
    assert torch.equal(stack(half, shared_empty), torch.stack(half)) and stack(half).dtype == torch.bfloat16


def reference(shards: list[str]) -> dict[str, dict]:
    ref = {}
    for b in make_loader(shards, batch_size=4, num_workers=0, clip_seconds=0.8, size=32, random_start=False):
        for i, key in enumerate(b["__key__"]):
            ref[key] = {"video": b["video"][i].clone(), "audio": b["audio"][i].clone()}
    return ref


def loader(shards: list[str]):
    return make_loader(shards, batch_size=2, num_workers=2, prefetch_factor=1, clip_seconds=0.8, size=32,
                       random_start=False, shuffle_buffer=4)


def test_worker_batches_held_by_the_consumer_are_never_overwritten(identity_shards):
    ref = reference(identity_shards)
    held = list(loader(identity_shards))  # every batch kept: slots run out, later batches use fresh memory
    assert sorted(k for b in held for k in b["__key__"]) == sorted(ref)
    for b in held:
        for i, key in enumerate(b["__key__"]):
            assert torch.equal(b["video"][i], ref[key]["video"]) and torch.equal(b["audio"][i], ref[key]["audio"])


def test_worker_slots_are_reused_and_views_kept_past_their_batch_stay_intact(identity_shards):
    ref = reference(identity_shards)
    kept, places, n = {}, set(), 0
    for b in loader(identity_shards):
        n += 1
        places.add(b["video"].untyped_storage().data_ptr())
        if n % 3 == 0:  # keep one clip's view, drop the rest of the batch
            kept[b["__key__"][0]] = b["video"][0]
    assert n == 12 and len(places) < n  # memory was reused
    for key, video in kept.items():
        assert torch.equal(video, ref[key]["video"]), key


@pytest.mark.filterwarnings("ignore:.pin_memory.:UserWarning")  # no accelerator here
def test_pinned_batches_are_handed_over_as_before(identity_shards):
    ref = reference(identity_shards)
    pinned = make_loader(identity_shards, batch_size=2, num_workers=2, clip_seconds=0.8, size=32,
                         random_start=False, pin_memory=True)
    assert pinned.dataset.handover_slots == 0 and loader(identity_shards).dataset.handover_slots == 3
    for b in pinned:
        for i, key in enumerate(b["__key__"]):
            assert torch.equal(b["video"][i], ref[key]["video"])
