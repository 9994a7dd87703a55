"""Causal-graph JSON → validated arrays, and the preset layout the graph page draws.

Validation (one readable line per failure, never a traceback in the page):

1. The top level is an object with ``schema_version`` 1, a ``nodes`` list and an ``edges``
   list (sizes capped by :data:`MAX_NODES` / :data:`MAX_EDGES`).
2. Each node has a unique string ``id``, a string ``type``, an int ``layer`` (or null for
   the input / logits) and an int ``pos`` or null.
3. Each edge names an existing ``source`` node and a ``target`` *receiver*: a node id,
   optionally with a port (``a3.h2<q>``, ``a3.h2@5<k>``, as :mod:`interpbench.graphs.ir`
   writes them), and has a finite ``score``. Sources, target nodes, scores and the
   ``in_circuit`` flags become numpy arrays so pruning is vectorised.

Layout (computed server-side, once per graph, independent of pruning so nodes never jump):

1. Rows: the input/embedding at row 0 (bottom of the screen), attention of layer ``l`` at
   row ``2l+1``, MLP / neurons / features / errors of layer ``l`` at row ``2l+2``, logits at
   the top row.
2. Columns: one per token position when any node has a ``pos`` (per-position graph);
   otherwise a single column.
3. Inside a (row, column) cell each node gets a slot: a head sits at its head index (so
   head h lines up across layers), MLPs / neurons / features go right of the heads, a lone
   input or logits node is centred; cells with ports or unknown heads are simply ordered by
   (type, head, port, id). A column is as wide as its widest cell; in per-position graphs a
   column only keeps the slots its nodes use. Screen ``y`` grows
   downwards, so ``y = (top_row - row) * ROW_DY`` puts the embeddings at the bottom.
4. A row whose nodes all have ids ``<name>.c<j>`` (units of one site, e.g. the
   ``conv2.c17`` neurons of a dissection graph) is labelled ``<name>`` rather than
   ``L<l> mlp``.
5. Deep models (more than COMPACT_LAYERS layers) only get the rows that hold nodes of the
   current view, closer together; a graph without positions is spread horizontally so
   its drawing is about as wide as it is tall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .data import AppDataError, finite

MAX_NODES = 200_000
"""Largest node count the app accepts."""
MAX_EDGES = 1_000_000
"""Largest edge count the app accepts."""
NODE_DX, COL_GAP, ROW_DY = 46.0, 40.0, 90.0
"""Layout spacing in cytoscape model units: between nodes in a cell, between columns, between rows."""

COMPACT_LAYERS = 12
"""Graphs of deeper models show only the rows that hold nodes of the current view ..."""
ROW_DY_COMPACT = 50.0
"""... and put them closer together."""

_TYPE_ORDER = {"input": 0, "attention": 1, "mlp": 2, "neuron": 3, "feature": 4, "error": 5, "logits": 6}
_HEAD = re.compile(r"^a(\d+)\.h(\d+)([qkv])?(?:@(-?\d+))?$")
_UNIT = re.compile(r"^(?P<site>[A-Za-z_][\w.]*?)\.c\d+$")
_RECEIVER = re.compile(r"^(?P<node>[^<>]+?)(?:<(?P<port>[qkv])>)?(?P<pos>@-?\d+)?$")


def split_receiver(target: str) -> tuple[str, str]:
    """``'a3.h2@5<q>'`` / ``'a3.h2<q>@5'`` -> ``('a3.h2@5', 'q')``; ``'m4'`` -> ``('m4', '')``."""
    m = _RECEIVER.match(target)
    if m is None:
        return target, ""
    return m.group("node") + (m.group("pos") or ""), m.group("port") or ""


@dataclass(frozen=True)
class GraphData:
    """A validated causal graph (the on-disk schema_version 1 graph JSON)."""

    nodes: tuple
    """Node dicts as on disk (validated id/type/layer/pos)."""
    index: dict
    """Node id → position in ``nodes``."""
    src: np.ndarray
    """int32 [edges]: index of each edge's source node."""
    tgt: np.ndarray
    """int32 [edges]: index of each edge's target node."""
    score: np.ndarray
    """float64 [edges]: each edge's score (signed)."""
    in_circuit: np.ndarray
    """bool [edges]: the edge is in the circuit the method kept (``in_circuit``, default true)."""
    edges: tuple
    """Edge dicts as on disk (for hover info and export)."""
    metadata: dict = field(default_factory=dict)
    """Graph metadata (``metadata`` or ``meta`` on disk: model, method, metric, tokens, ...)."""
    faithfulness: Optional[dict] = None
    """Faithfulness curve {sizes, values, cpr, cmd, ablation} or None."""
    ground_truth: Optional[tuple] = None
    """Known-circuit edges as (source, target) pairs, or None."""
    layout_ref: Optional["LayoutRef"] = None
    """Rows / head slots of the whole graph (every view of it is laid out against these)."""

    @property
    def per_position(self) -> bool:
        return any(n.get("pos") is not None for n in self.nodes)


