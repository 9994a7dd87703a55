"""Torch port of Tracr-compiled models (runtime: torch + safetensors, no jax).

Tracr (Lindner et al. 2023) compiles a RASP program into a transformer with no
LayerNorm whose residual stream is a sum of labelled one-hot subspaces. Per block::

    resid_mid  = resid_pre + attn(resid_pre)          (bidirectional, biases, 1/sqrt(d_head))
    resid_post = resid_mid + fc_out(relu(fc_in(resid_mid)))

and the output is ``resid @ res_to_out`` (a projection onto the program's output
subspace). Every site is a module input or output: ``blocks.{l}.resid_mid`` is an identity
module, so writing ``hook_resid_mid`` changes both the MLP input and the residual; ``ln1``,
``ln2`` and ``ln_final`` are identities (so their ``hook_normalized`` sites exist and the
graph engine finds each port's input where it looks for it on LayerNorm models).

True edges (:func:`structural_edges`):

1. each sender writes the residual dimensions where its output matrix is non-zero
   (``input``: token and position embeddings; heads: their slice of ``o_proj``; MLPs:
   ``fc_out``); each receiver port reads the dimensions where its input matrix is
   non-zero (``q_proj``/``k_proj``/``v_proj`` slices, ``fc_in``, ``unembed``);
2. ``u -> v`` is a structural edge iff ``u`` comes before ``v`` and writes a dimension ``v``
   reads. Tracr gives every SOp its own dimensions, so this is the compiled program's dataflow;
3. a structural edge is a true edge iff ablating it exactly (:func:`edge_forward`, zero
   ablation) changes the output at some position >= 1 on some input of the task: tracr
   wires a few reads that cannot matter (an all-true selector's query/key, the BOS-attention
   term of a query, used only at the BOS position). ``build_tracr`` records both lists.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .attn_only import Attention
from .nodes import head_id

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TracrConfig:
    """Shape of a :class:`TracrTransformer` (from the compiled model)."""

    d_vocab: int
    """Input vocabulary size (program tokens + BOS + pad)."""
    n_ctx: int
    """Positions (max_seq_len + 1 for BOS)."""
    d_model: int
    """Residual width (number of labelled residual directions)."""
    n_layers: int
    """Blocks (each has an attention layer and an MLP, possibly all-zero)."""
    n_heads: int
    """Heads per attention layer."""
    d_head: int
    """Tracr's key_size."""
    d_mlp: int
    """MLP hidden width."""
    d_out: int
    """Output width: number of output values (categorical) or 1 (numerical)."""
    causal: bool = False
    """Tracr compiles bidirectional attention by default."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TracrConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


class MLP(nn.Module):
    def __init__(self, d_model: int, d_mlp: int):
        super().__init__()
        self.fc_in = nn.Linear(d_model, d_mlp)
        self.act = nn.ReLU()
        self.fc_out = nn.Linear(d_mlp, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(self.act(self.fc_in(x)))


class TracrBlock(nn.Module):
    def __init__(self, cfg: TracrConfig):
        super().__init__()
        self.ln1 = nn.Identity()  # tracr has no LayerNorm; identities keep the TransformerLens sites
        self.attn = Attention(cfg, bias=True, causal=cfg.causal)
        self.resid_mid = nn.Identity()
        self.ln2 = nn.Identity()
        self.mlp = MLP(cfg.d_model, cfg.d_mlp)

    def forward(self, resid: Tensor) -> Tensor:
        mid = self.resid_mid(resid + self.attn(self.ln1(resid)))
        return mid + self.mlp(self.ln2(mid))


class TracrTransformer(nn.Module):
    def __init__(self, cfg: TracrConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList([TracrBlock(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = nn.Identity()  # tracr has no LayerNorm; kept so ln_final.hook_normalized exists
        self.unembed = nn.Linear(cfg.d_model, cfg.d_out, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        b, n = tokens.shape
        pos = torch.arange(n, device=tokens.device).expand(b, n)  # [batch pos]
        resid = self.embed(tokens) + self.pos_embed(pos)
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))  # [batch pos d_out]


def tracr_site_defs(n_layers: int, n_heads: int):
    from ..models.sitemap import SiteDef

    resid, heads = ("batch", "pos", "d_model"), ("batch", "pos", "head", "d_head")
    pat, mlp = ("batch", "head", "q_pos", "k_pos"), ("batch", "pos", "d_mlp")
    defs = [SiteDef("hook_embed", "embed", "output", resid), SiteDef("hook_pos_embed", "pos_embed", "output", resid)]
    for l in range(n_layers):
        B = L = f"blocks.{l}"
        defs += [
            SiteDef(f"{L}.hook_resid_pre", B, "input", resid, l),
            SiteDef(f"{L}.ln1.hook_normalized", f"{B}.ln1", "output", resid, l),
            SiteDef(f"{L}.attn.hook_q", f"{B}.attn.q_proj", "output", heads, l, n_heads),
            SiteDef(f"{L}.attn.hook_k", f"{B}.attn.k_proj", "output", heads, l, n_heads),
            SiteDef(f"{L}.attn.hook_v", f"{B}.attn.v_proj", "output", heads, l, n_heads),
            SiteDef(f"{L}.attn.hook_attn_scores", f"{B}.attn", "attn_scores", pat, l),
            SiteDef(f"{L}.attn.hook_pattern", f"{B}.attn", "pattern", pat, l),
            SiteDef(f"{L}.attn.hook_z", f"{B}.attn.o_proj", "input", heads, l, n_heads),
            SiteDef(f"{L}.hook_attn_out", f"{B}.attn.o_proj", "output", resid, l),
            SiteDef(f"{L}.hook_resid_mid", f"{B}.resid_mid", "output", resid, l),
            SiteDef(f"{L}.ln2.hook_normalized", f"{B}.ln2", "output", resid, l),
            SiteDef(f"{L}.mlp.hook_pre", f"{B}.mlp.fc_in", "output", mlp, l),
            SiteDef(f"{L}.mlp.hook_post", f"{B}.mlp.fc_out", "input", mlp, l),
            SiteDef(f"{L}.hook_mlp_out", f"{B}.mlp.fc_out", "output", resid, l),
            SiteDef(f"{L}.hook_resid_post", B, "output", resid, l),
        ]
    defs.append(SiteDef("ln_final.hook_normalized", "ln_final", "output", resid))
    return defs


def _forward(module: nn.Module, tokens: Tensor, attention_mask=None) -> Tensor:
    return module(tokens)


def hooked_tracr(module: TracrTransformer, name: str):
    """Wrap as a HookedModel (``cfg.causal=True`` means "returns logits"; the attention itself
    is bidirectional as compiled, see ``TracrConfig.causal``)."""
    from ..models.model import HookedModel, ModelConfig

    c = module.cfg
    cfg = ModelConfig(name=name, arch="TracrTransformer", n_layers=c.n_layers, n_heads=c.n_heads,
                      n_kv_heads=c.n_heads, d_model=c.d_model, d_head=c.d_head, d_mlp=c.d_mlp,
                      d_vocab=c.d_vocab, n_ctx=c.n_ctx, causal=True)
    module.eval()
    return HookedModel(module, None, cfg, tracr_site_defs(c.n_layers, c.n_heads), forward=_forward)


@torch.no_grad()
def structural_edges(module: TracrTransformer, tol: float = 1e-6) -> list[tuple[str, str]]:
    """True edges from which residual dimensions each component writes and reads (module docstring)."""
    c = module.cfg
    nz_rows = lambda w: set(torch.nonzero(w.abs().amax(1) > tol).flatten().tolist())  # noqa: E731  [d_model, *]
    writes = {"input": nz_rows(module.embed.weight.T) | nz_rows(module.pos_embed.weight.T)}
    order, edges = ["input"], []
    for l, block in enumerate(module.blocks):
        a, sl = block.attn, lambda h: slice(h * c.d_head, (h + 1) * c.d_head)  # noqa: E731
        for h in range(c.n_heads):
            for p, proj in (("q", a.q_proj), ("k", a.k_proj), ("v", a.v_proj)):
                reads = nz_rows(proj.weight[sl(h)].T)
                edges += [(u, f"{head_id(l, h)}<{p}>") for u in order if writes[u] & reads]
        for h in range(c.n_heads):
            writes[head_id(l, h)] = nz_rows(a.o_proj.weight[:, sl(h)])
            order.append(head_id(l, h))
        reads = nz_rows(block.mlp.fc_in.weight.T)
        edges += [(u, f"m{l}") for u in order if writes[u] & reads]
        writes[f"m{l}"] = nz_rows(block.mlp.fc_out.weight)
        order.append(f"m{l}")
    reads = nz_rows(module.unembed.weight.T)
    return edges + [(u, "logits") for u in order if writes[u] & reads]


@torch.no_grad()
def edge_forward(module: TracrTransformer, tokens: Tensor, off=frozenset(), ablated=None) -> Tensor:
    """Outputs ``[batch pos d_out]`` with each edge ``(u, port)`` in ``off`` ablated exactly.

    Every receiver port gets its own residual input ``sum_u out_u``, with ``out_u`` replaced
    by ``ablated[u]`` (zeros when ``ablated`` is None) for its ablated edges. Output-projection
    biases are a sender ``b{layer}`` that no edge ablation touches.
    """
    return _edge_run(module, tokens, off, ablated)[0]


@torch.no_grad()
def node_outputs(module: TracrTransformer, tokens: Tensor) -> dict[str, Tensor]:
    """Every sender's output ``[batch pos d_model]`` in a normal forward (for mean/resample values)."""
    return _edge_run(module, tokens, frozenset(), None)[1]


