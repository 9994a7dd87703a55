"""Compile ACDC's Tracr programs, port them to torch, verify, and write the artifacts (script).

Needs jax/haiku/tracr, which the main environment does not have::

    python3 -m venv .venv-tracr
    .venv-tracr/bin/pip install tracr-pypi safetensors jaxtyping && .venv-tracr/bin/pip install -c constraints.txt torch
    .venv-tracr/bin/python -m interpbench.groundtruth.build_tracr

1. Compile the RASP programs ACDC uses (Conmy et al. 2023, ``acdc/tracr_task/utils.py``)
   with the definitions of ``tracr/compiler/lib.py``: ``reverse`` = ``make_reverse(tokens)``
   over vocab {1, 2, 3}; ``proportion`` = ``make_frac_prevs(tokens == "x")`` over
   {w, x, y, z}; ``max_seq_len=5``, BOS ``"BOS"``.
2. Copy the haiku weights into :class:`~interpbench.groundtruth.tracr_model.TracrTransformer`
   (haiku ``Linear.w`` is ``[in, out]``, torch's weight ``[out, in]``); the unembedding is
   tracr's projection of the residual onto the output subspace.
3. Verify on every clean/corrupted input of the task (and a few shorter inputs) that each
   layer output and the projected output match tracr's to 1e-4, and that the decoded
   output equals the program's.
4. Derive the structural edges from the residual subspaces
   (:func:`~interpbench.groundtruth.tracr_model.structural_edges`), keep as true edges those
   whose exact zero ablation changes an output at a position >= 1 (and, per ablation, the
   true edges that mean / resample ablation on the task's prompts can see at all), and write
   ``{name}.safetensors`` + ``{name}.json`` (config, vocab, residual labels, edges, reference
   outputs for the tests) to ``interpbench/groundtruth/weights/``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch

from .tracr_model import (SCHEMA_VERSION, TracrConfig, TracrTransformer, edge_forward, encode, node_outputs,
                          program_inputs, structural_edges)

WEIGHTS_DIR = Path(__file__).parent / "weights"


def compile_program(name: str):
    from tracr.compiler import compiling, lib
    from tracr.rasp import rasp

    if name == "tracr-reverse":
        program, vocab = lib.make_reverse(rasp.tokens), {1, 2, 3}
    elif name == "tracr-proportion":
        program, vocab = lib.make_frac_prevs(rasp.tokens == "x"), {"w", "x", "y", "z"}
    else:
        raise ValueError(name)
    return program, compiling.compile_rasp_to_model(program, vocab=vocab, max_seq_len=5, compiler_bos="BOS")


def output_projection(model, program) -> tuple[np.ndarray, list]:
    """``res_to_out`` ``[d_model, d_out]`` and the output value of each column (None if numerical)."""
    labels = model.residual_labels
    enc = getattr(model.output_encoder, "encoding_map", None)
    if enc:  # categorical: one column per output value, in encoder order
        values = sorted(enc, key=enc.get)
        cols = [labels.index(f"{program.label}:{v}") for v in values]
    else:
        values, cols = [None], [labels.index(program.label)]
    proj = np.zeros((len(labels), len(cols)), dtype=np.float32)
    for j, i in enumerate(cols):
        proj[i, j] = 1.0
    return proj, values


def convert(model, program) -> tuple[TracrTransformer, list]:
    p = {k: {a: np.asarray(b, dtype=np.float32) for a, b in v.items()} for k, v in model.params.items()}
    mc = model.model_config
    proj, values = output_projection(model, program)
    d_vocab, d_model = p["token_embed"]["embeddings"].shape
    cfg = TracrConfig(d_vocab=d_vocab, n_ctx=p["pos_embed"]["embeddings"].shape[0], d_model=d_model,
                      n_layers=mc.num_layers, n_heads=mc.num_heads, d_head=mc.key_size, d_mlp=mc.mlp_hidden_size,
                      d_out=proj.shape[1], causal=bool(mc.causal))
    sd = {"embed.weight": p["token_embed"]["embeddings"], "pos_embed.weight": p["pos_embed"]["embeddings"],
          "unembed.weight": proj.T}
    for l in range(cfg.n_layers):
        pre = f"transformer/layer_{l}"
        for ours, theirs in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"), ("o_proj", "linear")):
            sd[f"blocks.{l}.attn.{ours}.weight"] = p[f"{pre}/attn/{theirs}"]["w"].T
            sd[f"blocks.{l}.attn.{ours}.bias"] = p[f"{pre}/attn/{theirs}"]["b"]
        for ours, theirs in (("fc_in", "linear_1"), ("fc_out", "linear_2")):
            sd[f"blocks.{l}.mlp.{ours}.weight"] = p[f"{pre}/mlp/{theirs}"]["w"].T
            sd[f"blocks.{l}.mlp.{ours}.bias"] = p[f"{pre}/mlp/{theirs}"]["b"]
    module = TracrTransformer(cfg)
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return module.eval(), values


@torch.no_grad()
def verify(module: TracrTransformer, model, program, inputs: list[list], proj: np.ndarray, values: list) -> float:
    """Largest |difference| between tracr and the port over layer outputs and outputs."""
    from tracr.rasp import rasp

    from .tracr_model import hooked_tracr

    hooked = hooked_tracr(module, "verify")
    worst = 0.0
    for row in inputs:
        out = model.apply(row)
        ids = torch.tensor([model.input_encoder.encode(row)])
        names = [f"blocks.{l}.{s}" for l in range(module.cfg.n_layers) for s in ("hook_attn_out", "hook_mlp_out")]
        logits, cache = hooked.run_with_cache(ids, names=names)
        for i, name in enumerate(names):
            worst = max(worst, float(np.abs(cache[name][0].numpy() - np.asarray(out.layer_outputs[i])[0]).max()))
        theirs = np.asarray(out.transformer_output)[0] @ proj
        worst = max(worst, float(np.abs(logits[0].numpy() - theirs).max()))
        want = rasp.evaluate(program, row[1:])  # the RASP program evaluated directly
        if module.cfg.d_out > 1:
            got = [out.decoded[0]] + [values[j] for j in logits[0, 1:].argmax(-1).tolist()]
            if got[1:] != want:
                raise AssertionError(f"port decodes {got[1:]} for {row}, program says {want}")
        elif not np.allclose(logits[0, 1:, 0].numpy(), np.asarray(want, dtype=np.float32), atol=1e-4):
            raise AssertionError(f"port outputs {logits[0, 1:, 0].tolist()} for {row}, program says {want}")
    return worst


@torch.no_grad()
def edge_effects(module: TracrTransformer, model, inputs: list[list], edges) -> dict:
    """Max |change| of the outputs at positions >= 1 when each edge alone is zero-ablated."""
    by_len: dict[int, list] = {}
    for row in inputs:
        by_len.setdefault(len(row), []).append(model.input_encoder.encode(row))
    batches = [torch.tensor(rows) for rows in by_len.values()]
    for ids in batches:
        if not torch.allclose(edge_forward(module, ids), module(ids), atol=1e-5):
            raise AssertionError("edge_forward with nothing ablated differs from the module")
    return {e: max(float((edge_forward(module, ids, {e}) - module(ids))[:, 1:].abs().max()) for ids in batches)
            for e in edges}


@torch.no_grad()
def edges_by_ablation(module: TracrTransformer, rec: dict, name: str, edges, seeds=range(5)) -> dict:
    """True edges each ablation can see on the task's prompts (effect > 1e-3 for some seed).

    zero: the true edges; mean: sender replaced by its mean over the clean prompts per
    position; resample: by its output on the corrupted prompt of the pair.
    """
    seen: dict = {"zero": list(edges), "mean": set(), "resample": set()}
    for seed in seeds:
        clean_in, corr_in = program_inputs(name, 6 if name == "tracr-reverse" else 32, seed)
        clean, corr = encode(rec, clean_in), encode(rec, corr_in)
        full = module(clean)
        outs = node_outputs(module, clean)
        refs = {"mean": {k: v.mean(0, keepdim=True).expand_as(v) for k, v in outs.items()},
                "resample": node_outputs(module, corr)}
        for kind, ref in refs.items():
            for e in edges:
                if float((edge_forward(module, clean, {e}, ref) - full)[:, 1:].abs().max()) > 1e-3:
                    seen[kind].add(e)
    return {k: [[u, v] for u, v in edges if (u, v) in set(seen[k])] for k in ("zero", "mean", "resample")}


def build(name: str, out: Path = WEIGHTS_DIR) -> dict:
    from safetensors.torch import save_file

    from ..paths import atomic_write_bytes, atomic_write_text

    program, model = compile_program(name)
    module, values = convert(model, program)
    proj = module.unembed.weight.detach().numpy().T
    clean, corr = program_inputs(name, 6 if name == "tracr-reverse" else 16, seed=0)
    vocab = sorted(set(t for row in clean for t in row[1:]), key=str)
    shorter = [["BOS", *r] for k in (1, 2, 3) for r in itertools.islice(itertools.product(vocab, repeat=k), 4)]
    inputs = clean + corr + shorter
    worst = verify(module, model, program, inputs, proj, values)
    structural = structural_edges(module)
    effects = edge_effects(module, model, inputs, structural)
    edges = [e for e in structural if effects[e] > 1e-3]
    with torch.no_grad():
        ref_ids = torch.tensor([model.input_encoder.encode(r) for r in clean])
        ref_out = module(ref_ids)
    enc = model.input_encoder.encoding_map
    partial = {"input_encoding": [[v, i] for v, i in sorted(enc.items(), key=lambda kv: kv[1])]}
    by_ablation = edges_by_ablation(module, partial, name, edges)
    rec = {"schema_version": SCHEMA_VERSION, "name": name, "config": module.cfg.to_dict(),
           "program": {"tracr-reverse": "make_reverse(tokens), vocab {1,2,3}",
                       "tracr-proportion": "make_frac_prevs(tokens == 'x'), vocab {w,x,y,z}"}[name],
           "max_seq_len": 5, "bos": "BOS",
           "input_encoding": [[v, i] for v, i in sorted(enc.items(), key=lambda kv: kv[1])],
           "output": {"categorical": module.cfg.d_out > 1, "values": values, "label": program.label},
           "residual_labels": list(model.residual_labels),
           "edges": [[u, v] for u, v in edges],
           "structural_edges": [[u, v] for u, v in structural],
           "edges_by_ablation": by_ablation,
           "edge_effect_zero_ablation": {f"{u} -> {v}": round(x, 6) for (u, v), x in effects.items()},
           "verification": {"max_abs_diff_vs_tracr": worst, "n_inputs": len(inputs)},
           "reference": {"inputs": clean, "outputs": ref_out.tolist()}}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(tmp))
    atomic_write_bytes(out / f"{name}.safetensors", tmp.read_bytes())
    tmp.unlink()
    atomic_write_text(out / f"{name}.json", json.dumps(rec, indent=1, default=str) + "\n")
    return rec


def main() -> None:
    torch.set_num_threads(1)
    for name in ("tracr-reverse", "tracr-proportion"):
        rec = build(name)
        print(json.dumps({"name": name, "config": rec["config"], "edges": rec["edges"],
                          "structural": len(rec["structural_edges"]),
                          "verification": rec["verification"]}))


if __name__ == "__main__":
    main()
