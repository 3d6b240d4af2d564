"""Batches from the loader's workers to the main process through shared memory that is reused.

torch's DataLoader hands every batch over in fresh shared memory: the worker's kernel allocates and zeroes it
(``posix_fallocate``), both processes fault its pages in, and both unmap it again; measured here, ~3.5 ms of
CPU per 2 s clip at 112 px, a quarter of what the loader spent beyond decoding. Instead each worker keeps a few
shared *slots*: a batch's tensors are made straight in a free slot (``Arena.empty``, used by ``batch.stack``),
the slot's storage crosses to the main process with its first batch only, later batches just name the slot and
their tensors' places in it (``Lent``), and the main process (``Receiver``) rebuilds the tensors as views of its
own mapping of the slot.

A slot is written again only once the main process is done with it: when the last view of a batch is gone
(tracked with a weak reference to the array they all hang from, as ``Normalize`` tracks its outputs), the main
process clears the slot's first byte, which the worker reads before reusing the slot. A batch that finds no free
slot is handed over in fresh shared memory as before, so the slot count bounds memory, never correctness.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from .memory import shared_empty

ALIGN = 64  # bytes: each tensor starts on a cache line (and so on any element size)
HEADER = ALIGN  # the slot's first bytes; byte 0 is 1 while the main process may read the slot


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


@dataclass(frozen=True)
class Place:
    """Where a tensor of a lent batch lies in its slot."""

    offset: int  # bytes from the slot's start
    shape: tuple[int, ...]
    dtype: torch.dtype


@dataclass(frozen=True, eq=False)
class Lent:
    """What a batch carries instead of its tensors' memory: the slot number, and the slot itself (a uint8 tensor
    over its shared storage) the first time the slot crosses."""

    slot: int
    storage: torch.Tensor | None


class Slots:
    """A worker's shared slots, made on demand up to ``count``, each as large as the largest batch so far."""

    def __init__(self, count: int):
        self.count = count
        self.slots: list[torch.Tensor] = []  # uint8 (HEADER + capacity,) over shared storage
        self.sent: set[int] = set()  # slots the main process has received
        self.need = 0  # payload bytes of the largest batch so far

    def arena(self) -> Arena:
        """The allocator of the next batch: a free slot large enough, if there is (or may be made) one."""
        return Arena(self, self._free())

    def _free(self) -> int | None:
        if not self.need:  # the first batch of a pass: sizes not known yet
            return None
        for i, slot in enumerate(self.slots):
            if slot[0] == 0:  # not lent, or the main process is done with it
                if slot.numel() - HEADER >= self.need:
                    return i
                self.slots[i] = self._new()  # batches grew: replace it (the main process drops the old one)
                self.sent.discard(i)
                return i
        if len(self.slots) < self.count:
            self.slots.append(self._new())
            return len(self.slots) - 1
        return None

    def _new(self) -> torch.Tensor:
        slot = shared_empty((HEADER + self.need,), torch.uint8)
        slot[0] = 0
        return slot


class Arena:
    """One batch's tensors: views of its slot while they fit, fresh shared memory after."""

    def __init__(self, slots: Slots, index: int | None):
        self.slots, self.index = slots, index
        self.used = self.total = 0

    def empty(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        nbytes = math.prod(shape) * dtype.itemsize
        self.total += _aligned(nbytes)
        if self.index is not None:
            slot = self.slots.slots[self.index]
            start = HEADER + self.used
            if start + nbytes <= slot.numel():
                self.used += _aligned(nbytes)
                return slot[start : start + nbytes].view(dtype).view(shape)
        return shared_empty(shape, dtype)

    def lend(self, batch: dict) -> dict:
        """``batch`` with its tensors in the slot replaced by their ``Place`` and ``__lent__`` added; the slot is
        marked lent. Called once the batch is complete."""
        self.slots.need = max(self.slots.need, self.total)
        if self.index is None or not self.used:
            return batch
        slot = self.slots.slots[self.index]
        base = slot.untyped_storage().data_ptr()
        slot[0] = 1
        first = self.index not in self.slots.sent
        self.slots.sent.add(self.index)
        return {**_places(batch, base), "__lent__": Lent(self.index, slot if first else None)}


def _map(x, leaf):
    """``x`` (nested dicts and lists) with every other value replaced by ``leaf(value)``."""
    if isinstance(x, dict):
        return {k: _map(v, leaf) for k, v in x.items()}
    if isinstance(x, list):
        return [_map(v, leaf) for v in x]
    return leaf(x)


def _places(batch: dict, base: int) -> dict:
    """The batch with each tensor in the slot at ``base`` replaced by its ``Place``."""
    def place(x):
        if isinstance(x, torch.Tensor) and x.untyped_storage().data_ptr() == base:
            return Place(x.data_ptr() - base, tuple(x.shape), x.dtype)
        return x
    return _map(batch, place)


class Receiver:
    """The main process's side, for one pass: the slots received, by (worker origin, slot number)."""

    def __init__(self):
        self.slots: dict[tuple, np.ndarray] = {}

    def __call__(self, batch: dict) -> dict:
        """``batch`` with its ``Place``s turned back into tensors (views of the slot)."""
        lent = batch.pop("__lent__", None)
        if lent is None:
            return batch
        key = (tuple(batch["__origin__"]), lent.slot)
        if lent.storage is not None:
            self.slots[key] = lent.storage.numpy()
        slot = self.slots[key]
        payload = slot[:]  # every tensor of this batch hangs from this view, so it lives as long as any of them
        weakref.finalize(payload, _release, slot)
        return _tensors(batch, torch.from_numpy(payload))


def _release(slot: np.ndarray) -> None:
    slot[0] = 0


def _tensors(batch: dict, payload: torch.Tensor) -> dict:
    """The batch with each ``Place`` replaced by the view of ``payload`` it names."""
    def tensor(x):
        if isinstance(x, Place):
            nbytes = math.prod(x.shape) * x.dtype.itemsize
            return payload[x.offset : x.offset + nbytes].view(x.dtype).view(x.shape)
        return x
    return _map(batch, tensor)
