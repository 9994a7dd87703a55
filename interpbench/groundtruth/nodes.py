"""Node ids and candidate edges in the graph convention of the causal-graph methods.

Nodes: ``input`` (token + position embeddings), ``a{layer}.h{head}``, ``m{layer}``,
``logits``. Receiver ports: ``a{layer}.h{head}<q>``, ``<k>``, ``<v>``; an MLP and the
logits receive at the node itself. A sender feeds every receiver after it in forward
order (input, then per layer: heads, then the MLP), because the residual stream is a sum.
"""

from __future__ import annotations


def head_id(layer: int, head: int) -> str:
    return f"a{layer}.h{head}"


def node_ids(n_layers: int, n_heads: int, mlp: bool) -> list[str]:
    """All nodes in forward order."""
    out = ["input"]
    for l in range(n_layers):
        out += [head_id(l, h) for h in range(n_heads)] + ([f"m{l}"] if mlp else [])
    return out + ["logits"]


def candidate_edges(n_layers: int, n_heads: int, mlp: bool) -> list[tuple[str, str]]:
    """Every (sender, receiver port) edge of the model, in forward order of the receiver."""
    edges: list[tuple[str, str]] = []
    senders = ["input"]
    for l in range(n_layers):
        heads = [head_id(l, h) for h in range(n_heads)]
        for h in heads:
            for p in "qkv":
                edges += [(u, f"{h}<{p}>") for u in senders]
        senders = senders + heads
        if mlp:
            edges += [(u, f"m{l}") for u in senders]
            senders = senders + [f"m{l}"]
    return edges + [(u, "logits") for u in senders]


def receiver_node(port: str) -> str:
    """``a1.h2<k>`` -> ``a1.h2``; other receivers are nodes already."""
    return port.split("<", 1)[0]
