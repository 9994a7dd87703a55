"""Loading models and mapping their sites."""

from .devices import resolve_device, resolve_dtype
from .loading import BUNDLED, DEFAULT_MODEL, load_model, wrap_hf, wrap_module
from .model import HookedModel, ModelConfig

__all__ = ["BUNDLED", "DEFAULT_MODEL", "HookedModel", "ModelConfig", "load_model", "resolve_device",
           "resolve_dtype", "wrap_hf", "wrap_module"]
