"""Run a labelling recipe: flat YAML whose keys are :class:`~.config.LabelConfig` fields plus
``job``, ``resume``, ``workers`` and ``ray`` (see ``recipes/label_*.yaml``).

1. ``yaml.safe_load`` the file (or take a dict); ``kind: label`` is accepted and dropped.
2. Split the run options (``job``, ``resume``, ``workers``, ``ray``, ``progress``) from the config
   fields; unknown keys are a :class:`~interpbench.errors.ConfigError` naming them.
3. :func:`~.job.run_job` and return its :class:`~.job.JobSummary`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import ConfigError
from .config import LabelConfig

RUN_KEYS = ("job", "resume", "workers", "ray", "progress")


def run_recipe(recipe: Union[str, Path, dict]):
    import yaml

    from .job import run_job

    if isinstance(recipe, dict):
        d = dict(recipe)
    else:
        path = Path(recipe)
        if not path.exists():
            raise ConfigError(f"recipe {path} does not exist")
        d = yaml.safe_load(path.read_text()) or {}
        if not isinstance(d, dict):
            raise ConfigError(f"recipe {path} must be a mapping of keys to values")
    kind = d.pop("kind", "label")
    if kind != "label":
        raise ConfigError(f"recipe kind {kind!r} is not a labelling recipe (kind: label)")
    run = {k: d.pop(k) for k in RUN_KEYS if k in d}
    cfg = LabelConfig.from_dict(d)
    return run_job(cfg, **run)
