"""A small per-app cache of validated graphs, keyed by the file's identity.

Each prune callback would otherwise re-read and re-validate the whole graph file (about
100 ms for 20,000 edges). The cache belongs to one app instance (it lives in that app's
settings, never in a module global), holds at most ``max_entries`` graphs, and is keyed by
(resolved path, size, mtime): a rewritten file is a new key, so it is never stale. Path
checks (:mod:`apps.data`) still run on every call, before the cache is consulted.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable


class GraphCache:
    """Thread-safe LRU of parsed graphs."""

    def __init__(self, max_entries: int = 4) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, path: Path, extra: Any, load: Callable[[], Any]) -> Any:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, extra)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load()  # outside the lock: a slow parse must not block other requests
        if self.max_entries > 0:
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.max_entries:
                    self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)