def _int_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, int) and not isinstance(x, bool))


def parse_graph(obj: Any, what: str = "graph file") -> GraphData:
    """Validate a parsed graph JSON object into :class:`GraphData` (raises AppDataError)."""
    if not isinstance(obj, dict):
        raise AppDataError(f"{what} must hold a JSON object with nodes and edges, not {type(obj).__name__}")
    if obj.get("schema_version") != 1:
        raise AppDataError(f"{what} has schema_version {obj.get('schema_version')!r}; this app reads schema_version 1")
    nodes, edges = obj.get("nodes"), obj.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise AppDataError(f"{what} needs 'nodes' and 'edges' lists")
    if len(nodes) > MAX_NODES or len(edges) > MAX_EDGES:
        raise AppDataError(f"{what} has {len(nodes)} nodes / {len(edges)} edges, over the app's limit of "
                           f"{MAX_NODES} / {MAX_EDGES}; prune the graph before viewing it")
    index: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if not isinstance(n, dict) or not isinstance(n.get("id"), str) or not n["id"] or len(n["id"]) > 200:
            raise AppDataError(f"{what}: node {i} needs a string 'id' (1-200 characters)")
        if n["id"] in index:
            raise AppDataError(f"{what}: node id {n['id']!r} appears twice")
        if not isinstance(n.get("type"), str):
            raise AppDataError(f"{what}: node {n['id']!r} needs a string 'type'")
        if not _int_or_none(n.get("layer")) or not _int_or_none(n.get("pos")):
            raise AppDataError(f"{what}: node {n['id']!r} has a non-integer 'layer' or 'pos'")
        index[n["id"]] = i
    src = np.empty(len(edges), dtype=np.int32)
    tgt = np.empty(len(edges), dtype=np.int32)
    score = np.empty(len(edges), dtype=np.float64)
    in_circuit = np.ones(len(edges), dtype=bool)
    for j, e in enumerate(edges):
        if not isinstance(e, dict):
            raise AppDataError(f"{what}: edge {j} is not an object")
        s, t = index.get(e.get("source")), index.get(e.get("target"))
        if t is None and isinstance(e.get("target"), str):
            t = index.get(split_receiver(e["target"])[0])
        if s is None or t is None:
            bad = e.get("source") if s is None else e.get("target")
            raise AppDataError(f"{what}: edge {j} refers to unknown node {str(bad)[:80]!r}")
        v = finite(e.get("score"))
        if v is None:
            raise AppDataError(f"{what}: edge {j} ({e['source']} -> {e['target']}) needs a finite numeric 'score'")
        src[j], tgt[j], score[j] = s, t, v
        if e.get("in_circuit") is False:
            in_circuit[j] = False
    faith = obj.get("faithfulness")
    if faith is not None and not isinstance(faith, dict):
        raise AppDataError(f"{what}: 'faithfulness' must be null or an object")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else obj.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    gt = obj.get("ground_truth", meta.get("ground_truth"))
    if gt is not None:
        if not isinstance(gt, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                               and all(isinstance(x, str) for x in p) for p in gt):
            raise AppDataError(f"{what}: 'ground_truth' must be null or a list of [source, target] id pairs")
        gt = tuple((p[0], p[1]) for p in gt)
    return GraphData(tuple(nodes), index, src, tgt, score, in_circuit, tuple(edges), meta, faith, gt,
                     LayoutRef.of(nodes))


