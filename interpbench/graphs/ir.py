"""CausalGraph: the one graph record every circuit method writes and every viewer reads.

1. Nodes are typed by mediator: ``input`` (embeddings), ``attention`` (one head, with
   receiver ports ``<q>``, ``<k>``, ``<v>``), ``mlp``, ``neuron``, ``feature`` (a
   direction / SAE or transcoder latent), ``error`` (reconstruction error term) and
   ``logits``. Node ids follow the EAP-IG / MIB convention: ``input``, ``a{layer}.h{head}``,
   ``m{layer}``, ``logits``; per-position graphs append ``@{pos}`` (``a3.h2@5``).
2. An edge goes from a node id to a *receiver*: a node id, optionally with a port
   (``a3.h2<q>``, ``a3.h2@5<k>``). Under grouped-query attention the index in a ``<k>`` /
   ``<v>`` port is the **KV-head** index: ``a3.h1<k>`` is the key input of KV head 1,
   shared by query heads ``1*g .. 2*g-1`` (``g = n_heads / n_kv_heads``); see
   :func:`port_heads`.
3. Every edge score says which method and ablation made it (plus an optional exact
   re-score and confidence interval); the graph metadata says which model, task, metric,
   data (hash) and how many forward/backward passes.
4. On disk: JSON with ``schema_version``; :func:`load_graph` rejects an unknown version,
   edges to missing nodes, cycles and non-finite scores with one line.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional

from ..errors import InterpbenchError

SCHEMA_VERSION = 1
NODE_TYPES = ("input", "attention", "mlp", "neuron", "feature", "error", "logits")
ABLATIONS = ("resample", "mean", "zero", "none")
PORTS = ("q", "k", "v")

_RECEIVER_RE = re.compile(r"^(?P<node>[^<>@]+(?:@-?\d+)?)(?:<(?P<port>[qkv])>)?(?:@(?P<pos>-?\d+))?$")
_HEAD_RE = re.compile(r"^a(?P<layer>\d+)\.h(?P<head>\d+)(?:@(?P<pos>-?\d+))?$")
_MLP_RE = re.compile(r"^m(?P<layer>\d+)(?:@(?P<pos>-?\d+))?$")


class GraphError(InterpbenchError):
    """A graph file or graph record that is malformed (bad version, dangling edge, cycle, NaN)."""


def split_receiver(target: str) -> tuple[str, Optional[str]]:
    """``'a3.h2@5<q>'`` -> ``('a3.h2@5', 'q')``; ``'m4'`` -> ``('m4', None)``.

    Also accepts the position after the port (``'a3.h2<q>@5'`` -> ``('a3.h2@5', 'q')``).
    """
    m = _RECEIVER_RE.match(target)
    if m is None:
        raise GraphError(f"bad receiver id {target!r}: use a node id, optionally with <q>, <k> or <v>")
    node = m.group("node")
    if m.group("pos") is not None:
        node = f"{node}@{m.group('pos')}"
    return node, m.group("port")


def receiver_id(node: str, port: Optional[str] = None) -> str:
    """Canonical receiver id: the node id followed by ``<port>`` when given."""
    return node if port is None else f"{node}<{port}>"


def port_heads(receiver: str, n_heads: int, n_kv_heads: int) -> list[str]:
    """Query-head node ids a receiver port feeds (a ``<k>``/``<v>`` port feeds its whole KV group)."""
    node, port = split_receiver(receiver)
    m = _HEAD_RE.match(node)
    if m is None or port in (None, "q"):
        return [node]
    g = n_heads // n_kv_heads
    j, layer = int(m.group("head")), int(m.group("layer"))
    suffix = f"@{m.group('pos')}" if m.group("pos") is not None else ""
    return [f"a{layer}.h{h}{suffix}" for h in range(j * g, (j + 1) * g)]


@dataclass(frozen=True)
class Node:
    """One mediator in the graph."""

    id: str
    """Node id (``input``, ``a3.h2``, ``m4``, ``logits``, ``a3.h2@5``, or an imported id)."""
    type: str
    """Mediator type, one of :data:`NODE_TYPES`."""
    layer: int
    """Block index; -1 for the input, ``n_layers`` for the logits."""
    head: Optional[int] = None
    """Query-head index for attention nodes."""
    pos: Optional[int] = None
    """Token position for per-position graphs (None: all positions together)."""
    index: Optional[int] = None
    """Neuron / feature index (or vocabulary id for imported logit and embedding nodes)."""
    score: Optional[float] = None
    """Node-level score (node attribution or influence), if the method gives one."""
    label: str = ""
    """Free text (feature explanation, token, ...)."""

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, d: dict) -> "Node":
        try:
            return cls(id=str(d["id"]), type=str(d["type"]), layer=int(d["layer"]), head=d.get("head"),
                       pos=d.get("pos"), index=d.get("index"), score=d.get("score"), label=d.get("label", ""))
        except KeyError as e:
            raise GraphError(f"graph node {d!r} lacks field {e.args[0]!r} (each node needs id, type, layer)") from None


@dataclass(frozen=True)
class Edge:
    """One scored edge sender -> receiver."""

    source: str
    """Sender node id."""
    target: str
    """Receiver id: a node id, optionally with a port ``<q>``/``<k>``/``<v>``."""
    score: float
    """Signed score: estimated (or exact) change of the metric when this edge is ablated."""
    method: str
    """Method that produced the score (``eap``, ``eap-ig``, ``acdc``, ``exact``, ...)."""
    ablation: str
    """What the ablated sender output is replaced by: ``resample``, ``mean``, ``zero`` or ``none``."""
    in_circuit: bool = True
    """Whether the edge is kept in the circuit (pruning functions set this)."""
    exact: Optional[float] = None
    """Exact edge-patching score from the verify step, when run."""
    ci: Optional[tuple[float, float]] = None
    """Confidence interval of the score (e.g. bootstrap over prompts), when computed."""

    def to_dict(self) -> dict:
        d = {"source": self.source, "target": self.target, "score": self.score, "method": self.method,
             "ablation": self.ablation}
        if not self.in_circuit:
            d["in_circuit"] = False
        if self.exact is not None:
            d["exact"] = self.exact
        if self.ci is not None:
            d["ci"] = list(self.ci)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Edge":
        try:
            ci = d.get("ci")
            return cls(source=str(d["source"]), target=str(d["target"]), score=float(d["score"]),
                       method=str(d["method"]), ablation=str(d["ablation"]), in_circuit=bool(d.get("in_circuit", True)),
                       exact=None if d.get("exact") is None else float(d["exact"]),
                       ci=None if ci is None else (float(ci[0]), float(ci[1])))
        except KeyError as e:
            raise GraphError(f"graph edge {d!r} lacks field {e.args[0]!r} "
                             f"(each edge needs source, target, score, method, ablation)") from None
        except (TypeError, ValueError):
            raise GraphError(f"graph edge {d.get('source')}->{d.get('target')} has a non-numeric score") from None


@dataclass(frozen=True)
class GraphMeta:
    """Provenance of a graph: which model, data, metric and cost made the scores."""

    model: str = ""
    """Model spec the graph was computed on."""
    task: str = ""
    """Task name (or ``jsonl:PATH``)."""
    metric: str = ""
    """Metric the scores are changes of (e.g. ``logit_diff``)."""
    data_hash: str = ""
    """Hash of the prompt pairs (PromptPairs.data_hash)."""
    method: str = ""
    """Method that scored the edges."""
    ablation: str = ""
    """Ablation the scores refer to."""
    n_prompts: int = 0
    """Number of prompt pairs the scores average over."""
    passes: dict = field(default_factory=dict)
    """Cost: ``{"forward": F, "backward": B}`` model passes (batched over the prompts)."""
    params: dict = field(default_factory=dict)
    """Method settings (steps, threshold, ...)."""
    model_cfg: dict = field(default_factory=dict)
    """n_layers, n_heads, n_kv_heads of the model (for port/head bookkeeping)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GraphMeta":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise GraphError(f"graph metadata has unknown fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass(frozen=True)
