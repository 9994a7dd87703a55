"""Text corpora for activation harvesting: a real, human-written default plus your own files.

``load_corpus(name)`` returns a list of documents (plain strings), in a fixed order.

1. ``"default"`` (alias ``"enwiki-sample"``): the English Wikipedia sample that the
   ``gensim`` wheel ships as test data
   (``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``,
   the first ~200 pages of the April 2016 dump, CC BY-SA). Redirects are dropped, wiki markup
   is stripped with ``gensim.corpora.wikicorpus.filter_wiki``, and each article is cut into
   documents of consecutive paragraphs of at most ~2,000 characters. It is followed by the
   ``lee-news`` corpus. In all 1,923 documents, 2.97 M characters, 648,770 SmolLM2 tokens
   (gensim 4.4.0; recount with ``corpus_stats``). Human-written; nothing model-generated.
2. ``"lee-news"``: the Lee background corpus (300 ABC news articles, ~60 k words) from
   the same wheel.
3. A path: a ``.txt`` file (documents separated by blank lines), a ``.jsonl`` file (field
   ``text``, or ``field=`` another), a ``.parquet``/``.arrow`` file, or a directory holding
   such files (a local Hugging Face dataset directory written by ``save_to_disk`` /
   ``push_to_hub`` holds ``.arrow`` / ``.parquet`` files with a ``text`` column).

Every failure names the fix (install gensim, point at an existing file, ...).
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

from .errors import InterpbenchError

_GENSIM_DATA = "test/test_data"
_WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_LEE_FILE = "lee_background.cor"
_MAX_DOC_CHARS = 2000


class CorpusError(InterpbenchError):
    """A corpus name or file that cannot be read."""


def _gensim_data() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("the default corpus ships with the gensim wheel, which is not installed; "
                          "run `pip install gensim` (or pass --corpus PATH to your own text)")
    return Path(list(spec.submodule_search_locations)[0]) / _GENSIM_DATA


_PAGE_RE = re.compile(r"<page>.*?<title>(.*?)</title>.*?<text[^>]*>(.*?)</text>.*?</page>", re.S)


def _clean_wiki(raw: str) -> list[str]:
    """Paragraphs of plain text from one article's wiki markup."""
    import html

    from gensim.corpora.wikicorpus import filter_wiki  # light: no model code runs

    text = filter_wiki(html.unescape(raw))
    paras = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in para.splitlines()]
        # drop table / template residue and heading-only lines
        lines = [ln for ln in lines if ln and not ln.startswith(("|", "!", "{", "}", "*", "#", ":", ";"))
                 and not (ln.startswith("=") and ln.endswith("="))]
        joined = re.sub(r"\s+", " ", " ".join(lines)).strip()
        joined = re.sub(r"\(\s*[,;]?\s*\)", "", joined).replace(" ,", ",").replace(" .", ".")
        if len(joined.split()) >= 8:
            paras.append(joined)
    return paras


def _chunk(paras: list[str], max_chars: int = _MAX_DOC_CHARS) -> list[str]:
    """Group consecutive paragraphs into documents of at most ``max_chars`` (longer ones alone)."""
    docs, cur = [], ""
    for p in paras:
        if cur and len(cur) + len(p) + 2 > max_chars:
            docs.append(cur)
            cur = ""
        cur = f"{cur}\n\n{p}" if cur else p
    if cur:
        docs.append(cur)
    return docs