def _edge_run(module: TracrTransformer, tokens: Tensor, off, ablated) -> tuple[Tensor, dict[str, Tensor]]:
    c = module.cfg
    b, n = tokens.shape
    pos = torch.arange(n, device=tokens.device).expand(b, n)
    outs = {"input": module.embed(tokens) + module.pos_embed(pos)}
    order = ["input"]

    def resid(recv: str) -> Tensor:
        return sum((torch.zeros_like(outs[u]) if ablated is None else ablated[u]) if (u, recv) in off else outs[u]
                   for u in order)

    for l, block in enumerate(module.blocks):
        a, new = block.attn, {}
        for h in range(c.n_heads):
            sl = slice(h * c.d_head, (h + 1) * c.d_head)
            q, k, v = (nn.functional.linear(resid(f"{head_id(l, h)}<{p}>"), w.weight[sl], w.bias[sl])
                       for p, w in (("q", a.q_proj), ("k", a.k_proj), ("v", a.v_proj)))  # [b p d_head]
            scores = q @ k.transpose(1, 2) * c.d_head ** -0.5  # [b q k]
            if c.causal:
                mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            new[head_id(l, h)] = (scores.softmax(-1) @ v) @ a.o_proj.weight[:, sl].T
        outs.update(new, **{f"b{l}": a.o_proj.bias.expand_as(outs["input"])})
        order += list(new) + [f"b{l}"]
        outs[f"m{l}"] = block.mlp(resid(f"m{l}"))
        order.append(f"m{l}")
    return module.unembed(resid("logits")), outs


