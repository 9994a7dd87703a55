"""Unit labels of a dissection run (``labels.json``) for the Units page and the graph page.

``labels.json`` (written by :func:`interpbench.dissect.report.labels_payload`)::

    {"schema_version": 1, "model": ..., "concepts": [...],
     "sites": {site: {"units": [{"unit", "concept", "iou", "best", "threshold", "formula",
                                 "formula_iou"}, ...],
                      "top_examples": {unit: [[example id, max activation], ...]}}},
     "extra": {"tokens": [[str, ...], ...] (text runs), "graph_labels": {...} (vision runs)}}

1. :func:`load_labels` finds the file (``files.labels`` of ``result.json``, else
   ``labels.json``) through :mod:`apps.data` (inside the run, size-limited), parses and
   checks its shape, and caches it per app by file identity like graphs.
2. :func:`unit_rows` turns one site into plain rows, :func:`filter_units` /
   :func:`sort_units` filter them by concept text and sort them (pure functions).
3. :func:`unit_examples` gives a unit's top examples: for text runs the example's tokens
   (from ``extra.tokens``) and, if an example carries per-token ``acts``, those too; for
   vision runs only the image id and its max activation (images are not stored).
4. :func:`unit_of_node` maps a graph node id ``<site>.c<j>`` to (labels site, unit j).
"""

from __future__ import annotations

import re
from typing import Any, Optional

from .data import AppDataError, load_result, parse_json, read_bytes_limited, resolve_run, run_file

SORTS = ("unit", "iou", "concept")
"""Sort orders of the units table: unit index, IoU (highest first), concept name."""
_NODE_UNIT = re.compile(r"^(?P<site>.+)\.c(?P<unit>\d+)$")


def labels_file_name(result: Optional[dict]) -> str:
    files = (result or {}).get("files")
    if isinstance(files, dict) and isinstance(files.get("labels"), str):
        return files["labels"]
    return "labels.json"


def _check(obj: Any, what: str) -> dict:
    if not isinstance(obj, dict) or not isinstance(obj.get("sites"), dict):
        raise AppDataError(f"{what} must hold an object with a 'sites' object (a dissection labels file)")
    if obj.get("schema_version") != 1:
        raise AppDataError(f"{what} has schema_version {obj.get('schema_version')!r}; this app reads schema_version 1")
    for site, body in obj["sites"].items():
        if not isinstance(body, dict) or not isinstance(body.get("units"), list):
            raise AppDataError(f"{what}: site {str(site)[:80]!r} needs a 'units' list")
    return obj


def load_labels(settings, run_id: Any) -> dict:
    """The checked ``labels.json`` of a dissection run (AppDataError with one line otherwise)."""
    run_dir = resolve_run(settings.runs_dir, run_id)
    try:
        result = load_result(settings.runs_dir, run_id)
    except AppDataError:
        result = None
    path = run_file(run_dir, labels_file_name(result), "labels file")
    what = f"{run_dir.name}/{path.name}"
    if not path.is_file():
        raise AppDataError(f"run {run_dir.name!r} has no {path.name}; the Units page shows dissection runs "
                           f"(interpbench dissect --vision-demo, or a dissect_text recipe)")

    def load() -> dict:
        return _check(parse_json(read_bytes_limited(path, settings.max_file_bytes, what), what), what)

    cache = getattr(settings, "cache", None)
    return load() if cache is None else cache.get_or_load(path, ("labels", settings.max_file_bytes), load)


def _num(x: Any) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def unit_rows(labels: dict, site: str) -> list[dict]:
    """Plain rows of one site: unit, concept ('' = unlabelled), iou, best, formula, formula_iou, n_examples."""
    body = labels["sites"].get(site)
    if body is None:
        raise AppDataError(f"site {site!r} is not in this run's labels; pick one of {sorted(labels['sites'])[:8]}")
    tops = body.get("top_examples") if isinstance(body.get("top_examples"), dict) else {}
    rows = []
    for i, u in enumerate(body["units"]):
        u = u if isinstance(u, dict) else {}
        unit = u.get("unit") if isinstance(u.get("unit"), int) else i
        ex = tops.get(str(unit))
        rows.append({"unit": unit, "concept": str(u.get("concept") or ""), "iou": _num(u.get("iou")),
                     "best": str(u.get("best") or ""), "formula": str(u.get("formula") or ""),
                     "formula_iou": _num(u.get("formula_iou")), "n_examples": len(ex) if isinstance(ex, list) else 0})
    return rows


def filter_units(rows: list[dict], text: Any = "", labelled_only: bool = False) -> list[dict]:
    """Rows whose concept, best concept or formula contains every word of ``text`` (case-insensitive)."""
    words = (text if isinstance(text, str) else "").lower().split()
    out = []
    for r in rows:
        if labelled_only and not r["concept"]:
            continue
        hay = f"{r['concept']} {r['best']} {r['formula']} c{r['unit']}".lower()
        if all(w in hay for w in words):
            out.append(r)
    return out


def sort_units(rows: list[dict], order: Any = "iou") -> list[dict]:
    """Rows sorted by ``order`` (one of :data:`SORTS`; IoU highest first, missing IoU last)."""
    if order == "unit":
        return sorted(rows, key=lambda r: r["unit"])
    if order == "concept":
        return sorted(rows, key=lambda r: (r["concept"] == "", r["concept"], r["unit"]))
    return sorted(rows, key=lambda r: (r["iou"] is None, -(r["iou"] or 0.0), r["unit"]))


def unit_examples(labels: dict, site: str, unit: int) -> list[dict]:
    """Top examples of one unit: dicts with ``id``, ``act`` and (text runs) ``tokens`` / ``acts``."""
    body = labels["sites"].get(site) or {}
    tops = body.get("top_examples") if isinstance(body.get("top_examples"), dict) else {}
    texts = (labels.get("extra") or {}).get("tokens") if isinstance(labels.get("extra"), dict) else None
    out = []
    for ex in tops.get(str(unit)) or []:
        if isinstance(ex, dict):
            item = {"id": ex.get("id"), "act": _num(ex.get("act"))}
            if isinstance(ex.get("tokens"), list):
                item["tokens"] = [str(t) for t in ex["tokens"]]
            if isinstance(ex.get("acts"), list):
                item["acts"] = ex["acts"]
        elif isinstance(ex, (list, tuple)) and len(ex) == 2:
            item = {"id": ex[0], "act": _num(ex[1])}
        else:
            continue
        if "tokens" not in item and isinstance(texts, list) and isinstance(item["id"], int) \
                and 0 <= item["id"] < len(texts) and isinstance(texts[item["id"]], list):
            item["tokens"] = [str(t) for t in texts[item["id"]]]
        out.append(item)
    return out


def unit_of_node(labels: dict, node_id: Any) -> Optional[tuple[str, int]]:
    """(site, unit) of a graph node ``<name>.c<j>`` when exactly one labels site is ``<name>`` or ``<name>.*``."""
    m = _NODE_UNIT.match(node_id) if isinstance(node_id, str) else None
    if m is None:
        return None
    name = m.group("site")
    sites = [s for s in labels["sites"] if s == name or s.startswith(name + ".")]
    return (sites[0], int(m.group("unit"))) if len(sites) == 1 else None


def unit_row(labels: dict, site: str, unit: int) -> Optional[dict]:
    return next((r for r in unit_rows(labels, site) if r["unit"] == unit), None)
