"""Establish the induction model's true circuit by ablation and write it as JSON (script).

    python -m interpbench.groundtruth.induction_truth [--n 256]

1. Head roles from attention on clean induction prompts: a layer-0 head whose mean
   attention to the previous token is >= 0.5 is a previous-token head (PT); a layer-1
   head whose last position attends >= 0.5 to the token after the earlier copy of the
   current token is an induction head (IH).
2. The circuit hypothesis (K-composition, Elhage et al. 2021; Olsson et al. 2022):
   ``input -> PT<q>``, ``input -> PT<k>`` (positions), ``input -> PT<v>`` (the previous
   token), ``PT -> IH<k>``, ``input -> IH<q>`` (current token), ``input -> IH<v>`` (token to
   copy) and the direct paths ``IH -> logits``.
3. Exact edge ablation (:mod:`interpbench.groundtruth.edge_ablation`) under zero, mean and
   resample ablation on the metric ``logit[answer] - mean(logits)`` at the last position:
   the effect of every single edge, of every head, of the circuit alone (everything
   else ablated: faithfulness), of its complement alone, and of each circuit edge
   removed from the circuit-only model.
4. The hypothesis is accepted only if the circuit alone recovers >= 80 % of the clean
   metric under mean and resample ablation and removing its edges together destroys
   >= 80 % of it; then ``weights/induction_truth.json`` is written with the edges, the
   roles and every measured number (per-ablation edge effects included, so a method can
   also be compared with the edges that matter under one ablation). Edges outside the
   hypothesis whose single ablation moves the metric by >= 2 % under some ablation are
   listed as ``notable_non_circuit_edges`` (e.g. small negative direct paths of the
   previous-token heads), not silently dropped. ``edges_by_ablation[kind]`` keeps the true
   edges that ablation can see at all (effect >= 0.2 % alone or within the circuit): under
   resample ablation the positional q/k inputs of the previous-token heads and the query
   of the induction heads carry the same values in clean and corrupted prompts, so no
   method that patches from the corrupted run can find them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from .edge_ablation import ablated_values, all_edges, edge_forward, head_id
from .induction_data import induction_pairs

WEIGHTS_DIR = Path(__file__).parent / "weights"
SCHEMA_VERSION = 1
ABLATIONS = ("zero", "mean", "resample")
IDENTIFIABLE = 0.002
"""A true edge whose ablation moves the metric by less than this fraction under some ablation,
alone and within the circuit, carries no information that differs under that ablation."""


def centered_answer_logit(logits: Tensor, answer: Tensor) -> Tensor:
    """``logit[answer] - mean(logits)`` at the last position, ``[batch]``."""
    last = logits[:, -1]
    return last.gather(-1, answer[:, None])[:, 0] - last.mean(-1)


@torch.no_grad()
def head_roles(hooked, pairs, threshold: float = 0.5) -> dict:
    """Previous-token and induction scores per head, and the heads above ``threshold``."""
    cfg = hooked.cfg
    _, cache = hooked.run_with_cache(pairs.clean, names="blocks.*.attn.hook_pattern")
    prev = cache["blocks.0.attn.hook_pattern"].diagonal(offset=-1, dim1=2, dim2=3).mean((0, 2))  # [head]
    # the answer's earlier position: the token after the earlier copy of the last token
    src = (pairs.clean[:, :-1] == pairs.answer[:, None]).float().argmax(1)  # [batch]
    last = cache[f"blocks.{cfg.n_layers - 1}.attn.hook_pattern"][:, :, -1]  # [batch head k_pos]
    ind = last[torch.arange(pairs.n), :, src].mean(0)  # [head]
    return {"prev_token_score": {head_id(0, h): round(float(prev[h]), 4) for h in range(cfg.n_heads)},
            "induction_score": {head_id(cfg.n_layers - 1, h): round(float(ind[h]), 4) for h in range(cfg.n_heads)},
            "prev_token_heads": [head_id(0, h) for h in range(cfg.n_heads) if prev[h] >= threshold],
            "induction_heads": [head_id(cfg.n_layers - 1, h) for h in range(cfg.n_heads) if ind[h] >= threshold]}


def hypothesis(pt: list[str], ih: list[str]) -> list[tuple[str, str]]:
    edges = [("input", f"{h}<{p}>") for h in pt for p in "qkv"]
    edges += [(a, f"{b}<k>") for b in ih for a in pt]
    edges += [("input", f"{h}<{p}>") for h in ih for p in "qv"]
    return edges + [(h, "logits") for h in ih]


@torch.no_grad()
def measure(model, pairs, truth: list[tuple[str, str]]) -> dict:
    cfg = model.cfg
    edges = all_edges(cfg.n_layers, cfg.n_heads)
    rest = [e for e in edges if e not in set(truth)]
    metric = lambda off, ab: float(centered_answer_logit(edge_forward(model, pairs.clean, ab, off), pairs.answer).mean())  # noqa: E731
    clean = metric([], {})
    out = {"clean_metric": round(clean, 4)}
    for kind in ABLATIONS:
        ab = ablated_values(model, pairs.clean, pairs.corrupted, kind)
        none = metric(edges, ab)
        span = clean - none
        frac = lambda v: round((v - none) / span, 4)  # noqa: E731  fraction of the clean metric kept
        heads = {head_id(l, h): round(1 - frac(metric([e for e in edges if e[0] == head_id(l, h)], ab)), 4)
                 for l in range(cfg.n_layers) for h in range(cfg.n_heads)}
        out[kind] = {
            "all_ablated_metric": round(none, 4),
            "circuit_only_recovered": frac(metric(rest, ab)),
            "complement_only_recovered": frac(metric(truth, ab)),
            "edge_effect": {f"{u} -> {v}": round(1 - frac(metric([(u, v)], ab)), 4) for u, v in edges},
            "head_effect": heads,
            "in_circuit_edge_effect": {f"{u} -> {v}": round(frac(metric(rest, ab)) - frac(metric(rest + [(u, v)], ab)), 4)
                                       for u, v in truth},
        }
    return out


def build(n: int = 256, seed: int = 1, out: Path = WEIGHTS_DIR) -> dict:
    from ..paths import atomic_write_text
    from .loader import load_induction_module

    module, hooked = load_induction_module(out)
    pairs = induction_pairs(n, seed=seed, d_vocab=module.cfg.d_vocab)
    roles = head_roles(hooked, pairs)
    truth = hypothesis(roles["prev_token_heads"], roles["induction_heads"])
    scores = measure(module, pairs, truth)
    ok = all(scores[k]["circuit_only_recovered"] >= 0.8 and scores[k]["complement_only_recovered"] <= 0.2
             for k in ("mean", "resample"))
    if not ok:
        raise SystemExit(f"circuit hypothesis rejected: {json.dumps({k: scores[k]['circuit_only_recovered'] for k in ABLATIONS})}")
    cfg = module.cfg
    notable = sorted({e for k in ABLATIONS for e, v in scores[k]["edge_effect"].items()
                      if abs(v) >= 0.02 and tuple(e.split(" -> ")) not in set(truth)})
    identifiable = {k: [[u, v] for u, v in truth
                        if max(abs(scores[k]["edge_effect"][f"{u} -> {v}"]),
                               abs(scores[k]["in_circuit_edge_effect"][f"{u} -> {v}"])) >= IDENTIFIABLE]
                    for k in ABLATIONS}
    nodes = ["input"] + [head_id(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)] + ["logits"]
    rec = {"schema_version": SCHEMA_VERSION, "model": "induction", "nodes": nodes,
           "edges": [[u, v] for u, v in truth], "n_edges_total": len(all_edges(cfg.n_layers, cfg.n_heads)),
           "roles": roles, "notable_non_circuit_edges": notable,
           "edges_by_ablation": identifiable, "metric": "logit[answer] - mean(logits) at the last position",
           "data": {"task": "induction_pairs", "n": n, "seed": seed}, "ablation": scores}
    atomic_write_text(out / "induction_truth.json", json.dumps(rec, indent=1) + "\n")
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rec = build(args.n)
    summary = {k: {m: rec["ablation"][k][m] for m in ("circuit_only_recovered", "complement_only_recovered")}
               for k in ABLATIONS}
    print(json.dumps({"edges": len(rec["edges"]), "of": rec["n_edges_total"], "roles": rec["roles"], **summary}, indent=1))


if __name__ == "__main__":
    main()
