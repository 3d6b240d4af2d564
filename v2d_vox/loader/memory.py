"""How the loader gets the memory of its large arrays: on this kind of machine a fresh page costs more than the
arithmetic done on it (~0.7 ms per MB here), so clips, batches and outputs reuse memory wherever they can.

- ``keep_freed_memory``: a worker's malloc keeps freed blocks for the next clip instead of returning them;
- ``empty_array``: arrays without numpy's huge-page advice, whose faults stall on compaction once the page
  cache has filled the machine (a 7.5 MB clip: ~100 ms against ~5);
- ``shared_empty``: fresh shared memory, the hand-over of last resort (``handover`` reuses its slots).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc ``mallopt`` parameters


def keep_freed_memory() -> None:
    """In a process the loader owns (a worker): glibc serves blocks up to 32 MB from its heap and keeps up to
    128 MB freed at its top, so each clip's frames and arrays reuse pages instead of faulting in fresh ones
    (by default a block over 128 KB is mapped anew and unmapped when freed: decoding a 2 s clip took ~38 ms
    before, ~30 after). A no-op without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)


def empty_array(shape: tuple[int, ...], dtype: torch.dtype = torch.uint8) -> np.ndarray:
    """An uninitialised numpy array from torch's allocator (numpy advises huge pages for arrays over 4 MB)."""
    return torch.empty(shape, dtype=dtype).numpy()


def shared_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A tensor in fresh shared memory (what torch's ``default_collate`` makes in a worker)."""
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)
