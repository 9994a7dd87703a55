"""Factual recall prompts for causal tracing (Meng et al. 2022, ROME).

1. :data:`FACTS` is a small curated list of well-known facts ``(subject, prompt, object)``;
   the prompt contains the subject and ends right before the object.
2. :func:`load_facts` tokenises them for a model (BOS prepended), keeps the facts whose
   object's first token is the whole object (a single token, leading space included) and
   records the token positions of the subject (from the tokenizer's offsets). Facts that
   fail are dropped with a reason, never used silently.
3. :func:`check_facts` runs the model once per fact and marks the facts it gets right
   (greedy top-1 next token == object token); causal tracing uses only those by default.
4. The registered task ``facts`` returns :class:`PromptPairs`: clean = the prompt,
   corrupted = the same prompt (causal tracing corrupts the subject's *embeddings* with
   noise, not the tokens), answer = the object token, wrong = the model's most likely
   token other than the object on the clean prompt. Prompt pairs must share one length, so
   the task keeps the facts of the most common token length (or ``seq_len=``) and reports
   the others as dropped; ``meta["subject_pos"]`` lists the subject positions per prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError
from .base import PromptPairs
from .registry import register_task

FACTS: tuple[tuple[str, str, str], ...] = (
    ("The Eiffel Tower", "The Eiffel Tower is located in the city of", " Paris"),
    ("The Colosseum", "The Colosseum is located in the city of", " Rome"),
    ("The Statue of Liberty", "The Statue of Liberty is located in the city of", " New"),
    ("Big Ben", "Big Ben is located in the city of", " London"),
    ("The Brandenburg Gate", "The Brandenburg Gate is located in the city of", " Berlin"),
    ("The Kremlin", "The Kremlin is located in the city of", " Moscow"),
    ("The Acropolis", "The Acropolis is located in the city of", " Athens"),
    ("The Sagrada Familia", "The Sagrada Familia is located in the city of", " Barcelona"),
    ("The Golden Gate Bridge", "The Golden Gate Bridge is located in the city of", " San"),
    ("The Taj Mahal", "The Taj Mahal is located in the country of", " India"),
    ("Mount Fuji", "Mount Fuji is located in the country of", " Japan"),
    ("The Great Wall", "The Great Wall is located in the country of", " China"),
    ("The Louvre", "The Louvre is a museum in the city of", " Paris"),
    ("Japan", "The capital of Japan is the city of", " Tokyo"),
    ("France", "The capital of France is the city of", " Paris"),
    ("Germany", "The capital of Germany is the city of", " Berlin"),
    ("Spain", "The capital of Spain is the city of", " Madrid"),
    ("Italy", "The capital of Italy is the city of", " Rome"),
    ("Ottawa", "Ottawa is the capital of", " Canada"),
    ("England", "The capital of England is the city of", " London"),
    ("Cairo", "Cairo is the capital of", " Egypt"),
    ("Russia", "The capital of Russia is the city of", " Moscow"),
    ("Beijing", "Beijing is the capital of", " China"),
    ("Egypt", "The capital of Egypt is the city of", " Cairo"),
    ("Microsoft", "Microsoft was founded by Bill", " Gates"),
    ("Apple", "Apple was founded by Steve", " Jobs"),
    ("The iPhone", "The iPhone is made by the company", " Apple"),
    ("Windows", "Windows is an operating system made by", " Microsoft"),
    ("The PlayStation", "The PlayStation is a game console made by", " Sony"),
    ("Albert Einstein", "Albert Einstein was born in the country of", " Germany"),
    ("The Mona Lisa", "The Mona Lisa was painted by Leonardo da", " Vinci"),
    ("Romeo and Juliet", "Romeo and Juliet was written by William", " Shakespeare"),
    ("Lionel Messi", "Lionel Messi plays the sport of", " football"),
    ("Michael Jordan", "Michael Jordan is famous for playing the sport of", " basketball"),
    ("Tiger Woods", "Tiger Woods is famous for playing the sport of", " golf"),
    ("Roger Federer", "Roger Federer is famous for playing the sport of", " tennis"),
    ("Barack Obama", "Barack Obama was the president of the United", " States"),
    ("Vladimir Putin", "Vladimir Putin is the president of", " Russia"),
    ("Angela Merkel", "Angela Merkel was the chancellor of the country of", " Germany"),
    ("The Amazon River", "The Amazon River is located in South", " America"),
    ("The Nile", "The Nile is a river on the continent of", " Africa"),
    ("The Sahara", "The Sahara is a desert on the continent of", " Africa"),
    ("Mount Everest", "Mount Everest is the highest mountain in the", " world"),
    ("The Pacific", "The Pacific is the largest", " ocean"),
    ("Mexico", "The official language of Mexico is", " Spanish"),
    ("Brazil", "The official language of Brazil is", " Portuguese"),
    ("France", "The official language of France is", " French"),
    ("Germany", "The official language of Germany is", " German"),
    ("Japan", "The official language of Japan is", " Japanese"),
    ("Italy", "The official language of Italy is", " Italian"),
    ("The yen", "The yen is the currency of the country of", " Japan"),
    ("The euro", "The euro is the currency of the European", " Union"),
    ("Toyota", "Toyota is a car company from", " Japan"),
    ("BMW", "BMW is a car company from the country of", " Germany"),
    ("Sherlock Holmes", "Sherlock Holmes is a fictional", " detective"),
    ("The Beatles", "The Beatles were a band from", " Liverpool"),
    ("Isaac Newton", "Isaac Newton discovered the law of", " gravity"),
)
"""Curated facts ``(subject, prompt, object)``; the object is the greedy continuation sought."""


@dataclass(frozen=True)
class Fact:
    """One tokenised fact for one model."""

    subject: str
    """Subject string, as it appears in the prompt."""
    prompt: str
    """Prompt text (ends right before the object)."""
    obj: str
    """Object continuation, leading space included."""
    tokens: Tensor
    """Prompt token ids ``[pos]`` (BOS first)."""
    subject_pos: tuple[int, ...]
    """Token positions (in ``tokens``) that overlap the subject's characters."""
    answer: int
    """Token id of the object (a single token)."""
    correct: Optional[bool] = None
    """Whether the model's greedy next token is the object (None until :func:`check_facts`)."""

    def to_dict(self) -> dict:
        return {"subject": self.subject, "prompt": self.prompt, "object": self.obj, "tokens": self.tokens.tolist(),
                "subject_pos": list(self.subject_pos), "answer": self.answer, "correct": self.correct}


