"""Token-level concepts for text dissection, computable offline, plus user annotations.

1. Built-in concepts are predicates on a token string and its position (registry
   :data:`TOKEN_CONCEPTS`): token classes (digits, punctuation, capitalised, all-caps,
   whitespace-led, newline), word lists (days, months, colours, number words, pronouns,
   determiners, prepositions), character patterns (suffixes -ing/-ed/-ly/-s, hyphen,
   apostrophe), position patterns (first text token, even positions) and spans (inside
   parentheses, inside quotes), evaluated on the decoded tokens of each text.
2. The BOS position gets no concept (it is excluded from the masks' rows: only text tokens
   are dissected).
3. User annotations (``--concepts FILE.jsonl``), one JSON object per line::

       {"text": "Paris is in France.", "concepts": {"city": [0], "country": [3]},
        "tokens": ["Paris", " is", " in", " France", "."]}

   ``concepts`` maps a concept name to **token indices into the text's tokens without
   BOS** (``model.to_str_tokens(text, prepend_bos=False)``); the optional ``tokens`` list
   is checked against the tokenizer, so annotations made for another tokenizer fail with
   a message naming the first differing token. Every concept named anywhere in the file
   is a column; a text that does not mention a concept has it nowhere.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError

_DAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"}
_COLOURS = {"red", "green", "blue", "yellow", "black", "white", "orange", "purple", "brown", "pink", "grey", "gray"}
_NUMBERS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "hundred", "thousand",
            "million", "first", "second", "third"}
_PRONOUNS = {"he", "she", "it", "they", "we", "i", "you", "him", "her", "them", "his", "their", "its", "our"}
_DETERMINERS = {"the", "a", "an", "this", "that", "these", "those"}
_PREPOSITIONS = {"in", "on", "at", "of", "to", "from", "by", "with", "for", "into", "over", "under"}
_PUNCT = set(string.punctuation) | {"“", "”", "’", "‘", "—", "–"}

TokenPredicate = Callable[[str, int], bool]


def _word(t: str) -> str:
    return t.strip().lower()


TOKEN_CONCEPTS: dict[str, TokenPredicate] = {
    "digits": lambda t, i: t.strip().isdigit(),
    "punctuation": lambda t, i: bool(t.strip()) and all(c in _PUNCT for c in t.strip()),
    "capitalised": lambda t, i: t.strip()[:1].isupper() and t.strip().isalpha(),
    "all_caps": lambda t, i: len(t.strip()) > 1 and t.strip().isalpha() and t.strip().isupper(),
    "space_led": lambda t, i: t.startswith(" "),
    "newline": lambda t, i: "\n" in t,
    "day": lambda t, i: _word(t) in _DAYS,
    "month": lambda t, i: _word(t) in _MONTHS,
    "colour": lambda t, i: _word(t) in _COLOURS,
    "number_word": lambda t, i: _word(t) in _NUMBERS,
    "pronoun": lambda t, i: _word(t) in _PRONOUNS,
    "determiner": lambda t, i: _word(t) in _DETERMINERS,
    "preposition": lambda t, i: _word(t) in _PREPOSITIONS,
    "suffix_ing": lambda t, i: _word(t).endswith("ing") and len(_word(t)) > 3,
    "suffix_ed": lambda t, i: _word(t).endswith("ed") and len(_word(t)) > 2,
    "suffix_ly": lambda t, i: _word(t).endswith("ly") and len(_word(t)) > 2,
    "suffix_s": lambda t, i: _word(t).endswith("s") and _word(t).isalpha() and len(_word(t)) > 2,
    "hyphen": lambda t, i: "-" in t,
    "apostrophe": lambda t, i: "'" in t or "’" in t,
    "first_token": lambda t, i: i == 0,
    "even_position": lambda t, i: i % 2 == 0,
}
SPAN_CONCEPTS = ("in_parens", "in_quotes")
BUILTIN_CONCEPTS: tuple[str, ...] = tuple(TOKEN_CONCEPTS) + SPAN_CONCEPTS


def _spans(tokens: Sequence[str]) -> dict[str, list[bool]]:
    """Inside-parentheses / inside-quotes flags (the delimiters themselves excluded)."""
    paren, quote = 0, False
    out = {"in_parens": [], "in_quotes": []}
    for t in tokens:
        opens_q = t.count('"') % 2 == 1
        out["in_parens"].append(paren > 0 and ")" not in t)
        out["in_quotes"].append(quote and not opens_q)
        paren = max(0, paren + t.count("(") - t.count(")"))
        quote = quote ^ opens_q
    return out


def builtin_masks(tokens: Sequence[str]) -> Tensor:
    """Bool ``[len(tokens) len(BUILTIN_CONCEPTS)]`` for one text's tokens (no BOS)."""
    cols = [[bool(fn(t, i)) for i, t in enumerate(tokens)] for fn in TOKEN_CONCEPTS.values()]
    spans = _spans(tokens)
    cols += [spans[name] for name in SPAN_CONCEPTS]
    return torch.tensor(cols, dtype=torch.bool).T.reshape(len(tokens), len(BUILTIN_CONCEPTS))


@dataclass(frozen=True)
class Annotated:
    """One annotated text from a concepts JSONL file."""

    text: str
    """The text."""
    concepts: dict
    """Concept name -> token indices (no BOS)."""
    tokens: tuple = ()
    """Optional expected token strings (checked against the tokenizer)."""


def read_annotations(path) -> tuple[list[Annotated], list[str]]:
    """Parse a concepts JSONL file into records and the sorted concept names."""
    path = Path(path)
    if not path.exists():
        raise InterpbenchError(f"concept file {path} does not exist; use --concepts builtin or a JSONL file")
    recs, names = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rec = Annotated(str(d["text"]), {str(k): [int(i) for i in v] for k, v in d.get("concepts", {}).items()},
                            tuple(d.get("tokens", ())))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InterpbenchError(f"{path}:{n}: expected {{\"text\": str, \"concepts\": {{name: [token indices]}}}} "
                                   f"({type(exc).__name__}: {exc})") from None
        recs.append(rec)
        names.update(rec.concepts)
    if not recs:
        raise InterpbenchError(f"{path} holds no annotated texts")
    for name in sorted(names):
        if not any(r.concepts.get(name) for r in recs):
            raise InterpbenchError(f"{path}: concept {name!r} is empty (no token indices anywhere); remove it")
    return recs, sorted(names)


def annotation_masks(rec: Annotated, tokens: Sequence[str], names: Sequence[str], where: str = "") -> Tensor:
    """Bool ``[len(tokens) len(names)]`` for one annotated text (errors name the mismatch)."""
    if rec.tokens and list(rec.tokens) != list(tokens):
        bad = next((i for i, (a, b) in enumerate(zip(rec.tokens, tokens)) if a != b), min(len(rec.tokens), len(tokens)))
        raise InterpbenchError(f"{where}annotation tokens differ from the tokenizer's at index {bad} "
                               f"({list(rec.tokens)[bad:bad + 1]} vs {list(tokens)[bad:bad + 1]}); "
                               f"re-annotate with this model's tokenizer")
    m = torch.zeros(len(tokens), len(names), dtype=torch.bool)
    for j, name in enumerate(names):
        for i in rec.concepts.get(name, []):
            if not 0 <= i < len(tokens):
                raise InterpbenchError(f"{where}concept {name!r} names token {i} but the text has {len(tokens)} tokens")
            m[i, j] = True
    return m
