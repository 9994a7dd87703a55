"""Devices and dtypes, resolved in one place. Nothing else in the package names a device."""

from __future__ import annotations

from typing import Optional, Union

import torch

from ..errors import InterpbenchError

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64,
}


def resolve_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``None``/``"auto"`` picks the first accelerator torch reports, else the CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InterpbenchError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InterpbenchError(f"device {device!r} asked for but torch sees no CUDA GPU; use --device cpu")
    return dev


def resolve_dtype(dtype: Union[str, torch.dtype, None] = None) -> torch.dtype:
    """``None`` means float32 (exact parity with reference implementations)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).replace("torch.", "").lower()
    if key not in _DTYPES:
        raise InterpbenchError(f"unknown dtype {dtype!r}: use one of float32, float16, bfloat16, float64")
    return _DTYPES[key]
