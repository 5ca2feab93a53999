"""The student checkpoints this process loaded last, kept so that reading the same files again is a copy.

One ``dataenvgym run`` reads each checkpoint three times: its test and its validation evaluation,
then the next iteration's training. Loading the tiny student (config, safetensors, tokenizer)
takes 35–45 ms on a 2-core machine; copying a loaded one takes 6–10 ms. Whoever asks gets their
own deep copy, to train, merge adapters into or move, and the kept one is never handed out.

A checkpoint is known by its bytes: the name and SHA-256 of every file directly in the model's
folder and in the adapter's (2 ms for the tiny student's 3.4 MB), so files written again, in place
or renamed there, are loaded again and never answered from memory. A hub id is not a local folder
and is always loaded (its revision is the hub's to resolve), and so is a model of more than
``max_bytes``: hashing it would cost what loading does, and a copy kept would double its memory.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from dataenvgym_dagster.machinery.storage import file_sha256

Loaded = TypeVar("Loaded", bound=tuple[Any, ...])

MAX_BYTES = 64 * 2**20
CAPACITY = 2


def folder_identity(folder: str | Path, max_bytes: int = MAX_BYTES) -> tuple[tuple[str, str], ...] | None:
    """(name, SHA-256) of each file directly in ``folder``; ``None`` if it is no local folder or holds more than ``max_bytes``."""
    try:
        with os.scandir(folder) as entries:
            files = sorted((entry.name, entry.path, entry.stat().st_size) for entry in entries if entry.is_file())
    except OSError:  # a hub id, a missing or unreadable folder: nothing to recognise it by
        return None
    if sum(size for *_, size in files) > max_bytes:
        return None
    return tuple((name, file_sha256(path)) for name, path, _ in files)


def weight_bytes(model: Any) -> int:
    """Bytes of the model's parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class RecentModels:
    """The last ``capacity`` (model, tokenizer) pairs loaded, by a key that names their files."""

    def __init__(self, capacity: int = CAPACITY, max_bytes: int = MAX_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, tuple[Any, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, identify: Callable[[], Hashable | None], load: Callable[[], Loaded]) -> Loaded:
        """A copy of what was kept under ``identify()``; otherwise ``load()``, keeping a copy when it is small enough.

        ``identify()`` ``None`` (files that cannot be recognised): always ``load()``, nothing kept. The
        files are identified again after loading, and nothing is kept if they changed meanwhile.
        """
        key = identify()
        if key is None:
            return load()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
        if kept is not None:
            return copy.deepcopy(kept)  # type: ignore[return-value]
        loaded = load()
        if weight_bytes(loaded[0]) <= self.max_bytes and identify() == key:
            untouched = copy.deepcopy(loaded)  # before the caller trains, merges or moves its own
            with self._lock:
                self._kept[key] = untouched
                while len(self._kept) > self.capacity:
                    self._kept.popitem(last=False)
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)