def node_head(node: dict) -> tuple[int, str]:
    """(head index, port letter) of an attention node, from its fields or its id; (-1, '') otherwise."""
    head = node.get("head")
    m = _HEAD.match(node["id"])
    port = node.get("port") if isinstance(node.get("port"), str) else ((m.group(3) or "") if m else "")
    if isinstance(head, int) and not isinstance(head, bool):
        return head, port
    return (int(m.group(2)), port) if m else (-1, port)


def node_row(node: dict, top_row: int) -> int:
    """Layout row: 0 for the input, 2l+1 for attention, 2l+2 for MLP-like nodes, ``top_row`` for logits."""
    kind = node["type"]
    if kind in ("input", "embed", "embedding"):
        return 0
    if kind == "logits":
        return top_row
    layer = node.get("layer") if node.get("layer") is not None else 0
    return 2 * layer + 1 if kind == "attention" else 2 * layer + 2


def row_label(row: int, top_row: int) -> str:
    """Human label of a layout row."""
    if row == 0:
        return "embed"
    if row == top_row:
        return "logits"
    return f"L{(row - 1) // 2} " + ("attn" if row % 2 == 1 else "mlp")


def row_names(nodes: list | tuple, top_row: int) -> dict:
    """Row → site name for rows whose nodes are all units ``<site>.c<j>`` of one site."""
    seen: dict[int, set] = {}
    for n in nodes:
        if n["type"] in ("input", "logits"):
            continue
        m = _UNIT.match(n["id"])
        seen.setdefault(node_row(n, top_row), set()).add(m.group("site") if m else None)
    return {r: next(iter(v)) for r, v in seen.items() if len(v) == 1 and None not in v}


def _sort_key(node: dict) -> tuple:
    head, port = node_head(node)
    feat = node.get("feature") if isinstance(node.get("feature"), int) else -1
    return (_TYPE_ORDER.get(node["type"], 7), head, port, feat, node["id"])


def _slots(members: list[dict], n_head_slots: int) -> list[Optional[int]]:
    """Slot (column offset in NODE_DX units) of each node of one cell; None = centred.

    Heads sit at their head index so the same head lines up across layers; MLPs, neurons
    and features go right of the heads; a lone input or logits node is centred.
    """
    if len(members) == 1 and members[0]["type"] in ("input", "logits"):
        return [None]
    att = [node_head(n) for n in members if n["type"] == "attention"]
    aligned = all(h >= 0 and not port for h, port in att) and len({h for h, _ in att}) == len(att)
    if not aligned:
        return list(range(len(members)))
    out, rank = [], 0
    for n in members:
        if n["type"] == "attention":
            out.append(node_head(n)[0])
        else:
            out.append(n_head_slots + rank)
            rank += 1
    return out


@dataclass(frozen=True)
class LayoutRef:
    """What the whole graph fixes about any view's layout (computed once per graph)."""

    top_row: int
    """Row of the logits (2 * n_layers + 1)."""
    n_head_slots: int
    """Largest head index + 1 (MLPs etc. go right of the heads)."""
    per_position: bool
    """Any node has a position: one column per position."""
    rows: tuple
    """Rows used by the graph (for the row labels)."""
    names: tuple = ()
    """(row, site name) of rows made of one site's units (``conv2.c17`` ...), labelled by the site."""

    @staticmethod
    def of(nodes: list | tuple) -> "LayoutRef":
        layers = [n.get("layer") for n in nodes if n["type"] not in ("input", "logits") and n.get("layer") is not None]
        top_row = 2 * (max(layers) + 1) + 1 if layers else 1
        heads = [node_head(n) for n in nodes if n["type"] == "attention"]
        return LayoutRef(top_row, max([h for h, port in heads if not port] + [-1]) + 1,
                         any(n.get("pos") is not None for n in nodes),
                         tuple(sorted({node_row(n, top_row) for n in nodes})),
                         tuple(sorted(row_names(nodes, top_row).items())))

    def merge(self, other: "LayoutRef") -> "LayoutRef":
        """The reference of two graphs drawn together (comparison)."""
        top = max(self.top_row, other.top_row)
        rows = {top if r == self.top_row else r for r in self.rows} | {top if r == other.top_row else r for r in other.rows}
        names = dict(other.names)
        names.update(self.names)
        return LayoutRef(top, max(self.n_head_slots, other.n_head_slots), self.per_position or other.per_position,
                         tuple(sorted(rows)), tuple(sorted(names.items())))


