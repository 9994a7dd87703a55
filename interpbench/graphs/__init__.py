"""Causal graphs: the CausalGraph IR, EAP / EAP-IG / ACDC, pruning, faithfulness, exports.

Importing this package is cheap; the torch-heavy modules load on first use.

>>> from interpbench.graphs import find_circuit, mib_block
>>> g = find_circuit(model, pairs, method="eap-ig", ablation="resample", steps=5, top_n=200)
>>> g = g.with_faithfulness(mib_block(model, pairs, g)); g.save("graph.json")
"""

from __future__ import annotations

import importlib

from .ir import (ABLATIONS, NODE_TYPES, SCHEMA_VERSION, CausalGraph, Edge, GraphError, GraphMeta, Node,
                 load_graph, port_heads, receiver_id, split_receiver, validate)

_LAZY = {
    "find_circuit": "methods", "METHODS": "methods", "check_method": "methods", "register_method": "methods",
    "edge_scores": "eap", "to_graph": "eap", "task_metric": "eap", "EdgeScores": "eap",
    "acdc": "acdc", "verify": "verify",
    "exact_edge_scores": "exact", "auc_bound": "exact",
    "components": "engine", "run_edges": "engine", "sender_outputs": "engine", "Components": "engine",
    "mib_block": "faithfulness", "faithfulness_curve": "faithfulness", "ioi_style": "faithfulness",
    "CircuitEvaluator": "faithfulness", "ablation_mask": "faithfulness",
    "top_n": "prune", "threshold": "prune", "prune_dead": "prune", "top_nodes": "prune",
    "cumulative_influence": "prune", "node_scores": "prune",
    "to_graphml": "export", "to_dot": "export", "to_circuit_tracer": "export", "from_circuit_tracer": "export",
    "load_circuit_tracer": "export", "write_exports": "export",
}

__all__ = ["ABLATIONS", "NODE_TYPES", "SCHEMA_VERSION", "CausalGraph", "Edge", "GraphError", "GraphMeta", "Node",
           "load_graph", "port_heads", "receiver_id", "split_receiver", "validate", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'interpbench.graphs' has no attribute {name!r}")