# -- artifacts and tasks ----------------------------------------------------------------

def load_tracr(name: str, root: Path):
    """``(TracrTransformer, HookedModel, record)`` from ``{name}.safetensors`` + ``{name}.json``."""
    import json

    from safetensors.torch import load_file

    from ..errors import InterpbenchError

    path = Path(root) / f"{name}.json"
    if not path.exists():
        raise InterpbenchError(f"{path} is missing; rebuild with `.venv-tracr/bin/python -m "
                               f"interpbench.groundtruth.build_tracr`")
    rec = json.loads(path.read_text())
    if rec.get("schema_version") != SCHEMA_VERSION:
        raise InterpbenchError(f"{path} has schema_version {rec.get('schema_version')!r}; this interpbench reads 1")
    module = TracrTransformer(TracrConfig.from_dict(rec["config"]))
    module.load_state_dict(load_file(str(Path(root) / f"{name}.safetensors")))
    return module, hooked_tracr(module, name), rec


def encode(rec: dict, inputs: list[list]) -> Tensor:
    """Token ids ``[batch pos]`` of program inputs (``'BOS'`` first), via the compiled vocab."""
    vocab = {json_key(v): i for v, i in rec["input_encoding"]}
    return torch.tensor([[vocab[json_key(t)] for t in row] for row in inputs], dtype=torch.long)