class CausalGraph:
    """Nodes, scored edges, provenance and (optionally) the faithfulness measured for it."""

    nodes: tuple[Node, ...]
    """All nodes, in topological (forward) order."""
    edges: tuple[Edge, ...]
    """All scored edges (kept and pruned; see ``Edge.in_circuit``)."""
    meta: GraphMeta = field(default_factory=GraphMeta)
    """Provenance."""
    faithfulness: Optional[dict] = None
    """Faithfulness block written by :mod:`interpbench.graphs.faithfulness` (curves, CPR, CMD)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))

    # -- views ------------------------------------------------------------------------
    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise GraphError(f"no node {node_id!r} in the graph")

    @property
    def circuit_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.in_circuit]

    def with_edges(self, edges: Iterable[Edge]) -> "CausalGraph":
        return replace(self, edges=tuple(edges))

    def with_faithfulness(self, block: Optional[dict]) -> "CausalGraph":
        return replace(self, faithfulness=block)

    def edge_key(self, e: Edge) -> str:
        return f"{e.source}->{e.target}"

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {"schema_version": SCHEMA_VERSION, "meta": self.meta.to_dict(),
             "nodes": [n.to_dict() for n in self.nodes], "edges": [e.to_dict() for e in self.edges]}
        if self.faithfulness is not None:
            d["faithfulness"] = self.faithfulness
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CausalGraph":
        if not isinstance(d, dict):
            raise GraphError("a graph JSON must be an object with schema_version, nodes and edges")
        v = d.get("schema_version")
        if v != SCHEMA_VERSION:
            raise GraphError(f"graph schema_version {v!r} is not supported (this interpbench reads version "
                             f"{SCHEMA_VERSION}); re-export the graph with this version")
        for key in ("nodes", "edges"):
            if not isinstance(d.get(key), list):
                raise GraphError(f"graph JSON lacks a {key!r} list")
        g = cls(nodes=tuple(Node.from_dict(n) for n in d["nodes"]), edges=tuple(Edge.from_dict(e) for e in d["edges"]),
                meta=GraphMeta.from_dict(d.get("meta", {})), faithfulness=d.get("faithfulness"))
        validate(g)
        return g

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    def save(self, path) -> Path:
        """Write the graph JSON atomically (validated first)."""
        from ..paths import atomic_write_text

        validate(self)
        path = Path(path)
        atomic_write_text(path, self.to_json())
        return path


def load_graph(path) -> CausalGraph:
    """Read and validate a graph JSON file."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GraphError(f"no graph file at {path}") from None
    except json.JSONDecodeError as e:
        raise GraphError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
    return CausalGraph.from_dict(d)


