"""Tensors parked in an unlinked temporary file, read back one at a time.

On CPU a sweep needs the base weights (for exact restore) and its directions at every
grid point, but only one tensor at a time. Keeping them in a file instead of the
process saves one model-size of RAM each: the OS page cache holds the file (and may
drop it), and plain reads, unlike a mmap, never count its pages as the process's.
Re-reading a 540 MB model from the page cache takes about 0.2 s.

The file is unlinked as soon as it is created, so it vanishes with the process,
killed or not, and nothing is ever left to clean up.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch


class TensorFile(Mapping[str, torch.Tensor]):
    """An append-only store of named CPU tensors in an unlinked file."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._fd, path = tempfile.mkstemp(prefix="spill-", dir=directory)
        os.unlink(path)
        self._index: dict[str, tuple[torch.dtype, tuple[int, ...], int]] = {}
        self._end = 0

    def append(self, name: str, tensor: torch.Tensor) -> None:
        t = tensor.detach().to("cpu").contiguous()
        view = memoryview(t.view(torch.uint8).reshape(-1).numpy())
        offset = self._end
        while view.nbytes:
            n = os.pwrite(self._fd, view, self._end)
            view, self._end = view[n:], self._end + n
        self._index[name] = (t.dtype, tuple(t.shape), offset)

    def read_into(self, name: str, out: torch.Tensor) -> None:
        """Fill ``out`` (same shape and dtype) with the tensor ``name``."""
        if out.device.type != "cpu" or not out.is_contiguous():
            out.copy_(self[name])
            return
        _, _, offset = self._index[name]
        view = memoryview(out.view(torch.uint8).reshape(-1).numpy())
        while view.nbytes:
            n = os.preadv(self._fd, [view], offset)
            if n <= 0:
                raise OSError(f"short read of spilled tensor {name}")
            view, offset = view[n:], offset + n

    def __getitem__(self, name: str) -> torch.Tensor:
        dtype, shape, _ = self._index[name]
        out = torch.empty(shape, dtype=dtype)
        self.read_into(name, out)
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
