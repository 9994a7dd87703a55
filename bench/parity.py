"""Parity figures: interpbench logits vs plain HF logits, and cached activations vs
TransformerBridge's run_with_cache at every shared site name.

    python bench/parity.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import copy
import logging

import torch

import interpbench

PROMPT = "When Mary and John went to the store, John gave a drink to"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    from transformer_lens.model_bridge import TransformerBridge

    m = interpbench.load_model(args.model)
    ids = m.to_tokens(PROMPT)
    with torch.no_grad():
        ref = m.hf(ids).logits
        plain = (m(ids) - ref).abs().max().item()
        logits, ours = m.run_with_cache(ids)  # every site, patterns included (eager kernel)
        cached = (logits - ref).abs().max().item()
        bridge = TransformerBridge.boot_transformers(m.cfg.arch, hf_model=copy.deepcopy(m.hf), tokenizer=m.tokenizer)
        b_logits, theirs = bridge.run_with_cache(ids)
    diffs = {n: (ours[n] - theirs[n]).abs().max().item() for n in m.site_names if n in theirs}
    worst = max(diffs, key=diffs.get)
    print(f"model {args.model}, prompt of {ids.shape[1]} tokens, fp32")
    print(f"logits, interpbench forward vs HF            : max abs diff {plain:.2e}")
    print(f"logits, run_with_cache(all sites) vs HF      : max abs diff {cached:.2e}")
    print(f"logits, interpbench vs TransformerBridge     : max abs diff {(logits - b_logits).abs().max().item():.2e}")
    print(f"cache vs TransformerBridge at {len(diffs)}/{len(m.site_names)} shared site names: "
          f"max abs diff {diffs[worst]:.2e} (at {worst})")


if __name__ == "__main__":
    main()
