"""Causal effects by patching: exact sweeps (batched, prefix reuse) and attribution patching."""

from .kinds import KINDS, get_kind


def activation_patch(*args, **kwargs):
    """See :func:`interpbench.patching.activation.activation_patch`."""
    from .activation import activation_patch as _f

    return _f(*args, **kwargs)


def attribution_patch(*args, **kwargs):
    """See :func:`interpbench.patching.attribution.attribution_patch`."""
    from .attribution import attribution_patch as _f

    return _f(*args, **kwargs)


def attribution_vs_exact(*args, **kwargs):
    """See :func:`interpbench.patching.attribution.attribution_vs_exact`."""
    from .attribution import attribution_vs_exact as _f

    return _f(*args, **kwargs)


__all__ = ["KINDS", "get_kind", "activation_patch", "attribution_patch", "attribution_vs_exact"]
