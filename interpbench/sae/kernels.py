"""Sparse autograd pieces for TopK training (the fast path) and JumpReLU's straight-through estimators.

TopK fast path (after sparsify / Gao et al. 2024, on any device, no custom kernels):

1. ``pre = (x - b_dec) @ W_enc + b_enc`` under ``no_grad``: the only dense matmul.
2. ``vals, idx = topk(pre, k)``; :class:`GatherPre` re-attaches gradients to the k selected
   pre-activations only. Its backward builds the [batch, d_sae] gradient as a sparse COO
   matrix and computes ``dW_enc = xcᵀ G`` with a sparse-dense product (batch·k·d_in work,
   not batch·d_sae·d_in), ``db_enc`` with ``index_add`` and ``db_dec = -W_enc (Σ_b G_b)``.
3. Decoding is ``F.embedding_bag(idx, W_dec, per_sample_weights=relu(vals))``: a gather-sum
   whose backward is a scatter, again batch·k·d_in work.
The naive twin (dense ``z`` and dense matmuls) lives in :mod:`interpbench.sae.arch` and is
checked against this path in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function


class GatherPre(Function):
    """``vals`` (precomputed ``pre.gather(1, idx)``) with gradients to W_enc, b_enc, b_dec."""

    @staticmethod
    def forward(ctx, vals: Tensor, xc: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, idx: Tensor) -> Tensor:
        ctx.save_for_backward(xc, W_enc, idx)
        ctx.d_sae = W_enc.shape[1]
        return vals.clone()

    @staticmethod
    def backward(ctx, g: Tensor):
        xc, W_enc, idx = ctx.saved_tensors
        B, k = idx.shape
        d_sae = ctx.d_sae
        rows = torch.arange(B, device=idx.device).repeat_interleave(k)  # [B*k]
        cols = idx.reshape(-1)
        gv = g.reshape(-1).to(xc.dtype)
        # G: [d_sae B] sparse; dW_enc^T = G @ xc -> [d_sae d_in]
        dW_enc = None
        if ctx.needs_input_grad[2]:
            # (col, row) pairs are unique (topk indices are distinct per row), so coalescing only sorts;
            # a sorted COO matrix multiplies ~2x faster on CPU
            G_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), gv, (d_sae, B), check_invariants=False).coalesce()
            dW_enc = torch.sparse.mm(G_t, xc).t()  # [d_sae d_in] -> [d_in d_sae]
        gsum = torch.zeros(d_sae, device=g.device, dtype=xc.dtype).index_add_(0, cols, gv)
        db_enc = gsum if ctx.needs_input_grad[3] else None
        db_dec = -(W_enc @ gsum) if ctx.needs_input_grad[4] else None
        return None, None, dW_enc, db_enc, db_dec, None


def topk_encode(xc: Tensor, W_enc: Tensor, b_enc: Tensor, b_dec: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(vals [B k] with grad, idx [B k], pre [B d_sae] without grad)`` for centred inputs ``xc``."""
    with torch.no_grad():
        pre = torch.addmm(b_enc, xc, W_enc)  # [B d_in] @ [d_in d_sae] -> [B d_sae]
        vals, idx = pre.topk(k, dim=-1, sorted=False)
    return GatherPre.apply(vals, xc, W_enc, b_enc, b_dec, idx), idx, pre


def sparse_decode(vals: Tensor, idx: Tensor, W_dec: Tensor) -> Tensor:
    """``Σ_j vals[b, j] W_dec[idx[b, j]]`` -> [B d_out] (gather-sum, scatter backward)."""
    return torch.nn.functional.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")


class _JumpReLU(Function):
    @staticmethod
    def forward(ctx, pre: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
        theta = log_threshold.exp()
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g: Tensor):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        d_pre = g * (pre > theta)
        kernel = ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps  # rectangle K((x-θ)/ε)/ε
        d_theta = -(theta * kernel * g).sum(0)
        return d_pre, d_theta * theta, None  # chain rule through θ = exp(log θ)


class _Step(Function):
    @staticmethod
    def forward(ctx, pre: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
        theta = log_threshold.exp()
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g: Tensor):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        kernel = ((pre - theta).abs() < eps / 2).to(pre.dtype) / eps
        d_theta = -(kernel * g).sum(0)
        return None, d_theta * theta, None


def jumprelu(pre: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
    """JumpReLU with straight-through pseudo-derivatives for the threshold (Rajamanoharan et al. 2024)."""
    return _JumpReLU.apply(pre, log_threshold, bandwidth)


def step(pre: Tensor, log_threshold: Tensor, bandwidth: float) -> Tensor:
    """Heaviside ``pre > θ`` with the same pseudo-derivative (for the L0 penalty)."""
    return _Step.apply(pre, log_threshold, bandwidth)
