"""Read and write SAEs: our folder, SAELens's folder and sparsify's folder.

1. Ours: ``cfg.json`` (:class:`SAEConfig` fields plus ``"format": "interpbench"``) and
   ``weights.safetensors`` (W_enc [d_in d_sae], b_enc, W_dec [d_sae d_out], b_dec, and
   ``log_threshold`` for jumprelu / ``threshold`` for batchtopk). Written atomically.
2. SAELens (v6): ``cfg.json`` with ``architecture`` (``standard`` = our relu, ``topk``,
   ``jumprelu``, ``transcoder``, ``jumprelu_transcoder``), ``d_in``, ``d_sae``, ``k``
   (TopK with ``rescale_acts_by_decoder_norm`` loads with the norms folded in),
   ``apply_b_dec_to_input``, ``normalize_activations`` and ``metadata`` (``model_name``,
   ``hook_name``, ``hook_name_out``), and ``sae_weights.safetensors`` with W_enc [d_in
   d_sae], W_dec [d_sae d_in], b_enc, b_dec and ``threshold`` [d_sae] for JumpReLU. On
   export our activation scale is folded into the weights (``W_enc·s``, ``W_dec/s``,
   ``b_dec/s``), so the exported SAE takes raw activations; BatchTopK exports as JumpReLU
   with its global threshold, as SAELens does.
3. sparsify: ``cfg.json`` (``k``, ``num_latents`` or ``expansion_factor``,
   ``normalize_decoder``, ``d_in``, ``transcode``) and ``sae.safetensors`` with
   ``encoder.weight`` [d_sae d_in], ``encoder.bias``, ``W_dec`` [d_sae d_in], ``b_dec``: a TopK SAE.
4. :func:`load` detects the layout from the files present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

from ..errors import InterpbenchError
from ..paths import atomic_dir, atomic_write_text
from .arch import SAE
from .config import SAEConfig

FORMATS = ("interpbench", "saelens", "sparsify")


class SAEFormatError(InterpbenchError):
    """A folder that is not a readable SAE."""


def _save_tensors(tensors: dict, path: Path, metadata: Optional[dict] = None) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def _load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def save(sae: SAE, out: Union[str, Path], format: str = "interpbench") -> Path:
    """Write ``sae`` to the folder ``out`` (replaced atomically) in the given layout."""
    if format not in FORMATS:
        raise SAEFormatError(f"unknown SAE format {format!r}; use one of {FORMATS}")
    out = Path(out)
    if format == "interpbench" and out.is_dir():  # e.g. a training folder: keep its other files
        import tempfile

        fd, tmpw = tempfile.mkstemp(prefix=".weights.tmp-", dir=out)
        os.close(fd)
        try:
            _save_tensors(dict(sae.state_dict()), Path(tmpw))
            os.replace(tmpw, out / "weights.safetensors")
        finally:
            if os.path.exists(tmpw):
                os.unlink(tmpw)
        atomic_write_text(out / "cfg.json", json.dumps({"format": "interpbench", **sae.cfg.to_dict()}, indent=2))
        return out
    with atomic_dir(out) as tmp:
        if format == "interpbench":
            cfg = {"format": "interpbench", **sae.cfg.to_dict()}
            (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2))
            _save_tensors(dict(sae.state_dict()), tmp / "weights.safetensors")
        elif format == "saelens":
            _save_saelens(sae, tmp)
        else:
            _save_sparsify(sae, tmp)
    return out


def _folded(sae: SAE) -> dict:
    s_in, s_out = sae.cfg.act_scale, sae.cfg.out_scale
    return {"W_enc": sae.W_enc * s_in, "b_enc": sae.b_enc.clone(), "W_dec": sae.W_dec / s_out,
            "b_dec": sae.b_dec / s_out}


def _save_saelens(sae: SAE, tmp: Path) -> None:
    c = sae.cfg
    t = {k: v.detach() for k, v in _folded(sae).items()}
    arch = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}[c.arch]
    if c.arch == "jumprelu":
        t["threshold"] = sae.log_threshold.detach().exp()
    elif c.arch == "batchtopk":
        t["threshold"] = sae.threshold.detach().expand(c.d_sae).clone()
    if c.is_transcoder:
        if arch == "topk":
            raise SAEFormatError("SAELens has no TopK transcoder; save this one in the interpbench or sparsify format")
        arch = {"standard": "transcoder", "jumprelu": "jumprelu_transcoder"}[arch]
    cfg = {"architecture": arch, "d_in": c.d_in, "d_sae": c.d_sae, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": sae.apply_b_dec_to_input, "normalize_activations": "none",
           "reshape_activations": "none",
           "metadata": {"model_name": c.model, "hook_name": c.site, "hook_name_out": c.out_site,
                        "interpbench_arch": c.arch}}
    if arch == "topk":
        cfg.update(k=c.k, rescale_acts_by_decoder_norm=False)
    if c.is_transcoder:
        cfg["d_out"] = c.d_output
    (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2))
    _save_tensors(t, tmp / "sae_weights.safetensors")


def _save_sparsify(sae: SAE, tmp: Path) -> None:
    c = sae.cfg
    if c.arch != "topk":
        raise SAEFormatError(f"sparsify stores TopK SAEs only; this one is {c.arch} (save as interpbench or saelens)")
    f = _folded(sae)
    cfg = {"activation": "topk", "expansion_factor": max(1, c.d_sae // c.d_in), "normalize_decoder": c.normalize_decoder,
           "num_latents": c.d_sae, "k": c.k, "multi_topk": False, "skip_connection": False,
           "transcode": c.is_transcoder, "d_in": c.d_in}
    (tmp / "cfg.json").write_text(json.dumps(cfg, indent=2))
    _save_tensors({"encoder.weight": f["W_enc"].T, "encoder.bias": f["b_enc"], "W_dec": f["W_dec"], "b_dec": f["b_dec"]},
                  tmp / "sae.safetensors")


def detect_format(path: Union[str, Path]) -> str:
    path = Path(path)
    if not (path / "cfg.json").exists():
        raise SAEFormatError(f"{path} has no cfg.json; point at a folder written by interpbench, SAELens or sparsify")
    cfg = json.loads((path / "cfg.json").read_text())
    if cfg.get("format") == "interpbench" and (path / "weights.safetensors").exists():
        return "interpbench"
    if "architecture" in cfg and (path / "sae_weights.safetensors").exists():
        return "saelens"
    if (path / "sae.safetensors").exists():
        return "sparsify"
    raise SAEFormatError(f"{path}/cfg.json is not an interpbench, SAELens or sparsify SAE (weights file missing?)")


def load(path: Union[str, Path], device=None) -> SAE:
    """Load an SAE folder in any supported layout (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise SAEFormatError(f"SAE folder {path} does not exist")
    fmt = detect_format(path)
    cfg = json.loads((path / "cfg.json").read_text())
    if fmt == "interpbench":
        cfg.pop("format")
        sae = SAE(SAEConfig.from_dict(cfg))
        state = _load_tensors(path / "weights.safetensors")
    elif fmt == "saelens":
        sae, state = _from_saelens(cfg, _load_tensors(path / "sae_weights.safetensors"))
    else:
        sae, state = _from_sparsify(cfg, _load_tensors(path / "sae.safetensors"))
    try:
        sae.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise SAEFormatError(f"{path}: weights do not match cfg.json ({str(exc).splitlines()[0]})") from None
    sae.eval()
    return sae.to(device) if device is not None else sae


def _from_saelens(cfg: dict, t: dict) -> tuple[SAE, dict]:
    arch = cfg.get("architecture")
    meta = cfg.get("metadata") or {}
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise SAEFormatError(f"SAELens normalize_activations={cfg['normalize_activations']!r} is not supported; "
                             f"fold the scaling into the weights in SAELens first")
    ours = {"standard": "relu", "transcoder": "relu", "topk": "topk", "jumprelu": "jumprelu",
            "jumprelu_transcoder": "jumprelu"}.get(arch)
    if ours is None:
        raise SAEFormatError(f"SAELens architecture {arch!r} is not supported; use standard, topk, jumprelu "
                             f"or (jumprelu_)transcoder")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    d_out = int(cfg.get("d_out", d_in))
    out_site = meta.get("hook_name_out") if "transcoder" in arch else None
    if "transcoder" in arch and out_site is None:
        out_site = "unknown"
    sc = SAEConfig(arch=ours, d_in=d_in, d_sae=d_sae, d_out=d_out if d_out != d_in or out_site else None,
                   k=cfg.get("k"), normalize_decoder=ours != "relu", model=meta.get("model_name"),
                   site=meta.get("hook_name"), out_site=out_site)
    sae = SAE(sc)
    if bool(cfg.get("apply_b_dec_to_input", True)) != sae.apply_b_dec_to_input:
        raise SAEFormatError(f"SAELens apply_b_dec_to_input={cfg.get('apply_b_dec_to_input')} does not match a "
                             f"{'transcoder' if sc.is_transcoder else 'plain SAE'}")
    state = {k: t[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if ours == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
        # SAELens scales pre-activations by ‖W_dec[i]‖ and divides them out again when decoding;
        # folding the norms into the weights (as its fold_W_dec_norm does) gives the same function
        n = state["W_dec"].norm(dim=-1)
        state = {"W_enc": state["W_enc"] * n, "b_enc": state["b_enc"] * n, "W_dec": state["W_dec"] / n[:, None],
                 "b_dec": state["b_dec"]}
    if ours == "jumprelu":
        state["log_threshold"] = t["threshold"].clamp_min(1e-12).log()
    return sae, state


def _from_sparsify(cfg: dict, t: dict) -> tuple[SAE, dict]:
    if cfg.get("skip_connection") or cfg.get("multi_topk"):
        raise SAEFormatError("sparsify SAEs with skip_connection or multi_topk are not supported")
    if cfg.get("activation", "topk") != "topk":
        raise SAEFormatError(f"sparsify activation {cfg.get('activation')!r} is not supported (topk only)")
    W = t["encoder.weight"]  # [d_sae d_in]
    d_sae, d_in = W.shape
    d_out = t["W_dec"].shape[1]
    if cfg.get("d_in") not in (None, d_in):
        raise SAEFormatError(f"sparsify cfg.json says d_in={cfg['d_in']} but the weights have {d_in}")
    transcode = bool(cfg.get("transcode", False))
    sc = SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, d_out=d_out if transcode else None, k=int(cfg["k"]),
                   normalize_decoder=bool(cfg.get("normalize_decoder", True)),
                   out_site="unknown" if transcode else None)
    return SAE(sc), {"W_enc": W.T.contiguous(), "b_enc": t["encoder.bias"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}


__all__ = ["save", "load", "detect_format", "FORMATS", "SAEFormatError"]