@dataclass(frozen=True)
class Layout:
    """Preset node positions and the axis labels drawn beside them."""

    pos: dict
    """Node id → (x, y) in cytoscape model coordinates."""
    rows: tuple
    """(label, y) of each used row, drawn left of the graph."""
    cols: tuple
    """(position, x) of each column of a per-position graph (empty otherwise)."""
    x_min: float
    """Leftmost node x (row labels go left of it)."""
    y_max: float
    """y of the bottom (embedding) row; column labels go below it."""


def compute_layout(nodes: list | tuple, ref: Optional[LayoutRef] = None) -> Layout:
    """Positions for ``nodes`` (dicts with id/type/layer/pos): layers as rows, positions as columns.

    ``ref`` (default: computed from ``nodes``) describes the whole graph: it fixes the rows
    (every layer keeps its height as pruning changes) and the head slots, while columns are
    made only for the positions of ``nodes`` (a pruned view of a long prompt stays readable).
    Deep models (more than :data:`COMPACT_LAYERS` layers) only get the rows in view (plus
    embeddings and logits), else a 30-layer graph is a thin vertical line on screen.
    """
    ref = ref or LayoutRef.of(nodes)
    top_row, n_head_slots, per_pos = ref.top_row, ref.n_head_slots, ref.per_position
    positions = sorted({n["pos"] for n in nodes if n.get("pos") is not None})
    col_of = {p: i for i, p in enumerate(positions)} if per_pos else {}
    cells: dict[tuple[int, int], list[dict]] = {}
    for n in nodes:
        col = col_of.get(n.get("pos"), -1) if per_pos else 0
        cells.setdefault((node_row(n, top_row), col), []).append(n)
    compact = top_row > 2 * COMPACT_LAYERS + 1
    used = tuple(sorted({r for r, _ in cells} | {0, top_row})) if compact else ref.rows
    row_dy = ROW_DY_COMPACT if compact else ROW_DY
    rank = {r: len(used) - 1 - i for i, r in enumerate(used)}  # screen row 0 = top (logits)
    slots: dict[tuple[int, int], list[Optional[int]]] = {}
    n_cols = max(len(positions), 1)
    width = [1] * n_cols
    for key, members in cells.items():
        members.sort(key=_sort_key)
        slots[key] = _slots(members, n_head_slots)
    if per_pos:  # a column only spends width on the slots (heads, MLP) its nodes use
        used_slots: dict[int, set] = {}
        for (row, col), sl in slots.items():
            used_slots.setdefault(col, set()).update(x for x in sl if x is not None)
        packed = {col: {x: i for i, x in enumerate(sorted(xs))} for col, xs in used_slots.items()}
        slots = {(row, col): [None if x is None else packed[col][x] for x in sl] for (row, col), sl in slots.items()}
    for key, sl in slots.items():
        if key[1] >= 0:
            width[key[1]] = max([width[key[1]]] + [x + 1 for x in sl if x is not None])
    # one column (no positions): spread it so the drawing is about as wide as it is tall
    dx = NODE_DX if per_pos else min(max(NODE_DX, 1.4 * len(used) * row_dy / max(width[0], 1)), 3 * NODE_DX)
    starts, x = [], 0.0
    for w in width:
        starts.append(x)
        x += w * dx + COL_GAP
    total = x - COL_GAP
    out: dict[str, tuple[float, float]] = {}
    for (row, col), members in cells.items():
        y = rank.get(row, 0) * row_dy
        if col < 0:  # pos-less nodes of a per-position graph: centred under/over everything
            centre = total / 2
            for i, n in enumerate(members):
                out[n["id"]] = (round(centre + (i - (len(members) - 1) / 2) * dx, 1), y)
            continue
        for n, slot in zip(members, slots[(row, col)]):
            xx = starts[col] + (width[col] * dx / 2 if slot is None else (slot + 0.5) * dx)
            out[n["id"]] = (round(xx, 1), y)
    names = dict(ref.names)
    rows = tuple((names.get(r) or row_label(r, top_row), rank[r] * row_dy) for r in used)
    cols = tuple((p, round(starts[i] + width[i] * dx / 2, 1)) for i, p in enumerate(positions))
    xs = [p[0] for p in out.values()] or [0.0]
    return Layout(out, rows, cols, min(xs), (len(used) - 1) * row_dy)
