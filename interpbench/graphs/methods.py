"""Registry of circuit-discovery methods (shared by the CLI, recipes and the app) and
:func:`find_circuit`, the one entry point that runs a method and returns a CausalGraph.

1. :data:`METHODS` maps a name to a :class:`MethodInfo` saying which mediators it scores,
   which ablations it supports and whether its scores are approximate (then the verify
   step applies); :func:`register_method` adds one (duplicates are errors).
2. :func:`find_circuit` checks method / mediator / ablation, runs the method, builds the
   graph and marks the circuit (``top_n`` edges, or ACDC's kept edges).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from ..errors import InterpbenchError
from .ir import CausalGraph

MEDIATORS = ("edge", "node", "neuron", "feature")


@dataclass(frozen=True)
class MethodInfo:
    """What a registered method can do."""

    name: str
    """Registry name."""
    mediators: tuple[str, ...]
    """Mediators it can score (``edge``: component edges; ``node``: component nodes)."""
    ablations: tuple[str, ...]
    """Ablations it supports."""
    approximate: bool
    """True for gradient estimates (the verify step re-scores them exactly)."""
    run: Callable
    """``run(model, pairs, ablation=..., steps=..., tau=..., metric_name=...) -> CausalGraph``."""


METHODS: dict[str, MethodInfo] = {}


def register_method(info: MethodInfo) -> MethodInfo:
    if info.name in METHODS and METHODS[info.name] is not info:
        raise InterpbenchError(f"graph method {info.name!r} is already registered; pick another name")
    METHODS[info.name] = info
    return info


def _run_eap(method: str):
    def run(model, pairs, *, ablation, steps, tau, metric_name, per_position=False, ig_refine=0):
        from .eap import edge_scores, task_metric, to_graph

        es = edge_scores(model, pairs, method=method, ablation=ablation, steps=steps, metric=task_metric(metric_name),
                         per_position=per_position, refine=ig_refine)
        return to_graph(es, model_name=model.cfg.name, pairs=pairs, metric_name=metric_name)
    return run


def _run_acdc(model, pairs, *, ablation, steps, tau, metric_name, per_position=False, ig_refine=0):
    from .acdc import acdc
    from .eap import to_graph

    if per_position:
        raise InterpbenchError("acdc builds component graphs only; drop per-position for acdc")
    es, keep = acdc(model, pairs, tau=tau, ablation=ablation, loss="kl")
    g = to_graph(es, model_name=model.cfg.name, pairs=pairs, metric_name="kl")
    kept = {(es.comp.senders[u], es.comp.receivers[r]) for u, r in keep.nonzero().tolist()}
    return g.with_edges(replace(e, in_circuit=(e.source, e.target) in kept) for e in g.edges)


def _run_exact(model, pairs, *, ablation, steps, tau, metric_name, per_position=False, ig_refine=0):
    from dataclasses import replace as _replace

    from .eap import task_metric, to_graph
    from .exact import exact_edge_scores

    if per_position:
        raise InterpbenchError("exact edge patching builds component graphs only; drop per-position for exact")
    es = exact_edge_scores(model, pairs, ablation=ablation, metric=task_metric(metric_name), progress=True)
    es = _replace(es, params={"inert_edges": int(es.params["inert"].sum()),
                              "metric_inert_edges": int(es.params["metric_inert"].sum()),
                              "inert_rtol": es.params["inert_rtol"],
                              "logit_scale": es.params["logit_scale"]})  # JSON-safe summary
    return to_graph(es, model_name=model.cfg.name, pairs=pairs, metric_name=metric_name)


_ABL = ("resample", "mean", "zero")
register_method(MethodInfo("eap", ("edge", "node"), _ABL, True, _run_eap("eap")))
register_method(MethodInfo("eap-ig", ("edge", "node"), _ABL, True, _run_eap("eap-ig")))
register_method(MethodInfo("eap-ig-edges", ("edge", "node"), _ABL, True, _run_eap("eap-ig-edges")))
register_method(MethodInfo("acdc", ("edge",), _ABL, False, _run_acdc))
register_method(MethodInfo("exact", ("edge", "node"), _ABL, False, _run_exact))


def check_method(method: str, mediator: str = "edge", ablation: str = "resample", ig_refine: int = 0) -> MethodInfo:
    """The method's info, or one clear error naming what exists / which methods can do it."""
    if method not in METHODS:
        raise InterpbenchError(f"unknown graph method {method!r}; known: {', '.join(sorted(METHODS))}")
    info = METHODS[method]
    if mediator not in info.mediators:
        can = [m for m, i in sorted(METHODS.items()) if mediator in i.mediators]
        hint = f"methods that can: {', '.join(can)}" if can else \
            f"no registered method scores {mediator!r} mediators yet (mediators available: " \
            f"{', '.join(sorted({x for i in METHODS.values() for x in i.mediators}))})"
        raise InterpbenchError(f"method {method!r} cannot score {mediator!r} mediators; {hint}")
    if ig_refine and method != "eap-ig":
        raise InterpbenchError(f"ig_refine (adaptive IG points) applies to eap-ig only, not {method!r}")
    if ablation not in info.ablations:
        raise InterpbenchError(f"method {method!r} does not support {ablation!r} ablation; use one of "
                               f"{', '.join(info.ablations)}")
    return info


def find_circuit(model, pairs, *, method: str = "eap-ig", ablation: str = "resample", steps: int = 5,
                 tau: float = 0.01, mediator: str = "edge", metric_name: str = "logit_diff",
                 top_n: Optional[int] = None, per_position: bool = False, ig_refine: int = 0) -> CausalGraph:
    """Score the component graph of ``model`` on ``pairs`` and mark a circuit.

    ``top_n`` keeps that many edges (by |score|, dead edges pruned) for scoring methods;
    ACDC marks its own circuit. With ``mediator='node'`` the circuit is the ``top_n``
    nodes (node score = sum of outgoing edge scores). ``ig_refine``: extra adaptive IG
    points for ``eap-ig`` (see :func:`~interpbench.graphs.eap.edge_scores`).
    """
    from .prune import top_n as _top_n, top_nodes

    info = check_method(method, mediator, ablation, ig_refine)
    g = info.run(model, pairs, ablation=ablation, steps=steps, tau=tau, metric_name=metric_name,
                 per_position=per_position, ig_refine=ig_refine)
    if method != "acdc" and top_n is not None:
        g = top_nodes(g, top_n) if mediator == "node" else _top_n(g, top_n, absolute=True, prune=not per_position)
    return g