def validate(g: CausalGraph) -> None:
    """Raise :class:`GraphError` (one line) on duplicate or mistyped nodes, dangling edges,
    unknown ablations, non-finite scores or cycles."""
    ids: set[str] = set()
    for n in g.nodes:
        if n.id in ids:
            raise GraphError(f"duplicate node id {n.id!r} in the graph")
        if n.type not in NODE_TYPES:
            raise GraphError(f"node {n.id!r} has unknown type {n.type!r}; types: {', '.join(NODE_TYPES)}")
        ids.add(n.id)
    succ: dict[str, set[str]] = defaultdict(set)
    for e in g.edges:
        if e.source not in ids:
            raise GraphError(f"edge {e.source}->{e.target} starts at missing node {e.source!r}")
        tgt, _ = split_receiver(e.target)
        if tgt not in ids:
            raise GraphError(f"edge {e.source}->{e.target} ends at missing node {tgt!r}")
        if not math.isfinite(e.score) or (e.exact is not None and not math.isfinite(e.exact)):
            raise GraphError(f"edge {e.source}->{e.target} has a non-finite score ({e.score}); "
                             f"recompute it (NaN usually means a metric divided by zero)")
        if e.ablation not in ABLATIONS:
            raise GraphError(f"edge {e.source}->{e.target} has unknown ablation {e.ablation!r}; "
                             f"use one of {', '.join(ABLATIONS)}")
        succ[e.source].add(tgt)
    # Kahn's algorithm: anything left over lies on a cycle
    indeg = {i: 0 for i in ids}
    for s, ts in succ.items():
        for t in ts:
            indeg[t] += 1
    queue = deque(i for i, d in indeg.items() if d == 0)
    seen = 0
    while queue:
        i = queue.popleft()
        seen += 1
        for t in succ.get(i, ()):
            indeg[t] -= 1
            if indeg[t] == 0:
                queue.append(t)
    if seen != len(ids):
        on_cycle = sorted(i for i, d in indeg.items() if d > 0)[:5]
        raise GraphError(f"the graph has a cycle through {', '.join(on_cycle)}; causal graphs must be acyclic")


def component_node(node_id: str, n_layers: int) -> Node:
    """Node record for a component id (``input``, ``a3.h2``, ``m4``, ``logits``, with optional ``@pos``)."""
    base, _, pos = node_id.partition("@")
    p = int(pos) if pos else None
    if base == "input":
        return Node(node_id, "input", -1, pos=p)
    if base == "logits":
        return Node(node_id, "logits", n_layers, pos=p)
    m = _HEAD_RE.match(base)
    if m:
        return Node(node_id, "attention", int(m.group("layer")), head=int(m.group("head")), pos=p)
    m = _MLP_RE.match(base)
    if m:
        return Node(node_id, "mlp", int(m.group("layer")), pos=p)
    raise GraphError(f"{node_id!r} is not a component id (input, a{{l}}.h{{h}}, m{{l}}, logits)")
