"""EAP-IG on IOI with the bundled SmolLM2-135M: pass count, wall time, faithfulness curve.

Prints the figures and the ratio against its peers measured in the same run: EAP (one
gradient) and exact edge patching (one forward per edge, timed on a sample of edges and
extrapolated to all edges). No pass/fail.

    python bench/graph_ioi_smol.py [--n 8] [--steps 5] [--verify 20] [--ablations resample]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--verify", type=int, default=20)
    ap.add_argument("--ablations", default="resample")
    ap.add_argument("--out", default=None, help="write the graph JSON here")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import interpbench
    from interpbench.graphs.eap import edge_scores, to_graph
    from interpbench.graphs.faithfulness import mib_block
    from interpbench.graphs.prune import top_n
    from interpbench.graphs.verify import verify
    from interpbench.tasks import make_task

    m = interpbench.load_model(args.model, device="cpu")
    pairs = make_task("ioi", m, n=args.n, seed=0)
    print(f"model {args.model}: {m.cfg.n_layers} layers, {m.cfg.n_heads}/{m.cfg.n_kv_heads} heads; "
          f"IOI n={pairs.n}, seq_len={pairs.clean.shape[1]}")

    t = time.perf_counter()
    es_ig = edge_scores(m, pairs, method="eap-ig", steps=args.steps)
    t_ig = time.perf_counter() - t
    t = time.perf_counter()
    es_eap = edge_scores(m, pairs, method="eap")
    t_eap = time.perf_counter() - t
    n_edges = es_ig.comp.n_edges
    print(f"edges: {n_edges} ({len(es_ig.comp.senders)} senders x {len(es_ig.comp.receivers)} receivers, valid only)")
    print(f"EAP-IG (steps={args.steps}): {es_ig.passes['forward']} forward + {es_ig.passes['backward']} backward "
          f"passes, {t_ig:.1f} s")
    print(f"EAP: {es_eap.passes['forward']} forward + {es_eap.passes['backward']} backward passes, {t_eap:.1f} s")
    print(f"ratio EAP-IG / EAP wall time: {t_ig / t_eap:.2f}")
    rho = torch.corrcoef(torch.stack([es_ig.scores.flatten(), es_eap.scores.flatten()]))[0, 1].item()
    print(f"pearson(EAP-IG, EAP) over all edges: {rho:.3f}")

    g = to_graph(es_ig, model_name=args.model, pairs=pairs)
    g = top_n(g, max(1, n_edges // 100), absolute=True)
    if args.verify:
        t = time.perf_counter()
        g, rep = verify(m, pairs, g, k=args.verify)
        t_v = time.perf_counter() - t
        per_edge = t_v / max(1, rep["k"])
        print(f"verify top {rep['k']}: spearman {rep['spearman']:.3f}, sign flips {rep['sign_flips']}, "
              f"max |err| {rep['max_abs_error']:.4f}, {t_v:.1f} s ({per_edge:.2f} s per exact edge)")
        print(f"exact patching of all {n_edges} edges would take ~{per_edge * n_edges / 3600:.1f} h = "
              f"{n_edges} forward passes; ratio exact / EAP-IG passes: "
              f"{n_edges / (es_ig.passes['forward'] + es_ig.passes['backward']):.0f}x, "
              f"wall ~{per_edge * n_edges / t_ig:.0f}x")
    t = time.perf_counter()
    block = mib_block(m, pairs, g, ablations=[a for a in args.ablations.split(",") if a])
    print(f"faithfulness curves: {time.perf_counter() - t:.1f} s")
    for abl, res in block["ablations"].items():
        for key in ("curve_signed", "curve_abs"):
            c = res[key]
            print(f"[{abl} {key}] m(N)={c['m_full']:.3f} m(empty)={c['m_empty']:.3f}")
            print("  % edges : " + " ".join(f"{100 * p:6.1f}" for p in c["percentages"]))
            print("  kept    : " + " ".join(f"{k:6d}" for k in c["edges_kept"]))
            print("  faithful: " + " ".join(f"{f:6.3f}" for f in c["faithfulness"]))
        print(f"[{abl}] CPR {res['cpr']:.3f}  CMD {res['cmd']:.3f}  (MIB definitions)")
    if args.out:
        g.with_faithfulness(block).save(args.out)
        print(f"graph written to {args.out}")
    print(json.dumps({"passes": es_ig.passes, "cpr": {a: r["cpr"] for a, r in block["ablations"].items()},
                      "cmd": {a: r["cmd"] for a, r in block["ablations"].items()}}))


if __name__ == "__main__":
    main()