@lru_cache(maxsize=2)
def _enwiki() -> tuple[str, ...]:
    from importlib.metadata import version

    from .paths import atomic_write_text, cache_dir

    path = _gensim_data() / _WIKI_FILE
    if not path.exists():
        raise CorpusError(f"{path} is missing from the gensim install; reinstall gensim (`pip install --force-reinstall gensim`)")
    # cleaning the markup takes ~10 s, so the result is kept under cache/corpora/
    cached = cache_dir() / "corpora" / f"enwiki-sample-v1-gensim{version('gensim')}.json"
    if cached.exists():
        try:
            return tuple(json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass  # rebuild below
    xml = bz2.decompress(path.read_bytes()).decode("utf-8")
    docs: list[str] = []
    for _title, raw in _PAGE_RE.findall(xml):
        if raw.lstrip().upper().startswith("#REDIRECT"):
            continue
        docs.extend(_chunk(_clean_wiki(raw)))
    try:
        atomic_write_text(cached, json.dumps(docs))
    except OSError:
        pass  # a read-only cache only costs time
    return tuple(docs)


@lru_cache(maxsize=2)
def _lee() -> tuple[str, ...]:
    path = _gensim_data() / _LEE_FILE
    if not path.exists():
        raise CorpusError(f"{path} is missing from the gensim install; reinstall gensim")
    return tuple(ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip())


def _default() -> list[str]:
    return list(_enwiki()) + list(_lee())


CORPORA: dict[str, Callable[[], list[str]]] = {
    "default": _default,
    "enwiki-sample": _default,
    "lee-news": lambda: list(_lee()),
}
"""Registry of named corpora (name -> loader returning documents)."""


def register_corpus(name: str, loader: Callable[[], list[str]]) -> None:
    """Add a named corpus; duplicate names are errors."""
    if name in CORPORA:
        raise CorpusError(f"corpus {name!r} is already registered")
    CORPORA[name] = loader


def _read_table(path: Path, field: str) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        import pyarrow as pa

        with pa.memory_map(str(path)) as src:
            try:
                table = pa.ipc.open_stream(src).read_all()
            except pa.ArrowInvalid:
                table = pa.ipc.open_file(src).read_all()
    if field not in table.column_names:
        raise CorpusError(f"{path} has no column {field!r} (columns: {table.column_names}); pass field=NAME")
    return [str(t) for t in table.column(field).to_pylist() if t]


def _read_file(path: Path, field: str) -> list[str]:
    if path.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{i + 1} is not JSON ({exc.msg}); one JSON object per line") from None
            if not isinstance(row, dict) or field not in row:
                raise CorpusError(f"{path}:{i + 1} has no field {field!r}; pass field=NAME")
            if row[field]:
                docs.append(str(row[field]))
        return docs
    if path.suffix in (".parquet", ".arrow"):
        return _read_table(path, field)
    text = path.read_text(encoding="utf-8", errors="replace")
    return [d.strip() for d in re.split(r"\n\s*\n", text) if d.strip()]


def load_corpus(name: str = "default", *, field: str = "text", max_docs: Optional[int] = None) -> list[str]:
    """Documents of a named corpus or of a file / directory (see the module docstring).

    ``field``: the text column of JSONL / parquet / arrow data. ``max_docs``: keep the first N.
    """
    if name in CORPORA:
        docs = CORPORA[name]()
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise CorpusError(f"unknown corpus {name!r}: use one of {sorted(CORPORA)} or a path to a "
                              f".txt / .jsonl / .parquet file or a dataset directory")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl", ".parquet", ".arrow")
                           and not p.name.startswith(("state", "dataset_info", ".")))
            if not files:
                raise CorpusError(f"{path} holds no .txt, .jsonl, .parquet or .arrow files")
            docs = [d for f in files for d in _read_file(f, field)]
        else:
            docs = _read_file(path, field)
    if not docs:
        raise CorpusError(f"corpus {name!r} is empty")
    return docs[:max_docs] if max_docs else docs


@dataclass(frozen=True)
class CorpusStats:
    """Size of a corpus under one tokenizer."""

    name: str
    """Corpus name or path."""
    n_docs: int
    """Number of documents."""
    n_chars: int
    """Characters over all documents."""
    n_tokens: int
    """Tokens over all documents (no BOS)."""

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CorpusStats":
        return cls(**d)


def corpus_stats(name: str, tokenizer) -> CorpusStats:
    """Count documents, characters and tokens of a corpus under ``tokenizer``."""
    docs = load_corpus(name)
    n_tokens = sum(len(ids) for ids in tokenizer(docs, add_special_tokens=False)["input_ids"])
    return CorpusStats(name, len(docs), sum(len(d) for d in docs), n_tokens)


__all__ = ["load_corpus", "corpus_stats", "CorpusStats", "CORPORA", "register_corpus", "CorpusError"]
