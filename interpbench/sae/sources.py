"""Batch sources for the trainer: in-memory rows, a shuffle buffer, and harvest-while-training.

1. :class:`TensorSource`: shuffled minibatches from rows in memory; a new seeded permutation
   each epoch; state = (epoch, position), so a resume is exact. Under data parallelism each
   process takes its slice of the same global batch.
2. :class:`ShuffleBuffer`: fill to ``capacity`` rows from a stream of chunks (many
   documents), shuffle, hand out the first half in batches, keep the rest.
3. :class:`StreamSource`: harvest from the model while training through a ShuffleBuffer;
   resumes exactly by replaying the deterministic stream to the saved batch count.
All sources offer ``next()``, ``sample(n)``, ``n_rows``, ``state_dict()``, ``load_state_dict()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from ..models.model import HookedModel


class TensorSource:
    """Shuffled minibatches from in-memory rows; exactly resumable via ``state_dict``."""

    def __init__(self, acts: Tensor, targets: Optional[Tensor] = None, *, batch_size: int = 4096, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if targets is not None and targets.shape[0] != acts.shape[0]:
            raise ShapeError(f"targets have {targets.shape[0]} rows but activations {acts.shape[0]}")
        if batch_size % world:
            raise InterpbenchError(f"batch size {batch_size} is not divisible by the {world} processes")
        if acts.shape[0] < batch_size:
            raise InterpbenchError(f"only {acts.shape[0]} activation rows for a batch of {batch_size}; "
                                   f"harvest more tokens or lower --batch-size")
        self.acts, self.targets = acts, targets
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.epoch, self.pos = 0, 0
        self._perm = self._make_perm()

    def _make_perm(self) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.acts.shape[0], generator=g)

    @property
    def n_rows(self) -> int:
        return self.acts.shape[0]

    def sample(self, n: int) -> tuple[Tensor, Tensor]:
        """``n`` rows from a fixed seeded draw (the same on every process), for init statistics."""
        g = torch.Generator().manual_seed(self.seed + 12345)
        idx = torch.randperm(self.acts.shape[0], generator=g)[:n]
        return self.acts[idx], (self.targets[idx] if self.targets is not None else self.acts[idx])

    def next(self) -> tuple[Tensor, Tensor]:
        """``(x, y)`` for this process: its slice of the next global batch (y = x for SAEs)."""
        if self.pos + self.batch_size > self._perm.shape[0]:
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._make_perm()
        idx = self._perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        per = self.batch_size // self.world
        idx = idx[self.rank * per:(self.rank + 1) * per]
        x = self.acts[idx]
        return x, (self.targets[idx] if self.targets is not None else x)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._make_perm()


class ShuffleBuffer:
    """Mix a stream of activation chunks (from many documents) before batching.

    Fill to ``capacity`` rows, shuffle, hand out the first half in batches, keep the rest.
    """

    def __init__(self, chunks: Iterator[tuple[Tensor, Optional[Tensor]]], *, batch_size: int,
                 capacity: int = 65_536, seed: int = 0):
        if capacity < 2 * batch_size:
            raise InterpbenchError(f"shuffle buffer capacity {capacity} must be at least twice the batch {batch_size}")
        self.chunks, self.batch_size, self.capacity = chunks, batch_size, capacity
        self.gen = torch.Generator().manual_seed(seed)
        self.buf_x: Optional[Tensor] = None
        self.buf_y: Optional[Tensor] = None
        self.ready: list[tuple[Tensor, Tensor]] = []
        self.exhausted = False

    def _refill(self) -> None:
        xs = [self.buf_x] if self.buf_x is not None else []
        ys = [self.buf_y] if self.buf_y is not None else []
        n = sum(x.shape[0] for x in xs)
        while n < self.capacity and not self.exhausted:
            try:
                x, y = next(self.chunks)
            except StopIteration:
                self.exhausted = True
                break
            xs.append(x)
            ys.append(y if y is not None else x)
            n += x.shape[0]
        if not xs or n < self.batch_size:
            raise StopIteration
        bx, by = torch.cat(xs), torch.cat(ys)
        perm = torch.randperm(bx.shape[0], generator=self.gen).to(bx.device)
        bx, by = bx[perm], by[perm]
        half = bx.shape[0] if self.exhausted else bx.shape[0] // 2
        n_out = (half // self.batch_size) * self.batch_size
        for a in range(0, n_out, self.batch_size):
            self.ready.append((bx[a:a + self.batch_size], by[a:a + self.batch_size]))
        self.buf_x, self.buf_y = bx[n_out:], by[n_out:]
        self.ready.reverse()

    def next(self) -> tuple[Tensor, Tensor]:
        if not self.ready:
            self._refill()
        return self.ready.pop()


class StreamSource:
    """Harvest while training: contexts stream from the model through a :class:`ShuffleBuffer`.

    For budgets that do not fit in memory. Resuming replays the (deterministic) stream up to
    the saved batch count, so the loss curve after a restart is the same, at the cost of
    re-harvesting; use the on-disk cache to avoid that.
    """

    def __init__(self, model: "HookedModel", site: str, docs: Sequence[str], *, n_tokens: int, batch_size: int,
                 out_site: Optional[str] = None, ctx_len: int = 128, harvest_batch: int = 8,
                 capacity: int = 65_536, seed: int = 0, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise InterpbenchError(f"batch size {batch_size} is not divisible by the {world} processes")
        self.model, self.site, self.docs, self.out_site = model, site, docs, out_site
        self.n_tokens, self.batch_size, self.ctx_len, self.harvest_batch = n_tokens, batch_size, ctx_len, harvest_batch
        self.capacity, self.seed, self.rank, self.world = max(capacity, 2 * batch_size), seed, rank, world
        self.consumed = 0
        self._buf: Optional[ShuffleBuffer] = None

    @property
    def n_rows(self) -> int:
        return self.n_tokens

    def _chunks(self):
        from .store import iter_harvest

        for h in iter_harvest(self.model, self.site, self.docs, n_tokens=self.n_tokens, ctx_len=self.ctx_len,
                              batch_size=self.harvest_batch, out_site=self.out_site):
            yield h.acts, h.targets

    def sample(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` rows of the stream (for init statistics)."""
        from .store import harvest

        h = harvest(self.model, self.site, self.docs, n_tokens=min(n, self.n_tokens), ctx_len=self.ctx_len,
                    batch_size=self.harvest_batch, out_site=self.out_site)
        return h.acts, (h.targets if h.targets is not None else h.acts)

    def next(self) -> tuple[Tensor, Tensor]:
        if self._buf is None:
            self._buf = ShuffleBuffer(self._chunks(), batch_size=self.batch_size, capacity=self.capacity, seed=self.seed)
        try:
            x, y = self._buf.next()
        except StopIteration:
            raise InterpbenchError("the activation stream ran out before the token budget; lower --tokens") from None
        self.consumed += 1
        per = self.batch_size // self.world
        return x[self.rank * per:(self.rank + 1) * per], y[self.rank * per:(self.rank + 1) * per]

    def state_dict(self) -> dict:
        return {"consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self._buf, self.consumed = None, 0
        for _ in range(int(state["consumed"])):  # replay: the stream and the buffer are deterministic
            self.next()


__all__ = ["TensorSource", "ShuffleBuffer", "StreamSource"]
