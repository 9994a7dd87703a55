"""A small attention-only transformer whose every site is a module input or output.

Used by the ground-truth suite (induction heads trained in the repo). Layout, per block::

    resid_pre ──ln1──▶ q_proj / k_proj / v_proj ──▶ causal softmax attention ──▶ z ──o_proj──▶ attn_out
    resid_post = resid_pre + attn_out

1. ``hook_embed`` = ``embed`` output, ``hook_pos_embed`` = ``pos_embed`` output (learned,
   called on ``[batch pos]`` position ids so its output is ``[batch pos d_model]``).
2. ``blocks.{l}.hook_resid_pre`` / ``hook_resid_post`` = block input / output.
3. ``attn.hook_q/k/v`` = outputs of separate bias-free ``q_proj/k_proj/v_proj`` (split into
   heads by the site map); ``attn.hook_z`` = input of the bias-free ``o_proj``;
   ``hook_attn_out`` = its output. Because nothing has a bias, the per-head outputs
   ``z[..., h, :] @ W_O[:, h].T`` sum exactly to ``attn_out``.
4. ``attn.hook_attn_scores`` / ``hook_pattern`` go through the tracing core's attention
   callback (``interpbench.models.attention.HOOK_ATTR``), like the hookable eager kernel.
5. ``ln_final.hook_normalized`` = ``ln_final`` output; ``unembed`` gives the logits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..models.attention import HOOK_ATTR


@dataclass(frozen=True)
class AttnOnlyConfig:
    """Shape of an :class:`AttnOnlyTransformer`."""

    d_vocab: int = 128
    """Vocabulary size (token 0 is BOS)."""
    n_ctx: int = 64
    """Maximum sequence length (learned positional embeddings)."""
    d_model: int = 64
    """Residual stream width."""
    n_layers: int = 2
    """Attention-only blocks."""
    n_heads: int = 4
    """Heads per block."""
    d_head: int = 16
    """Per-head width."""
    norm: str = "layernorm"
    """``layernorm`` (``ln1`` / ``ln_final`` are LayerNorms) or ``none`` (identities: the model is
    linear in each sender's output up to the attention softmax, so zero-ablation gradients do not
    vanish). Configs written before this field existed mean ``layernorm``."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AttnOnlyConfig":
        return cls(**{k: (str(d[k]) if k == "norm" else int(d[k])) for k in cls.__dataclass_fields__ if k in d})


def _norm(cfg: AttnOnlyConfig) -> nn.Module:
    if cfg.norm == "layernorm":
        return nn.LayerNorm(cfg.d_model)
    if cfg.norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {cfg.norm!r}: use layernorm or none")


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/o projections (scores scaled by ``d_head**-0.5``)."""

    def __init__(self, cfg, bias: bool = False, causal: bool = True):
        super().__init__()
        hd = cfg.n_heads * cfg.d_head
        self.n_heads, self.d_head, self.causal = cfg.n_heads, cfg.d_head, causal
        self.q_proj = nn.Linear(cfg.d_model, hd, bias=bias)
        self.k_proj = nn.Linear(cfg.d_model, hd, bias=bias)
        self.v_proj = nn.Linear(cfg.d_model, hd, bias=bias)
        self.o_proj = nn.Linear(hd, cfg.d_model, bias=bias)

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        q = self.q_proj(x).unflatten(-1, (self.n_heads, self.d_head))  # [b p h d]
        k = self.k_proj(x).unflatten(-1, (self.n_heads, self.d_head))
        v = self.v_proj(x).unflatten(-1, (self.n_heads, self.d_head))
        n = x.shape[1]
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * self.d_head ** -0.5  # [b h q k]
        if self.causal:
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
        hook = getattr(self, HOOK_ATTR, None)
        if hook is not None:
            scores = hook("attn_scores", scores)
        pattern = torch.softmax(scores, dim=-1)
        if hook is not None:
            pattern = hook("pattern", pattern)
        z = torch.einsum("bhqk,bkhd->bqhd", pattern, v).flatten(-2)  # [b q h d] -> [b q h*d]
        return self.o_proj(z)


class Block(nn.Module):
    """``resid + attn(ln1(resid))`` (``ln1`` is a LayerNorm or an identity, see ``AttnOnlyConfig.norm``)."""

    def __init__(self, cfg: AttnOnlyConfig):
        super().__init__()
        self.ln1 = _norm(cfg)
        self.attn = Attention(cfg)

    def forward(self, resid: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        return resid + self.attn(self.ln1(resid))


class AttnOnlyTransformer(nn.Module):
    """Token + learned position embeddings, attention-only blocks, final norm (or identity), unembedding."""

    def __init__(self, cfg: AttnOnlyConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.d_vocab, cfg.d_model)
        self.pos_embed = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_final = _norm(cfg)
        self.unembed = nn.Linear(cfg.d_model, cfg.d_vocab, bias=False)

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_vocab"]:
        b, n = tokens.shape
        pos = torch.arange(n, device=tokens.device).expand(b, n)  # [batch pos]
        resid = self.embed(tokens) + self.pos_embed(pos)
        for block in self.blocks:
            resid = block(resid)
        return self.unembed(self.ln_final(resid))


def attn_only_site_defs(n_layers: int, n_heads: int, *, pos_embed: bool = True):
    """Site map of :class:`AttnOnlyTransformer` (also used by models with the same layout)."""
    from ..models.sitemap import SiteDef

    resid = ("batch", "pos", "d_model")
    heads = ("batch", "pos", "head", "d_head")
    pat = ("batch", "head", "q_pos", "k_pos")
    defs = [SiteDef("hook_embed", "embed", "output", resid)]
    if pos_embed:
        defs.append(SiteDef("hook_pos_embed", "pos_embed", "output", resid))
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
            SiteDef(f"{L}.hook_resid_post", B, "output", resid, l),
        ]
    defs.append(SiteDef("ln_final.hook_normalized", "ln_final", "output", resid))
    return defs


def _forward(module: nn.Module, tokens: Tensor, attention_mask=None) -> Tensor:
    return module(tokens)


def hooked_attn_only(module: AttnOnlyTransformer, name: str = "attn-only"):
    """Wrap ``module`` as a :class:`~interpbench.models.model.HookedModel` (no tokenizer: tokens are ints)."""
    from ..models.model import HookedModel, ModelConfig

    c = module.cfg
    cfg = ModelConfig(name=name, arch="AttnOnlyTransformer", n_layers=c.n_layers, n_heads=c.n_heads,
                      n_kv_heads=c.n_heads, d_model=c.d_model, d_head=c.d_head, d_mlp=0, d_vocab=c.d_vocab,
                      n_ctx=c.n_ctx, causal=True)
    module.eval()
    return HookedModel(module, None, cfg, attn_only_site_defs(c.n_layers, c.n_heads), forward=_forward)
