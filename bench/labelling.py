"""Labelling throughput on smollm2-135m with the local backend (bundled SmolLM2-135M-Instruct).

Prints, per stage (the LLM explainer, each scorer incl. its random-explanation and
shuffled-latent controls): features/minute and LLM prompt / completion tokens per feature,
and the ratio against the peers measured in the same run — the LLM explainer against the
top-tokens baseline, every scorer against the embedding scorer (no LLM).

    python bench/labelling.py [--features 3] [--site blocks.5.mlp.hook_post] [--n-docs 24]
    python bench/labelling.py --groundtruth [--scorers embedding,detection]

``--groundtruth`` instead prints the ranking accuracy per scorer on the synthetic latents
(true description vs the other latents' descriptions; chance = 1/5) and whether the
top-tokens explainer recovers the token-class latents.

No pass/fail; the figures depend on the machine's load (CPU, shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=3)
    ap.add_argument("--site", default="blocks.5.mlp.hook_post")
    ap.add_argument("--n-docs", type=int, default=24)
    ap.add_argument("--scorers", default="detection,fuzzing,simulation,embedding,intervention")
    ap.add_argument("--groundtruth", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one intra-op thread: much faster than two on a shared 2-core CPU
    if args.groundtruth:
        return groundtruth(args)

    from interpbench.explain.config import LabelConfig
    from interpbench.explain.examples import sample_examples
    from interpbench.explain.explainers import ExplainError, TopTokensExplainer
    from interpbench.explain.job import Pipeline
    from interpbench.explain.llm_base import thread_tokens

    scorers = tuple(args.scorers.split(","))
    cfg = LabelConfig(source=f"neurons:smollm2-135m:{args.site}", features=f"0:{4 * args.features}",
                      explainer="local", scorers=scorers, judge="local", n_docs=args.n_docs,
                      n_score_pos=4, n_score_neg=4, ctx_len=16, score_context=8)
    pipe = Pipeline(cfg, Path(tempfile.mkdtemp(prefix="bench-label-")))
    t0 = time.time()
    h = pipe.harvest()
    print(f"harvest: {len(h.tokens)} windows x {h.tokens.shape[1]} tokens, {len(h.features)} neurons "
          f"in {time.time() - t0:.1f} s ({h.corpus})")
    stats = {k: [0.0, 0, 0, 0] for k in ("explain:local-llm", "explain:top-tokens", *scorers)}  # s, feats, p, c
    failures = 0
    done = 0
    for f in h.features:
        if done == args.features:
            break
        ex = sample_examples(h, f, cfg, pipe.token_strs)
        if ex.dead:
            continue
        done += 1
        t, (p0, c0) = time.time(), thread_tokens()
        base = TopTokensExplainer().explain(ex)
        stats["explain:top-tokens"][:2] = [stats["explain:top-tokens"][0] + time.time() - t,
                                           stats["explain:top-tokens"][1] + 1]
        t = time.time()
        try:
            text = pipe.explainer.explain(ex, pipe.source, seed=f).text
        except ExplainError:
            failures += 1
            text = base.text  # bench only: score something; jobs record the failure instead
        p1, c1 = thread_tokens()
        s = stats["explain:local-llm"]
        s[0] += time.time() - t
        s[1] += 1
        s[2] += p1 - p0
        s[3] += c1 - c0
        print(f"feature {f}: {text!r}")
        for name, scorer in pipe.scorers.items():
            t, (p0, c0) = time.time(), thread_tokens()
            r = scorer.score(text, ex, cfg.seed)
            p1, c1 = thread_tokens()
            s = stats[name]
            s[0] += time.time() - t
            s[1] += 1
            s[2] += p1 - p0
            s[3] += c1 - c0
            print(f"  {name}: {r.score} (random explanation {r.random_explanation.get('score')}, "
                  f"shuffled latent {r.shuffled_latent.get('score')}, parse failures {r.parse_failures})")
    fpm = {k: 60.0 * v[1] / v[0] if v[0] > 0 else float("nan") for k, v in stats.items()}
    print(f"\n{done} live neurons of smollm2-135m:{args.site}; local LLM explanation parse failures: {failures}")
    print(f"{'stage':22s} {'features/min':>13s} {'prompt tok/feat':>16s} {'compl tok/feat':>15s} {'ratio vs peer':>14s}")
    for k, v in stats.items():
        n = max(v[1], 1)
        peer = "explain:top-tokens" if k.startswith("explain") else "embedding"
        ratio = fpm[k] / fpm[peer] if peer in fpm and fpm[peer] == fpm[peer] and k != peer else float("nan")
        print(f"{k:22s} {fpm[k]:13.2f} {v[2] / n:16.1f} {v[3] / n:15.1f} {ratio:14.3f}")
    total = sum(v[0] for k, v in stats.items() if k != "explain:top-tokens")
    print(f"all stages (LLM explainer + {len(scorers)} scorers): {60.0 * done / total:.2f} features/min")


def groundtruth(args) -> None:
    from interpbench.explain.config import LabelConfig
    from interpbench.explain.groundtruth import run_ground_truth
    from interpbench.explain.job import Pipeline

    scorers = tuple(args.scorers.split(","))
    cfg = LabelConfig(source="synthetic:smollm2-135m", features="0:6", explainer="tokens", scorers=scorers,
                      judge="local", n_docs=48, n_score_pos=4, n_score_neg=4)
    pipe = Pipeline(cfg, Path(tempfile.mkdtemp(prefix="bench-gt-")))
    for name, scorer in pipe.scorers.items():
        t = time.time()
        rep = run_ground_truth(pipe, {name: scorer})
        print(f"{name:12s} ranking accuracy {rep.ranking_accuracy[name]:.2f} strict, "
              f"{rep.ties_split[name]:.2f} ties split (chance 0.20) "
              f"ranks {rep.ranks[name]}  [{time.time() - t:.0f} s, model {scorer.model_name}]")
    print(f"top-tokens recovery of token-class latents: {rep.recovered}")
    print(f"top-tokens explanations: {rep.explanations}")


if __name__ == "__main__":
    main()
