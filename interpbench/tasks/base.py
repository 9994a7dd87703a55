"""The data type every task generator returns: clean/corrupted prompt pairs with answers.

All prompts in one :class:`PromptPairs` tokenise to the same length (pairs that do not are
dropped by the generator and counted in ``dropped``), answers are single tokens, and the
record says exactly how it was made so every score can cite its data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass(frozen=True)
class PromptPairs:
    """A batch of clean/corrupted prompts with the answer tokens whose logits are compared."""

    name: str
    """Task name, e.g. ``ioi``, ``greater_than``, ``jsonl:path``."""
    clean: Int[Tensor, "batch pos"]
    """Clean prompt token ids (BOS included if the task asked for it)."""
    corrupted: Int[Tensor, "batch pos"]
    """Corrupted prompt token ids, same shape as ``clean``."""
    answer: Int[Tensor, "batch"]
    """Token id of the correct continuation of each clean prompt."""
    wrong: Int[Tensor, "batch"]
    """Token id of the contrasting continuation (the corrupted prompt's answer)."""
    clean_text: tuple[str, ...] = ()
    """Clean prompts as text (for display and provenance)."""
    corrupted_text: tuple[str, ...] = ()
    """Corrupted prompts as text."""
    dropped: tuple[str, ...] = ()
    """Templates/pairs rejected by tokenizer checks, each with the reason (reported, never used)."""
    meta: dict = field(default_factory=dict)
    """Generator settings (seed, n, template names, ...)."""

    def __post_init__(self) -> None:
        from ..errors import InterpbenchError, ShapeError

        if self.clean.shape[0] == 0:
            raise InterpbenchError(f"task {self.name!r} is empty (0 usable pairs; dropped: {len(self.dropped)})")
        if self.clean.shape != self.corrupted.shape:
            raise ShapeError(f"clean {tuple(self.clean.shape)} and corrupted {tuple(self.corrupted.shape)} token "
                             f"shapes differ; every pair must tokenise to the same length")
        if self.answer.shape[0] != self.clean.shape[0] or self.wrong.shape[0] != self.clean.shape[0]:
            raise ShapeError("answer/wrong must have one token per prompt")

    @property
    def n(self) -> int:
        return int(self.clean.shape[0])

    def to(self, device) -> "PromptPairs":
        return PromptPairs(self.name, self.clean.to(device), self.corrupted.to(device), self.answer.to(device),
                           self.wrong.to(device), self.clean_text, self.corrupted_text, self.dropped, self.meta)

    def subset(self, idx) -> "PromptPairs":
        idx = torch.as_tensor(idx, dtype=torch.long)
        pick = lambda xs: tuple(xs[i] for i in idx.tolist()) if xs else ()  # noqa: E731
        return PromptPairs(self.name, self.clean[idx.to(self.clean.device)], self.corrupted[idx.to(self.clean.device)],
                           self.answer[idx.to(self.clean.device)], self.wrong[idx.to(self.clean.device)],
                           pick(self.clean_text), pick(self.corrupted_text), self.dropped, self.meta)

    def data_hash(self) -> str:
        """Stable hash of the token ids and answers (cites the data in every record)."""
        h = hashlib.sha256()
        for t in (self.clean, self.corrupted, self.answer, self.wrong):
            h.update(t.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        """Provenance dict written into results."""
        return {"task": self.name, "n": self.n, "seq_len": int(self.clean.shape[1]), "hash": self.data_hash(),
                "dropped": len(self.dropped), "meta": json.loads(json.dumps(self.meta, default=str))}
