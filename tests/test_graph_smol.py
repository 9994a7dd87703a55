"""Causal graphs on the bundled SmolLM2-135M (GQA 9/3): IOI with EAP-IG, edge patching exactness."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def test_smol_edge_patching_and_eap_ig_on_ioi(smol):
    from interpbench.graphs.eap import edge_scores, to_graph
    from interpbench.graphs.engine import components, run_edges, sender_outputs
    from interpbench.tasks import make_task

    comp = components(smol)
    # 30 layers x (9 q + 3 k + 3 v ports + 1 MLP) + logits; k/v ports are per KV head
    assert len(comp.senders) == 1 + 30 * 10 and len(comp.receivers) == 30 * 16 + 1
    assert comp.n_edges == sum(15 * (1 + 10 * l) + (10 + 10 * l) for l in range(30)) + 301 == 70651
    pairs = make_task("ioi", smol, n=4, seed=0)
    with torch.no_grad():
        ref = sender_outputs(smol, comp, pairs.corrupted)
        every = run_edges(smol, comp, pairs.clean, mask=comp.valid.float(), ref=ref)[:, -1]
        corrupted = smol(pairs.corrupted)[:, -1]
    assert (every - corrupted).abs().max() < 1e-3 * corrupted.abs().max()
    es = edge_scores(smol, pairs, method="eap-ig", steps=2)
    assert es.passes == {"forward": 2 + 2, "backward": 2}  # steps + 2 forward, steps backward
    assert torch.isfinite(es.scores).all() and es.scores.abs().max() > 0
    g = to_graph(es, model_name="smollm2-135m", pairs=pairs)
    assert len(g.edges) == 70651 and g.meta.passes == es.passes
    assert any(e.target == "a10.h2<k>" for e in g.edges) and not any(e.target == "a10.h3<k>" for e in g.edges)