def subject_positions(tokenizer, prompt: str, subject: str, offset: int = 1) -> tuple[int, ...]:
    """Token positions of ``subject`` inside ``prompt`` (+``offset`` for the BOS token)."""
    start = prompt.find(subject)
    if start < 0:
        raise InterpbenchError(f"subject {subject!r} does not occur in prompt {prompt!r}")
    end = start + len(subject)
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    pos = tuple(i + offset for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start)
    if not pos:
        raise InterpbenchError(f"no token of {prompt!r} covers the subject {subject!r}")
    return pos


def load_facts(model, facts: Sequence[tuple[str, str, str]] = FACTS) -> tuple[list[Fact], list[str]]:
    """Tokenise the facts for ``model``: (usable facts, dropped facts with reasons)."""
    tok = model.tokenizer
    kept, dropped = [], []
    for subject, prompt, obj in facts:
        ids = tok(obj, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            dropped.append(f"{prompt!r} -> {obj!r}: object is {len(ids)} tokens, not 1")
            continue
        try:
            pos = subject_positions(tok, prompt, subject)
        except InterpbenchError as e:
            dropped.append(str(e))
            continue
        tokens = model.to_tokens(prompt)[0]
        kept.append(Fact(subject, prompt, obj, tokens, pos, int(ids[0])))
    return kept, dropped


@torch.no_grad()
def check_facts(model, facts: Sequence[Fact]) -> list[Fact]:
    """The facts with ``correct`` set: greedy top-1 next token == object token."""
    by_len: dict[int, list[int]] = {}
    for i, f in enumerate(facts):  # one forward per prompt length
        by_len.setdefault(len(f.tokens), []).append(i)
    top: dict[int, int] = {}
    for idx in by_len.values():
        ids = model(torch.stack([facts[i].tokens for i in idx]))[:, -1].argmax(-1).tolist()
        top.update(zip(idx, ids))
    return [Fact(f.subject, f.prompt, f.obj, f.tokens, f.subject_pos, f.answer, top[i] == f.answer)
            for i, f in enumerate(facts)]


@register_task("facts")
@torch.no_grad()
def facts_task(model, n: int = 16, seed: int = 0, seq_len: Optional[int] = None,
               only_correct: bool = False) -> PromptPairs:
    """Factual-recall prompt pairs (see the module docstring); ``n`` caps the count (curated order)."""
    facts, dropped = load_facts(model)
    if only_correct:
        checked = check_facts(model, facts)
        dropped += [f"{f.prompt!r}: model does not answer {f.obj!r}" for f in checked if not f.correct]
        facts = [f for f in checked if f.correct]
    if not facts:
        raise InterpbenchError("no fact survived the tokenizer checks for this model; see load_facts()")
    lengths = [len(f.tokens) for f in facts]
    want = seq_len if seq_len is not None else max(set(lengths), key=lambda L: (lengths.count(L), -L))
    dropped += [f"{f.prompt!r}: {len(f.tokens)} tokens, task length is {want}" for f in facts if len(f.tokens) != want]
    facts = [f for f in facts if len(f.tokens) == want][:n]
    if not facts:
        raise InterpbenchError(f"no fact has {want} tokens; pick seq_len from {sorted(set(lengths))}")
    clean = torch.stack([f.tokens for f in facts])  # [batch pos]
    answer = torch.tensor([f.answer for f in facts], device=clean.device)
    logits = model(clean)[:, -1]  # [batch d_vocab]
    logits[torch.arange(len(facts)), answer] = float("-inf")
    wrong = logits.argmax(-1)
    return PromptPairs("facts", clean, clean.clone(), answer, wrong, tuple(f.prompt for f in facts),
                       tuple(f.prompt for f in facts), tuple(dropped),
                       {"seed": seed, "n": n, "seq_len": want, "wrong": "model's top non-answer token",
                        "corruption": "noise on subject embeddings (causal tracing), tokens unchanged",
                        "subject_pos": [list(f.subject_pos) for f in facts]})


__all__ = ["FACTS", "Fact", "load_facts", "check_facts", "subject_positions", "facts_task"]
