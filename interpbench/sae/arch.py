"""Sparse autoencoders and transcoders: one module, four activation rules in a registry.

``SAE.encode(x)`` -> latents ``z`` [.. d_sae]; ``SAE.decode(z)`` -> reconstruction [.. d_out];
both in the *raw* units of the model (the training-time normalisation ``act_scale`` is
applied inside). ``W_dec`` is [d_sae d_out]: row i is feature i's direction.

1. ``pre = (x·act_scale - b_dec) @ W_enc + b_enc`` (transcoders skip the ``- b_dec``: input
   and output live in different spaces).
2. Activation rule (``cfg.arch``):
   - ``relu``: ``relu(pre)``; loss adds ``l1_coeff · Σ_i z_i ‖W_dec[i]‖`` (Anthropic, 2024).
   - ``topk``: keep the k largest ``relu(pre)`` per token (Gao et al. 2024); AuxK on dead latents.
   - ``batchtopk``: keep the ``k·batch`` largest over the batch while training; at inference
     a single threshold (running mean of the smallest kept value) (Bussmann et al. 2024).
   - ``jumprelu``: ``pre · [pre > θ_i]`` with learned θ and an L0 penalty through
     straight-through pseudo-derivatives (Rajamanoharan et al. 2024).
3. ``decode``: ``(z @ W_dec + b_dec) / out_scale``.
4. :meth:`SAE.training_loss` returns the loss terms in normalised units; the TopK rule
   uses the sparse path in :mod:`interpbench.sae.kernels` unless ``fast=False``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import ShapeError
from . import kernels
from .config import SAEConfig

ARCHS: dict[str, str] = {
    "relu": "ReLU with decoder-norm-weighted L1",
    "topk": "TopK (k per token) with AuxK for dead latents",
    "batchtopk": "BatchTopK (k·batch per batch), thresholded at inference",
    "jumprelu": "JumpReLU with learned thresholds and an L0 penalty",
}
"""Registry of architecture names (the CLI, recipes and the app list these)."""


class SAE(nn.Module):
    """A sparse autoencoder (``cfg.out_site is None``) or transcoder. Parameters are fp32."""

    def __init__(self, cfg: SAEConfig, device=None, dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cfg.d_output
        kw = dict(device=device, dtype=dtype)
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae, **kw))
        self.b_enc = nn.Parameter(torch.zeros(d_sae, **kw))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_out, **kw))
        self.b_dec = nn.Parameter(torch.zeros(d_out, **kw))
        if cfg.arch == "jumprelu":
            self.log_threshold = nn.Parameter(torch.full((d_sae,), float(torch.tensor(cfg.jumprelu_init_threshold).log()), **kw))
        if cfg.arch == "batchtopk":
            self.register_buffer("threshold", torch.zeros((), **kw))

    # -- init -------------------------------------------------------------------------
    @torch.no_grad()
    def init_weights(self, generator: Optional[torch.Generator] = None) -> "SAE":
        """Unit-norm random decoder rows, encoder = decoder transpose, zero biases."""
        w = torch.randn(self.W_dec.shape, generator=generator, dtype=torch.float32).to(self.W_dec)
        w /= w.norm(dim=-1, keepdim=True)
        self.W_dec.copy_(w)
        if self.cfg.d_output == self.cfg.d_in:
            self.W_enc.copy_(w.T)
        else:
            e = torch.randn(self.W_enc.shape, generator=generator, dtype=torch.float32).to(self.W_enc)
            self.W_enc.copy_(e / e.norm(dim=0, keepdim=True))
        if self.cfg.arch == "relu":
            self.W_enc.mul_(0.1)
            self.W_dec.mul_(0.1)
        return self

    @property
    def apply_b_dec_to_input(self) -> bool:
        return not self.cfg.is_transcoder

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    # -- inference --------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        if x.shape[-1] != self.cfg.d_in:
            raise ShapeError(f"SAE expects inputs of width {self.cfg.d_in}, got {tuple(x.shape)}; "
                             f"is this the right site ({self.cfg.site})?")

    def pre_acts(self, xs: Tensor) -> Tensor:
        """Pre-activations from *normalised* inputs ``xs``."""
        if self.apply_b_dec_to_input:
            xs = xs - self.b_dec
        return xs @ self.W_enc + self.b_enc

    def activate(self, pre: Tensor) -> Tensor:
        """Inference-time activation rule on pre-activations."""
        arch = self.cfg.arch
        if arch == "relu":
            return torch.relu(pre)
        if arch == "topk":
            vals, idx = pre.topk(self.cfg.k, dim=-1)
            return torch.zeros_like(pre).scatter_(-1, idx, torch.relu(vals))
        if arch == "batchtopk":
            return pre * (pre > self.threshold)
        return pre * (pre > self.log_threshold.exp())  # jumprelu

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Latent activations for raw activations ``x`` (any leading axes)."""
        self._check(x)
        xs = x.to(self.W_enc.dtype) * self.cfg.act_scale
        return self.activate(self.pre_acts(xs))

    def decode(self, z: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_out"]:
        """Reconstruction in the raw units of the (output) site."""
        return (z.to(self.W_dec.dtype) @ self.W_dec + self.b_dec) / self.cfg.out_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    # -- training ---------------------------------------------------------------------
    def training_loss(self, xs: Tensor, ys: Tensor, dead: Optional[Tensor] = None, *, aux_coeff: float = 1 / 32,
                      aux_k: int = 0, fast: bool = True) -> dict[str, Tensor]:
        """Loss terms on *normalised* inputs ``xs`` / targets ``ys`` ``[B d]``.

        Returns ``loss`` (to backprop), ``mse`` (Σ_d per token, batch mean), ``aux``,
        ``sparsity``, ``l0`` (mean active latents per token), ``fvu`` and ``fired`` ([d_sae] bool).
        """
        arch = self.cfg.arch
        out: dict[str, Tensor] = {}
        zero = xs.new_zeros(())
        xc = xs - self.b_dec if self.apply_b_dec_to_input else xs
        if arch == "topk" and fast:
            vals, idx, pre = kernels.topk_encode(xc.detach(), self.W_enc, self.b_enc,
                                                 self.b_dec if self.apply_b_dec_to_input else xs.new_zeros(self.cfg.d_output).requires_grad_(False),
                                                 self.cfg.k)
            acts = torch.relu(vals)
            recon = kernels.sparse_decode(acts, idx, self.W_dec) + self.b_dec
            fired = torch.zeros(self.cfg.d_sae, dtype=torch.int32, device=xs.device).scatter_reduce(
                0, idx.flatten(), (acts > 0).flatten().to(torch.int32), "amax").bool()  # no host sync
            l0 = (acts > 0).sum(-1).float().mean()
        else:
            pre = xc @ self.W_enc + self.b_enc
            if arch == "topk":
                vals, idx = pre.topk(self.cfg.k, dim=-1)
                z = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
            elif arch == "batchtopk":
                r = torch.relu(pre)
                n_keep = self.cfg.k * r.shape[0]
                flat_vals, flat_idx = r.flatten().topk(n_keep)
                z = torch.zeros_like(r).flatten().scatter(0, flat_idx, flat_vals).view_as(r)
                if self.training:  # running estimate of the smallest kept value, without host syncs
                    with torch.no_grad():
                        m = torch.where(flat_vals > 0, flat_vals, float("inf")).min()
                        new = torch.where(self.threshold > 0, self.threshold.lerp(m, 0.01), m)
                        self.threshold.copy_(torch.where(torch.isfinite(m), new, self.threshold))
            elif arch == "jumprelu":
                z = kernels.jumprelu(pre, self.log_threshold, self.cfg.jumprelu_bandwidth)
            else:
                z = torch.relu(pre)
            recon = z @ self.W_dec + self.b_dec
            fired = (z > 0).any(0)
            l0 = (z > 0).sum(-1).float().mean()
            if arch == "relu":
                out["sparsity"] = self.cfg.l1_coeff * (z * self.W_dec.norm(dim=-1)).sum(-1).mean()
            elif arch == "jumprelu":
                out["sparsity"] = self.cfg.l0_coeff * kernels.step(pre, self.log_threshold,
                                                                   self.cfg.jumprelu_bandwidth).sum(-1).mean()
        err = recon - ys
        mse = err.pow(2).sum(-1).mean()
        total_var = (ys - ys.mean(0)).pow(2).sum(-1).mean()
        aux = zero
        if arch in ("topk", "batchtopk") and dead is not None and aux_coeff > 0:
            n_dead = int(dead.sum())  # one host sync per step, only while latents are dead
            if n_dead:
                ka = min(aux_k or max(1, self.cfg.d_in // 2), n_dead)
                with torch.no_grad():
                    pre_d = (xc.detach() @ self.W_enc + self.b_enc) if not (arch == "topk" and fast) else pre
                    pre_d = pre_d.masked_fill(~dead, float("-inf"))
                    avals, aidx = pre_d.topk(ka, dim=-1, sorted=False)
                avals = kernels.GatherPre.apply(avals, xc.detach(), self.W_enc, self.b_enc,
                                                xs.new_zeros(self.cfg.d_output), aidx)
                e_hat = kernels.sparse_decode(torch.relu(avals), aidx, self.W_dec)
                e = (ys - recon).detach()
                aux = aux_coeff * (e_hat - e).pow(2).sum(-1).mean() / (e - e.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8)
        out.update(mse=mse, aux=aux, l0=l0, fvu=(mse / total_var.clamp_min(1e-12)).detach(), fired=fired)
        out.setdefault("sparsity", zero)
        out["loss"] = mse + aux + out["sparsity"]
        return out

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale decoder rows to unit norm (called after each step when the arch asks for it)."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Drop the component of each decoder-row gradient along its row (keeps unit norm to first order)."""
        g = self.W_dec.grad
        if g is not None:
            g.sub_((g * self.W_dec).sum(-1, keepdim=True) * self.W_dec)


def geometric_median(x: Tensor, iters: int = 50, eps: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm on rows of ``x`` [n d] -> [d]."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=-1).clamp_min(eps)
        m = (w[:, None] * x).sum(0) / w.sum()
    return m


InitFn = Callable[[Tensor], Tensor]
__all__ = ["SAE", "ARCHS", "geometric_median"]
