"""Causal-graph methods on the ground-truth models (interpbench.groundtruth): exact edge
patching on non-HF modules and EAP-IG recovering the known Tracr circuit."""

from __future__ import annotations

import pytest
import torch

gt_loader = pytest.importorskip("interpbench.groundtruth.loader")


def _load(name):
    try:
        return gt_loader.load(name)
    except Exception as exc:  # noqa: BLE001 - artifacts are built by the ground-truth suite
        pytest.skip(f"ground-truth model {name} unavailable: {exc}")


@pytest.mark.parametrize("name", ["induction", "tracr-proportion"])
def test_edge_patching_exact_on_groundtruth_models(name):
    from interpbench.graphs.engine import components, run_edges, sender_outputs

    gt = _load(name)
    task = gt.make_task(n=4, seed=0)
    comp = components(gt.model)
    assert {(u, r) for u in comp.senders for r in comp.receivers if comp.valid[comp.senders.index(u),
                                                                                comp.receivers.index(r)]} \
        == set(gt.edges)
    p = task.pairs
    with torch.no_grad():
        ref = sender_outputs(gt.model, comp, p.corrupted)
        torch.testing.assert_close(run_edges(gt.model, comp, p.clean), gt.model(p.clean), atol=1e-5, rtol=0)
        every = run_edges(gt.model, comp, p.clean, mask=comp.valid.float(), ref=ref)
        torch.testing.assert_close(every, gt.model(p.corrupted), atol=1e-5, rtol=0)


@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_eap_ig_recovers_tracr_proportion(ablation):
    from sklearn.metrics import roc_auc_score

    from interpbench.graphs.eap import edge_scores

    gt = _load("tracr-proportion")
    task = gt.make_task(n=8, seed=0)
    es = edge_scores(gt.model, task.pairs, method="eap-ig", ablation=ablation, steps=5,
                     metric=lambda logits, pairs: task.metric(logits))
    s_idx = {s: i for i, s in enumerate(es.comp.senders)}
    r_idx = {r: i for i, r in enumerate(es.comp.receivers)}
    truth = set(gt.truth_for(ablation))
    scores = [abs(float(es.scores[s_idx[u], r_idx[r]])) for u, r in gt.edges]
    labels = [int(e in truth) for e in gt.edges]
    assert roc_auc_score(labels, scores) >= 0.95
