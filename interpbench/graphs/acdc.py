"""ACDC (Conmy et al. 2023, "Towards Automated Circuit Discovery"): greedy edge pruning
from the logits backwards with a threshold tau, on exact edge patching.

Algorithm:
1. Start with every edge in the circuit (ablation mask M = 0) and the loss
   ``L(M)``: ``kl`` = mean KL(clean || current) at the last position (ACDC's default), or
   ``task`` = drop of the task metric, ``mean m(clean) - mean m(current)``.
2. Visit receivers in reverse topological order (logits, then the last layer's MLP, v, k,
   q ports, ... down to layer 0). A receiver whose node no longer reaches the logits
   through kept edges loses all its incoming edges without a test (ACDC only expands
   nodes connected to the output).
3. For each incoming edge (latest sender first): ablate it (M[u, r] = 1) and recompute L
   with one forward of :func:`~interpbench.graphs.engine.run_edges`. If
   ``L_new - L_cur < tau`` the edge stays removed (L_cur = L_new); otherwise it is
   restored. The edge's score is ``L_new - L_cur`` at its test (positive = needed).
Cost: one forward per tested edge (plus clean and reference runs), so use it on small
models; passes are counted and recorded.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from ..errors import InterpbenchError
from .eap import EdgeScores, MetricFn, task_metric
from .engine import components, reference_outputs, run_edges, sender_outputs
from .ir import port_heads


def acdc(model, pairs, *, tau: float = 0.01, ablation: str = "resample",
         loss: Union[str, MetricFn] = "kl") -> tuple[EdgeScores, Tensor]:
    """Run ACDC; returns the edge scores and the kept-edge mask ``[senders receivers]``."""
    comp = components(model)
    pairs = pairs.to(model.device)
    clean = sender_outputs(model, comp, pairs.clean)
    ref, ref_passes = reference_outputs(model, comp, pairs.clean, pairs.corrupted, ablation, clean)
    fwd = 1 + ref_passes
    with torch.no_grad():
        clean_logits = model(pairs.clean)
    fwd += 1
    metric = task_metric() if loss == "task" else (loss if callable(loss) else None)
    if metric is None and loss != "kl":
        raise InterpbenchError(f"ACDC loss must be 'kl', 'task' or a metric function (got {loss!r})")
    if metric is not None:
        m_clean = metric(clean_logits, pairs).float().mean()
    lp_clean = clean_logits[:, -1].float().log_softmax(-1)

    @torch.no_grad()
    def L(mask: Tensor) -> float:
        logits = run_edges(model, comp, pairs.clean, mask=mask.to(model.device), ref=ref)
        if metric is None:
            lp = logits[:, -1].float().log_softmax(-1)
            return float((lp_clean.exp() * (lp_clean - lp)).sum(-1).mean())
        return float(m_clean - metric(logits, pairs).float().mean())

    valid = comp.valid
    S, R = valid.shape
    M = torch.zeros(S, R)
    scores = torch.zeros(S, R)
    s_idx = {n: i for i, n in enumerate(comp.senders)}
    cur = L(M)
    fwd += 1
    tested = 0
    for r in reversed(range(R)):
        rec = comp.receivers[r]
        senders_r = [u for u in range(S) if valid[u, r]]
        if rec != "logits":
            nodes = port_heads(rec, comp.n_heads, comp.n_kv)
            alive = any(bool(((M[s_idx[n]] == 0) & valid[s_idx[n]]).any()) for n in nodes)
            if not alive:
                M[senders_r, r] = 1.0
                continue
        for u in reversed(senders_r):
            M[u, r] = 1.0
            new = L(M)
            fwd += 1
            tested += 1
            scores[u, r] = new - cur
            if new - cur < tau:
                cur = new
            else:
                M[u, r] = 0.0
    keep = valid & (M == 0)
    es = EdgeScores(comp, scores, "acdc", ablation, {"forward": fwd, "backward": 0},
                    {"tau": tau, "loss": loss if isinstance(loss, str) else getattr(loss, "__name__", "custom"),
                     "final_loss": cur, "tested": tested})
    return es, keep
