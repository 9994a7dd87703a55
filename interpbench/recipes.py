"""Recipes: flat YAML files that name a recipe kind and its settings, run into a run dir.

1. ``yaml.safe_load`` (through ``yaml.compose`` so every key keeps its line number); no
   exec, no eval. The ``kind`` key picks a registered :class:`RecipeKind`.
2. Every other key must be a field of that kind's config dataclass; unknown keys and
   wrong types are errors naming the file and line. ``--set key=value`` overrides are
   parsed as YAML scalars and validated the same way.
3. The validated config (frozen dataclass) is hashed (sha256 of canonical JSON) into the
   run id ``<recipe>-<hash12>``; a run dir that already holds ``result.json`` is served
   from the cache unless ``force``.
4. The kind's ``run(config)`` returns a :class:`RunOutput`; the runner writes
   ``result.json`` (schema_version, config, model, task, method, metric, ablation,
   scores, timings, files), ``tensors.safetensors`` and figures (HTML, plus PNG when
   kaleido is installed) into a temp dir and renames it into place — a failed run
   leaves nothing under ``cache/runs/``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml

from .errors import ConfigError
from .paths import atomic_dir, cache_dir

RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunOutput:
    """What a recipe kind returns; the runner turns it into a run directory."""

    result: dict
    """Kind-specific fields of result.json: kind, method, metric, ablation, task, model, scores, ..."""
    tensors: dict = field(default_factory=dict)
    """Name -> tensor, saved to tensors.safetensors."""
    figures: dict = field(default_factory=dict)
    """Name -> plotly Figure, saved as NAME.html (and NAME.png with kaleido)."""
    files: dict = field(default_factory=dict)
    """Relative file name -> text content (e.g. graph.json)."""
    summary: str = ""
    """A few lines printed after the run."""


@dataclass(frozen=True)
class RecipeKind:
    name: str
    config_cls: type
    run: Callable[[Any], RunOutput]
    doc: str = ""


RECIPE_KINDS: dict[str, RecipeKind] = {}


def register_recipe_kind(name: str, config_cls: type):
    """Decorator: ``@register_recipe_kind("activation_patching", PatchingConfig) def run(cfg): ...``."""

    def deco(fn):
        if name in RECIPE_KINDS:
            raise ConfigError(f"recipe kind {name!r} is registered twice")
        RECIPE_KINDS[name] = RecipeKind(name, config_cls, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def _load_kinds() -> None:
    from . import recipe_kinds  # noqa: F401  (registers the built-in kinds)


# -- parsing and validation -------------------------------------------------------------
def _check_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is Union:
        return any(_check_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and all(_check_type(v, args[0]) for v in value) if args else isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build_config(kind: RecipeKind, values: dict, lines: Optional[dict] = None, source: str = "recipe") -> Any:
    """Validate ``values`` against the kind's dataclass; errors name ``source:line``."""
    hints = typing.get_type_hints(kind.config_cls)
    fields = {f.name: f for f in dataclasses.fields(kind.config_cls)}
    lines = lines or {}
    for key, value in values.items():
        where = f"{source}:{lines[key]}" if key in lines else source
        if key not in fields:
            raise ConfigError(f"{where}: unknown field {key!r} for recipe kind {kind.name!r}; "
                              f"known fields: {', '.join(sorted(fields))}")
        if not _check_type(value, hints[key]):
            raise ConfigError(f"{where}: field {key!r} must be {_type_name(hints[key])}, got {value!r}")
    try:
        return kind.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_recipe(path: Union[str, Path], overrides: Optional[dict] = None) -> tuple[RecipeKind, Any, str]:
    """Read a recipe file into ``(kind, config, recipe name)``."""
    _load_kinds()
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"recipe {path} does not exist; the shipped ones are in recipes/")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a flat mapping of key: value")
    lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if node is not None else {}
    kind_name = data.pop("kind", None)
    if kind_name not in RECIPE_KINDS:
        raise ConfigError(f"{path}:{lines.get('kind', 1)}: unknown or missing kind {kind_name!r}; "
                          f"known kinds: {', '.join(sorted(RECIPE_KINDS))}")
    kind = RECIPE_KINDS[kind_name]
    for key, value in (overrides or {}).items():
        data[key] = value
        lines.pop(key, None)
    return kind, build_config(kind, data, lines, str(path)), path.stem


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: use key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def config_hash(kind: str, config: Any) -> str:
    payload = json.dumps({"kind": kind, **dataclasses.asdict(config)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# -- running -----------------------------------------------------------------------------
def runs_dir() -> Path:
    return cache_dir() / "runs"


def _write_figures(figures: dict, out: Path) -> list[str]:
    names = []
    try:
        import kaleido  # noqa: F401

        png = True
    except ImportError:
        png = False
    for name, fig in figures.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory")
        names.append(f"{name}.html")
        if png:
            try:
                fig.write_image(out / f"{name}.png")
                names.append(f"{name}.png")
            except Exception:  # noqa: BLE001 - kaleido needs a browser; HTML is the record
                pass
    return names


def execute(kind: RecipeKind, config: Any, recipe: str, force: bool = False,
            device: Optional[str] = None, echo: Callable[[str], None] = print) -> Path:
    """Run (or serve from cache) and return the run directory."""
    if device is not None and hasattr(config, "device"):
        config = dataclasses.replace(config, device=device)
    run_id = f"{recipe}-{config_hash(kind.name, config)}"
    final = runs_dir() / run_id
    if (final / "result.json").exists() and not force:
        echo(f"cached: {run_id} (use --force to recompute)")
        return final
    t0 = time.perf_counter()
    out = kind.run(config)
    elapsed = time.perf_counter() - t0
    with atomic_dir(final) as tmp:
        files = dict(out.result.get("files") or {})
        files["figures"] = list(files.get("figures") or []) + _write_figures(out.figures, tmp)
        if out.tensors:
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in out.tensors.items()}, str(tmp / "tensors.safetensors"))
            files["tensors"] = "tensors.safetensors"
        for rel, text in out.files.items():
            (tmp / rel).write_text(text)
            files.setdefault(Path(rel).stem, rel)
        result = {"schema_version": RESULT_SCHEMA_VERSION, "recipe": recipe, "run_id": run_id,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "config": {"kind": kind.name, **json.loads(json.dumps(dataclasses.asdict(config), default=str))},
                  **out.result, "timings": {"total_s": round(elapsed, 3), **out.result.get("timings", {})},
                  "files": files}
        (tmp / "result.json").write_text(json.dumps(result, indent=1, default=str))
    if out.summary:
        echo(out.summary)
    return final


def run_recipe_file(path: Union[str, Path], overrides: Optional[dict] = None, device: Optional[str] = None,
                    force: bool = False, echo: Callable[[str], None] = print) -> Path:
    kind, config, recipe = parse_recipe(path, overrides)
    return execute(kind, config, recipe, force=force, device=device, echo=echo)
