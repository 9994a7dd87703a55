"""Sites: the one addressing type for reading, writing, caching, recipes and the app.

A site names one activation inside a model with a TransformerLens-style hook name and an
optional index into it::

    blocks.5.hook_resid_post            whole tensor          [batch pos d_model]
    blocks.3.attn.hook_z[head=2]        one head              [batch pos d_head]
    blocks.3.attn.hook_z[head=2,pos=-1] one head, last token  [batch d_head]
    blocks.*.hook_mlp_out               fnmatch pattern (expands to many sites)

Index keys: ``head`` (for per-head sites), ``pos`` (token position, negative counts from
the end), ``neuron`` (last axis of MLP / residual sites). Values are ints or ``a:b``
slices. The canonical string form round-trips: ``str(Site.parse(s)) == s`` for
canonical ``s``.

Dimension glossary (used in shape annotations across the package):
    batch   prompts in a batch          pos     token positions
    d_model residual width              n_heads attention (query) heads
    n_kv    key/value heads (GQA)       d_head  per-head width
    d_mlp   MLP hidden width            d_vocab vocabulary size
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Union

from .errors import SiteError

Index = Union[int, slice, None]

_INDEX_KEYS = ("head", "pos", "neuron")
_SITE_RE = re.compile(r"^(?P<name>[A-Za-z0-9_.*?\[\]-]+?)(?:\[(?P<idx>[^\]]*)\])?$")


def _parse_index(text: str) -> Index:
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise SiteError(f"bad slice {text!r}: use start:stop, e.g. pos=0:3")
        start, stop = (int(p) if p.strip() else None for p in parts)
        return slice(start, stop)
    try:
        return int(text)
    except ValueError:
        raise SiteError(f"bad index {text!r}: use an integer or start:stop") from None


def _fmt_index(value: Index) -> str:
    if isinstance(value, slice):
        start = "" if value.start is None else str(value.start)
        stop = "" if value.stop is None else str(value.stop)
        return f"{start}:{stop}"
    return str(value)


@dataclass(frozen=True)
class Site:
    """One addressable activation (or a pattern of them) with an optional index."""

    name: str
    """Hook name in TransformerLens form, e.g. ``blocks.3.attn.hook_z``; may hold fnmatch wildcards."""
    head: Index = None
    """Attention head (per-head sites only): an int, a slice, or None for all heads."""
    pos: Index = None
    """Token position: an int (negative counts from the end), a slice, or None for all."""
    neuron: Index = None
    """Index into the last axis (MLP neurons, residual dimensions), or None for all."""

    @classmethod
    def parse(cls, spec: Union[str, "Site"]) -> "Site":
        """Parse ``'blocks.3.attn.hook_z[head=2,pos=-1]'`` (or return a Site unchanged)."""
        if isinstance(spec, Site):
            return spec
        if not isinstance(spec, str) or not spec.strip():
            raise SiteError(f"a site must be a non-empty string, got {spec!r}")
        m = _SITE_RE.match(spec.strip())
        if m is None:
            raise SiteError(f"cannot parse site {spec!r}: expected e.g. 'blocks.3.attn.hook_z[head=2]'")
        kwargs = {}
        if m.group("idx"):
            for part in m.group("idx").split(","):
                if "=" not in part:
                    raise SiteError(f"bad index {part!r} in {spec!r}: use key=value with key in {_INDEX_KEYS}")
                key, value = (s.strip() for s in part.split("=", 1))
                if key not in _INDEX_KEYS:
                    raise SiteError(f"unknown index key {key!r} in {spec!r}: use one of {_INDEX_KEYS}")
                kwargs[key] = _parse_index(value)
        return cls(name=m.group("name"), **kwargs)

    @property
    def is_pattern(self) -> bool:
        return any(c in self.name for c in "*?[")

    @property
    def layer(self) -> Optional[int]:
        """Layer number for ``blocks.{l}.…`` sites, else None."""
        parts = self.name.split(".")
        if len(parts) > 1 and parts[0] == "blocks" and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def has_index(self) -> bool:
        return self.head is not None or self.pos is not None or self.neuron is not None

    def with_index(self, **kwargs: Index) -> "Site":
        return Site(self.name, **{**{k: getattr(self, k) for k in _INDEX_KEYS}, **kwargs})

    def __str__(self) -> str:
        idx = [f"{k}={_fmt_index(getattr(self, k))}" for k in _INDEX_KEYS if getattr(self, k) is not None]
        return self.name + (f"[{','.join(idx)}]" if idx else "")


def expand(patterns: Union[str, Site, Iterable[Union[str, Site]]], available: Iterable[str]) -> list[Site]:
    """Expand names/patterns against the available site names, in model order.

    Raises :class:`SiteError` when a pattern matches nothing or a name is unknown, naming
    the closest available names, so an empty cache can never pass silently.
    """
    if isinstance(patterns, (str, Site)):
        patterns = [patterns]
    available = list(available)
    out: list[Site] = []
    seen = set()
    for spec in patterns:
        site = Site.parse(spec)
        if site.is_pattern:
            matched = [n for n in available if fnmatch.fnmatchcase(n, site.name)]
            if not matched:
                raise SiteError(f"site pattern {site.name!r} matches no site of this model; "
                                f"list them with `interpbench inspect MODEL`")
        elif site.name in available:
            matched = [site.name]
        else:
            raise SiteError(unknown_site_message(site.name, available))
        for name in matched:
            s = Site(name, site.head, site.pos, site.neuron)
            if str(s) not in seen:
                seen.add(str(s))
                out.append(s)
    return out


def unknown_site_message(name: str, available: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, available, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else " List them with `interpbench inspect MODEL`."
    return f"unknown site {name!r} for this model.{hint}"
