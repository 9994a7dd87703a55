"""Edge engine, EAP / EAP-IG, ACDC, verify, faithfulness and the CLI on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from interpbench.errors import InterpbenchError
from interpbench.graphs import find_circuit, load_graph
from interpbench.graphs.acdc import acdc
from interpbench.graphs.eap import edge_scores, task_metric, to_graph
from interpbench.graphs.engine import components, run_edges, sender_outputs
from interpbench.graphs.faithfulness import CircuitEvaluator, ablation_mask, areas, faithfulness_curve, ioi_style
from interpbench.graphs.methods import check_method
from interpbench.graphs.prune import top_n
from interpbench.graphs.verify import spearman, verify
from interpbench.tasks.base import PromptPairs


def make_pairs(n: int = 3, length: int = 7, seed: int = 0) -> PromptPairs:
    g = torch.Generator().manual_seed(seed)
    ids = lambda *s: torch.randint(100, 2000, s, generator=g)  # noqa: E731
    return PromptPairs("random", ids(n, length), ids(n, length), ids(n), ids(n))


def reference(model, comp, pairs, ablation):
    ref = sender_outputs(model, comp, pairs.corrupted)
    return {"resample": ref, "mean": ref.mean(0, keepdim=True), "zero": torch.zeros_like(ref[:1])}[ablation]


def test_components_gqa_ports(tiny_llama):
    comp = components(tiny_llama)  # 2 layers, 4 query heads, 2 KV heads
    assert comp.senders[:6] == ("input", "a0.h0", "a0.h1", "a0.h2", "a0.h3", "m0")
    assert comp.receivers[:9] == ("a0.h0<q>", "a0.h1<q>", "a0.h2<q>", "a0.h3<q>", "a0.h0<k>", "a0.h1<k>",
                                  "a0.h0<v>", "a0.h1<v>", "m0")
    assert "a0.h2<k>" not in comp.receivers and comp.receivers[-1] == "logits"
    # edges: layer-0 ports see input (8 ports + mlp sees 5); layer-1 ports see 6; logits see 11
    assert comp.n_edges == 8 * 1 + 1 * 5 + 8 * 6 + 1 * 10 + 11


def test_edge_patching_none_is_clean_all_is_corrupted(tiny):
    comp = components(tiny)
    pairs = make_pairs()
    with torch.no_grad():
        clean, corrupted = tiny(pairs.clean), tiny(pairs.corrupted)
        ref = sender_outputs(tiny, comp, pairs.corrupted)
        none = run_edges(tiny, comp, pairs.clean)
        zero_mask = run_edges(tiny, comp, pairs.clean, mask=torch.zeros(comp.valid.shape), ref=ref)
        every = run_edges(tiny, comp, pairs.clean, mask=comp.valid.float(), ref=ref)
        every_pos = run_edges(tiny, comp, pairs.clean, mask=comp.valid.float().expand(7, -1, -1), ref=ref)
    assert (clean - corrupted).abs().max() > 0.1
    torch.testing.assert_close(none, clean, atol=1e-5, rtol=0)
    torch.testing.assert_close(zero_mask, clean, atol=1e-5, rtol=0)
    torch.testing.assert_close(every, corrupted, atol=1e-5, rtol=0)
    torch.testing.assert_close(every_pos, corrupted, atol=1e-5, rtol=0)


@pytest.mark.parametrize("ablation", ["resample", "mean", "zero"])
def test_eap_equals_naive_per_edge_autograd(tiny, ablation):
    """Fast path (one backward, receiver gradients x sender deltas) == one backward per edge."""
    comp = components(tiny)
    pairs = make_pairs()
    es = edge_scores(tiny, pairs, method="eap", ablation=ablation)
    ref = reference(tiny, comp, pairs, ablation)
    metric = task_metric()
    edges = comp.edge_list()
    for u, r in edges[:: max(1, len(edges) // 5)] + [edges[-1]]:
        eps = torch.zeros(comp.valid.shape, requires_grad=True)
        logits = run_edges(tiny, comp, pairs.clean, mask=eps * 1.0, ref=ref)
        (g,) = torch.autograd.grad(metric(logits, pairs).mean(), eps)
        assert abs(-g[u, r].item() - es.scores[u, r].item()) < 1e-6, (comp.senders[u], comp.receivers[r])
    assert float(es.scores[~comp.valid].abs().sum()) == 0.0
    assert es.passes == {"forward": 2 if ablation == "zero" else 3, "backward": 1}


def test_eap_is_the_first_order_effect_of_exact_patching(tiny_llama_path):
    """Finite differences of exact edge patching (float64) match the EAP scores."""
    import interpbench

    m = interpbench.load_model(str(tiny_llama_path), device="cpu", dtype="float64")
    comp = components(m)
    pairs = make_pairs()
    es = edge_scores(m, pairs, method="eap", ablation="resample")
    ref = sender_outputs(m, comp, pairs.corrupted)
    metric = task_metric()
    top = es.scores.abs().flatten().argsort(descending=True)[:4].tolist()
    t = 1e-3  # central differences; RMSNorm and softmax still run in float32 inside the float64 model
    with torch.no_grad():
        for flat in top:
            u, r = divmod(flat, comp.valid.shape[1])
            mask = torch.zeros(comp.valid.shape, dtype=torch.float64)
            mask[u, r] = t
            lo = metric(run_edges(m, comp, pairs.clean, mask=-mask, ref=ref), pairs).mean()
            hi = metric(run_edges(m, comp, pairs.clean, mask=mask, ref=ref), pairs).mean()
            fd = (lo - hi) / (2 * t)
            assert abs(fd.item() - es.scores[u, r].item()) < 1e-3 * max(0.05, abs(fd.item()))


def test_eap_ig_pass_counts_and_per_position(tiny_gpt2):
    pairs = make_pairs()
    es = edge_scores(tiny_gpt2, pairs, method="eap-ig", steps=3)
    assert es.passes == {"forward": 3 + 2, "backward": 3} and es.params["steps"] == 3
    assert set(es.params) == {"steps", "completeness"}
    pos = edge_scores(tiny_gpt2, pairs, method="eap-ig", steps=3, per_position=True)
    assert pos.scores.shape[0] == 7
    torch.testing.assert_close(pos.scores.sum(0), es.scores, atol=1e-6, rtol=1e-5)
    g = to_graph(pos, pairs=pairs)
    assert any(e.source == "a0.h1@3" and e.target == "a1.h2@3<k>" for e in g.edges)
    mask = ablation_mask(g, pos.comp, n_pos=7)
    assert mask.shape == (7, *pos.comp.valid.shape) and float(mask.sum()) == 0.0


def test_eap_ig_one_step_is_gradient_at_the_reference_input(tiny_llama):
    """steps=1 evaluates the gradient with the input node at its corrupted value only."""
    comp = components(tiny_llama)
    pairs = make_pairs()
    es = edge_scores(tiny_llama, pairs, method="eap-ig", steps=1)
    clean = sender_outputs(tiny_llama, comp, pairs.clean)
    ref = sender_outputs(tiny_llama, comp, pairs.corrupted)
    probes = torch.zeros(*pairs.clean.shape, len(comp.receivers), tiny_llama.cfg.d_model, requires_grad=True)
    logits = run_edges(tiny_llama, comp, pairs.clean, probes=probes, input_value=ref[:, :, 0])
    (g,) = torch.autograd.grad(task_metric()(logits, pairs).mean(), probes)
    expect = torch.einsum("bpsd,bprd->sr", clean - ref, g) * comp.valid
    torch.testing.assert_close(es.scores, expect, atol=1e-6, rtol=1e-5)


def test_graph_from_scores_and_json_round_trip(tiny_llama, tmp_path):
    pairs = make_pairs()
    g = find_circuit(tiny_llama, pairs, method="eap", ablation="zero", top_n=10)
    assert len(g.edges) == components(tiny_llama).n_edges
    assert g.meta.passes == {"forward": 2, "backward": 1} and g.meta.data_hash == pairs.data_hash()
    assert 0 < len(g.circuit_edges) <= 10
    back = load_graph(g.save(tmp_path / "graph.json"))
    assert back == g


def test_faithfulness_curve_endpoints_and_areas(tiny_llama):
    pairs = make_pairs(n=4)
    g = find_circuit(tiny_llama, pairs, method="eap", ablation="resample")
    ev = CircuitEvaluator(tiny_llama, pairs, "resample")
    curve = faithfulness_curve(ev, g, absolute=True, percentages=(0.0, 0.5, 1.0))
    assert curve["edges_kept"][-1] == len(g.edges)
    assert curve["faithfulness"][0] == pytest.approx(0.0, abs=1e-5)
    assert curve["faithfulness"][-1] == pytest.approx(1.0, abs=1e-4)
    m_clean = task_metric()(tiny_llama(pairs.clean), pairs).mean().item()
    m_corr = task_metric()(tiny_llama(pairs.corrupted), pairs).mean().item()
    assert curve["m_full"] == pytest.approx(m_clean, abs=1e-5) and curve["m_empty"] == pytest.approx(m_corr, abs=1e-4)
    cpr, cmd = areas((0.0, 0.5, 1.0), [0.0, 0.5, 1.0])
    assert cpr == pytest.approx(0.5) and cmd == pytest.approx(0.5)
    assert areas((0.001, 1.0), [1.0, 1.0]) == pytest.approx((0.999, 0.0))


def test_ioi_style_on_full_circuit(tiny_gpt2):
    pairs = make_pairs(n=4)
    g = find_circuit(tiny_gpt2, pairs, method="eap", ablation="mean")
    res = ioi_style(tiny_gpt2, pairs, g, ablation="mean", n_subsets=2, max_nodes=2)
    assert res["F_C"] == pytest.approx(res["F_M"], abs=1e-5)  # the full graph is its own circuit
    assert res["n_nodes"] == len(components(tiny_gpt2).senders) - 1
    assert all(x["gap"] == pytest.approx(0.0, abs=1e-5) for x in res["incompleteness"])
    assert len(res["minimality"]) == 2


def test_acdc_threshold_extremes_and_final_loss(tiny_llama):
    pairs = make_pairs(n=2, length=5)
    comp = components(tiny_llama)
    # everything removable: the logits' edges all go, then no node is alive and nothing else is tested
    g = find_circuit(tiny_llama, pairs, method="acdc", tau=1e9)
    assert len(g.circuit_edges) == 0 and len(g.edges) == comp.n_edges and g.meta.method == "acdc"
    n_logit_edges = int(comp.valid[:, -1].sum())
    assert g.meta.params["tested"] == n_logit_edges
    assert g.meta.passes["forward"] == 4 + n_logit_edges  # clean, corrupted, clean logits, L(no edge ablated), tests
    es_mid, keep_mid = acdc(tiny_llama, pairs, tau=1e-3)
    assert es_mid.passes["forward"] == 4 + es_mid.params["tested"] and es_mid.params["tested"] <= comp.n_edges
    assert 0 < int(keep_mid.sum()) < comp.n_edges
    # the recorded final loss is the loss of the kept circuit, recomputed here independently
    ref = sender_outputs(tiny_llama, comp, pairs.corrupted)
    with torch.no_grad():
        lp_c = tiny_llama(pairs.clean)[:, -1].log_softmax(-1)
        lp = run_edges(tiny_llama, comp, pairs.clean, mask=(comp.valid & ~keep_mid).float(), ref=ref)[:, -1].log_softmax(-1)
    kl = float((lp_c.exp() * (lp_c - lp)).sum(-1).mean())
    assert kl == pytest.approx(es_mid.params["final_loss"], abs=1e-6)


def test_verify_matches_direct_exact_patching(tiny_llama):
    pairs = make_pairs()
    g = find_circuit(tiny_llama, pairs, method="eap-ig", steps=2, ablation="resample")
    g2, rep = verify(tiny_llama, pairs, g, k=5)
    assert rep["k"] == 5 and rep["forward_passes"] == 3 + 5  # clean senders, reference, clean metric, one per edge
    comp = components(tiny_llama)
    ref = sender_outputs(tiny_llama, comp, pairs.corrupted)
    e = next(e for e in g2.edges if e.exact is not None)
    mask = torch.zeros(comp.valid.shape)
    mask[comp.senders.index(e.source), comp.receivers.index(e.target)] = 1.0
    with torch.no_grad():
        direct = (task_metric()(tiny_llama(pairs.clean), pairs).mean()
                  - task_metric()(run_edges(tiny_llama, comp, pairs.clean, mask=mask, ref=ref), pairs).mean())
    assert e.exact == pytest.approx(float(direct), abs=1e-6)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_method_and_mediator_errors(tiny_llama):
    with pytest.raises(InterpbenchError, match="cannot score 'neuron' mediators; no registered method"):
        check_method("eap", "neuron")
    with pytest.raises(InterpbenchError, match="method 'acdc' cannot score 'node' mediators; methods that can: eap, eap-ig, eap-ig-edges, exact"):
        check_method("acdc", "node")
    with pytest.raises(InterpbenchError, match="unknown graph method 'magic'; known: acdc, eap, eap-ig, eap-ig-edges, exact"):
        check_method("magic")
    with pytest.raises(InterpbenchError, match="ig_refine .* applies to eap-ig only, not 'acdc'"):
        check_method("acdc", "edge", "resample", ig_refine=5)
    with pytest.raises(InterpbenchError, match="unknown ablation 'blur'"):
        edge_scores(tiny_llama, make_pairs(), method="eap", ablation="blur")


def test_cli_circuit_writes_run_dir(tiny_llama_path, tmp_path):
    from typer.testing import CliRunner

    import interpbench.cli as cli

    cli._register_areas()
    pairs_file = tmp_path / "pairs.jsonl"
    rows = [{"clean": "When Mary and John went to the store, John gave a drink to",
             "corrupted": "When Mary and John went to the store, Paul gave a drink to",
             "answer": " Mary", "wrong": " John"}] * 2
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    res = CliRunner().invoke(cli.app, ["circuit", "--model", str(tiny_llama_path), "--pairs", str(pairs_file),
                                       "--method", "eap-ig", "--steps", "2", "--top-n", "20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(out)
    assert "passes: 4 forward, 2 backward" in res.output
    g = load_graph(out / "graph.json")
    f = g.faithfulness["ablations"]["resample"]
    assert set(f) >= {"cpr", "cmd", "curve_signed", "curve_abs"} and len(f["curve_abs"]["faithfulness"]) == 10
    assert (out / "faithfulness.html").stat().st_size > 1000
    assert json.loads((out / "result.json").read_text())["kind"] == "circuit"


def test_eap_ig_edges_is_complete(tiny_gpt2):
    """Edge-path IG scores sum to m(clean) - m(every edge ablated) (up to the quadrature error)."""
    pairs = make_pairs()
    comp = components(tiny_gpt2)
    es = edge_scores(tiny_gpt2, pairs, method="eap-ig-edges", ablation="resample", steps=8)
    assert es.passes == {"forward": 2 + 8, "backward": 8}
    ref = sender_outputs(tiny_gpt2, comp, pairs.corrupted)
    metric = task_metric()
    with torch.no_grad():
        gap = (metric(tiny_gpt2(pairs.clean), pairs).mean()
               - metric(run_edges(tiny_gpt2, comp, pairs.clean, mask=comp.valid.float(), ref=ref), pairs).mean())
    assert abs(float(gap)) > 0.05
    assert float(es.scores.sum()) == pytest.approx(float(gap), rel=2e-3)  # midpoint rule; converges with steps


def test_seed_variance_is_zero_for_identical_prompts_and_cli_sweep(tiny_llama, tiny_llama_path, tmp_path):
    from typer.testing import CliRunner

    import interpbench.cli as cli
    from interpbench.graphs.faithfulness import seed_variance

    pairs = make_pairs()
    find = lambda ps: top_n(to_graph(edge_scores(tiny_llama, ps, method="eap", ablation="resample"), pairs=ps),  # noqa: E731
                            15, absolute=True, prune=True)
    sv = seed_variance(tiny_llama, lambda sd: pairs, find, [0, 1, 2], ablation="resample")
    assert [r["seed"] for r in sv["per_seed"]] == [0, 1, 2]
    assert sv["cpr"]["std"] == 0.0 and sv["cmd"]["std"] == 0.0 and sv["kept_edges_jaccard"] == 1.0

    cli._register_areas()
    names = [("Mary", "John", "Paul"), ("Anna", "Tom", "Kate"), ("Alice", "Bob", "Carl"), ("Sam", "Jack", "Eric")]
    rows = [{"clean": f"When {a} and {b} went to the store, {b} gave a drink to",
             "corrupted": f"When {a} and {b} went to the store, {c} gave a drink to",
             "answer": f" {a}", "wrong": f" {b}"} for a, b, c in names]
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    res = CliRunner().invoke(cli.app, ["circuit", "--model", str(tiny_llama_path), "--pairs", str(pairs_file), "--n", "2",
                                       "--method", "eap", "--top-n", "20", "--seed-sweep", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "seed variance over 3 prompt seeds (resample)" in res.output
    block = load_graph(out / "graph.json").faithfulness["seed_variance"]
    assert block["seeds"] == [0, 1, 2] and len(block["per_seed"]) == 3
    assert block["per_seed"][0]["cpr"] == pytest.approx(
        load_graph(out / "graph.json").faithfulness["ablations"]["resample"]["cpr"], abs=1e-9)


def test_exact_method_equals_verify_and_refine_keeps_a_complete_grid(tiny_llama):
    """``method='exact'`` scores every edge by one edge-patched forward: equal to the verify step's
    exact re-scores; EAP-IG's completeness record is the Riemann sum of dm/dalpha, and
    ``refine`` adds points only where the grid misses m(clean) - m(ref)."""
    pairs = make_pairs()
    ex = find_circuit(tiny_llama, pairs, method="exact", ablation="resample")
    assert ex.meta.method == "exact" and ex.meta.passes["forward"] == 3 + len(ex.edges)
    ig = find_circuit(tiny_llama, pairs, method="eap-ig", steps=2, ablation="resample")
    _, rep = verify(tiny_llama, pairs, ig, k=5)
    by_key = {ex.edge_key(e): e.score for e in ex.edges}
    for row in rep["edges"]:
        assert by_key[row["edge"]] == pytest.approx(row["exact"], abs=1e-5)
    c = ig.meta.params["completeness"]
    assert c["points"] == 2 and c["refined_points"] == 0 and c["rel_error"] >= 0
    es0 = edge_scores(tiny_llama, pairs, method="eap-ig", steps=2)
    es1 = edge_scores(tiny_llama, pairs, method="eap-ig", steps=2, refine=6, refine_tol=1e-9)
    c1 = es1.params["completeness"]
    assert c1["refined_points"] == 6 and c1["points"] == 8 and len(c1["alphas"]) == 8
    assert c1["rel_error"] <= c["rel_error"] + 1e-6
    assert es1.passes == {"forward": es0.passes["forward"] + 6, "backward": es0.passes["backward"] + 6}
    es2 = edge_scores(tiny_llama, pairs, method="eap-ig", steps=2, refine=6, refine_tol=1e9)  # already within tol
    assert es2.params["completeness"]["refined_points"] == 0
    torch.testing.assert_close(es2.scores, es0.scores, atol=1e-5, rtol=1e-4)
    with pytest.raises(InterpbenchError, match="applies to eap-ig only"):
        edge_scores(tiny_llama, pairs, method="eap", refine=3)
