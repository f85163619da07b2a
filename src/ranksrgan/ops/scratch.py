"""Scratch arrays reused between calls of CPU kernels that run again and again on same-sized images.

Why: a fresh multi-megabyte CPU tensor comes from the C library as new pages of memory, and the
first touch of each 4 KiB page is a page fault. For a metric such as NIQE on a 512×512 image the
faults of its temporaries took as long as the whole computation. Keeping the arrays removes them.

Rules: an array is valid until the same name is asked for again (callers give every live array
its own name); each name keeps one array that grows to the largest size asked for, as long as all
kept arrays of the object stay within ``max_bytes``; beyond that, and on non-CPU devices (the
CUDA caching allocator already reuses memory), arrays are allocated normally. Each thread has its
own arrays.
"""

from __future__ import annotations

import math
import threading

import torch

__all__ = ["ScratchArrays"]


class ScratchArrays(threading.local):
    """Named CPU scratch arrays kept between calls, one set per thread.

    Args:
        max_bytes: most memory kept (per thread) by this object.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.arrays: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised tensor of ``shape``: a view of the kept array ``name`` on the CPU."""
        if device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=device)
        numel = math.prod(shape)
        flat = self.arrays.get((name, dtype))
        if flat is None or flat.numel() < numel:
            others = self.kept_bytes() - (0 if flat is None else flat.numel() * flat.element_size())
            if others + numel * dtype.itemsize > self.max_bytes:
                return torch.empty(shape, dtype=dtype)
            # Never an inference tensor: an array first made under torch.inference_mode() (e.g. in a
            # Lightning validation) could not be written in place by a later call outside it.
            with torch.inference_mode(False):
                flat = self.arrays[(name, dtype)] = torch.empty(numel, dtype=dtype)
        return flat[:numel].view(shape)

    def kept_bytes(self) -> int:
        """Bytes held by this thread's arrays."""
        return sum(a.numel() * a.element_size() for a in self.arrays.values())

    def clear(self) -> None:
        """Free this thread's arrays."""
        self.arrays.clear()
