"""Harvest latent activations over corpus windows, once per job.

1. Take ``n_docs`` documents spread evenly over the corpus
   (:func:`interpbench.corpus.load_corpus`; the Python docs' prose from ``pydoc_data`` when
   that module is not installed — the record says which).
2. Tokenise each document without special tokens and cut it into at most
   ``windows_per_doc`` consecutive windows of exactly ``ctx_len`` tokens (shorter tails are
   dropped). Each window remembers its document index.
3. Prepend BOS, run the source in batches of ``harvest_batch`` windows, drop the BOS
   position and keep ``[window pos feature]`` activations of the requested latents.
4. Save ``{tokens, doc, acts, features, corpus}`` atomically (``harvest.pt`` in the job dir)
   so resumed jobs and other workers read it instead of recomputing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import InterpbenchError
from ..paths import atomic_write_bytes


@dataclass(frozen=True)
class Harvest:
    """Activations of the selected latents over corpus windows."""

    tokens: Int[Tensor, "window pos"]
    """Token ids of each window (no BOS)."""
    doc: Int[Tensor, "window"]
    """Index of the document each window comes from."""
    acts: Float[Tensor, "window pos feature"]
    """Latent activations (BOS dropped)."""
    features: tuple[int, ...]
    """Latent index of each column of ``acts``."""
    corpus: str
    """Which corpus the windows come from."""

    def column(self, feature: int) -> int:
        try:
            return self.features.index(feature)
        except ValueError:
            raise InterpbenchError(f"feature {feature} was not harvested (harvested {self.features[0]}.."
                                   f"{self.features[-1]})") from None

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        torch.save({"tokens": self.tokens, "doc": self.doc, "acts": self.acts,
                    "features": list(self.features), "corpus": self.corpus, "schema_version": 1}, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Harvest":
        d = torch.load(path, weights_only=True)
        return cls(d["tokens"], d["doc"], d["acts"], tuple(d["features"]), d["corpus"])


def fallback_docs() -> list[str]:
    """Prose paragraphs of the Python language reference shipped with CPython (offline)."""
    from pydoc_data.topics import topics

    return [" ".join(p.split()) for t in sorted(topics) for p in topics[t].split("\n\n")
            if len(p.split()) > 40 and not p.startswith("   ")]


def corpus_docs(name: str, n_docs: int) -> tuple[list[str], str]:
    """``n_docs`` documents spread evenly over the named corpus, and the corpus label."""
    try:
        from ..corpus import load_corpus
    except ImportError:
        docs, label = fallback_docs(), "pydoc-topics (fallback: interpbench.corpus missing)"
    else:
        docs, label = load_corpus(name), name
    if len(docs) < 2:
        raise InterpbenchError(f"corpus {label!r} has {len(docs)} documents; need at least 2 (disjoint splits)")
    step = max(1, len(docs) // n_docs)
    return docs[::step][:n_docs], label


def make_windows(tokenizer, docs: Sequence[str], ctx_len: int, windows_per_doc: int
                 ) -> tuple[Tensor, Tensor]:
    """``(tokens [window ctx_len], doc [window])`` from documents (see step 2)."""
    rows, doc_ids = [], []
    for d, text in enumerate(docs):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for w in range(min(windows_per_doc, len(ids) // ctx_len)):
            rows.append(ids[w * ctx_len:(w + 1) * ctx_len])
            doc_ids.append(d)
    if not rows:
        raise InterpbenchError(f"no document has {ctx_len} tokens; lower ctx_len or use a longer corpus")
    return torch.tensor(rows, dtype=torch.long), torch.tensor(doc_ids, dtype=torch.long)


@torch.no_grad()
def harvest(source, features: Sequence[int], docs: Sequence[str], corpus: str, ctx_len: int,
            windows_per_doc: int, batch: int, progress: Optional[callable] = None) -> Harvest:
    features = tuple(int(f) for f in features)
    bad = [f for f in features if not 0 <= f < source.n_latents]
    if bad:
        raise InterpbenchError(f"features {bad[:5]}... are out of range: {source.name} has "
                               f"{source.n_latents} latents (0..{source.n_latents - 1})")
    model = source.model
    tokens, doc = make_windows(model.tokenizer, docs, ctx_len, windows_per_doc)
    bos = model.tokenizer.bos_token_id
    chunks = []
    for i in range(0, len(tokens), batch):
        t = tokens[i:i + batch]
        if bos is not None:
            t = torch.cat([torch.full((len(t), 1), bos, dtype=torch.long), t], dim=1)  # [b 1+ctx]
        a = source.latent_acts(t.to(model.device), features)  # [b 1+ctx n_sel]
        chunks.append(a[:, 1:] if bos is not None else a)
        if progress:
            progress(min(i + batch, len(tokens)), len(tokens))
    acts = torch.cat(chunks).float().cpu()  # [window ctx feature]
    return Harvest(tokens, doc, acts, features, corpus)