def json_key(v) -> str:
    return f"{type(v).__name__}:{v}"


def program_inputs(name: str, n: int, seed: int) -> tuple[list[list], list[list]]:
    """ACDC's clean and corrupted program inputs (see :mod:`interpbench.groundtruth.loader`)."""
    gen = torch.Generator().manual_seed(seed)
    if name == "tracr-reverse":
        perms = [["BOS", *p] for p in itertools.permutations([1, 2, 3])]
        clean = [perms[i % len(perms)] for i in range(n)]
        while True:  # a derangement whose rows all differ from the clean row
            idx = torch.randperm(n, generator=gen).tolist()
            if all(clean[j] != clean[i] for i, j in enumerate(idx)):
                break
        return clean, [clean[j] for j in idx]
    combos = [["BOS", *c] for c in itertools.product("wxyz", repeat=4)]
    pick = torch.randperm(len(combos), generator=gen)[: 2 * n].tolist()
    return [combos[i] for i in pick[:n]], [combos[i] for i in pick[n:]]


def tracr_task(name: str, hooked, rec: dict, n: int = 6, seed: int = 0):
    from ..tasks.base import PromptPairs
    from .loader import GroundTruthTask

    clean_in, corr_in = program_inputs(name, n, seed)
    clean, corr = encode(rec, clean_in).to(hooked.device), encode(rec, corr_in).to(hooked.device)
    with torch.no_grad():
        ref, ref_corr = hooked(clean), hooked(corr)  # [batch pos d_out]
    l2 = lambda logits, pairs=None: ((logits[:, 1:] - ref[:, 1:]) ** 2).flatten(1).sum(-1)  # noqa: E731
    if rec["output"]["categorical"]:
        target = ref.argmax(-1)  # [batch pos]
        answer, wrong = target[:, -1], ref_corr.argmax(-1)[:, -1]

        def correct_logit(logits: Tensor, pairs=None) -> Tensor:
            x = logits[:, 1:]
            return (x.gather(-1, target[:, 1:, None])[..., 0] - x.mean(-1)).sum(-1)

        metrics, default = {"correct_logit": correct_logit, "l2": l2}, "correct_logit"
    else:
        answer = wrong = torch.zeros(n, dtype=torch.long, device=hooked.device)
        metrics, default = {"output": lambda logits, pairs=None: logits[:, 1:, 0].sum(-1), "l2": l2}, "output"
    pairs = PromptPairs(f"groundtruth:{name}", clean, corr, answer, wrong,
                        clean_text=tuple(" ".join(map(str, r)) for r in clean_in),
                        corrupted_text=tuple(" ".join(map(str, r)) for r in corr_in),
                        meta={"seed": seed, "n": n, "setup": "ACDC tracr"})
    return GroundTruthTask(pairs, metrics[default], default, metrics)
