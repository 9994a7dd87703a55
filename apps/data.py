"""Reading run directories for the app, safely.

The app only ever reads files that live inside the runs directory it was started on.
Every path that comes from a URL or from a file on disk goes through the same steps:

1. A run id must be one plain path component (letters, digits, ``._-``; no ``/``, no
   ``..``, not absolute) — anything else is rejected before touching the disk.
2. ``<runs>/<run_id>`` is resolved (symlinks followed) and must still lie inside the
   resolved runs directory; a symlink that points out of it is rejected.
3. A file named inside ``result.json`` (``files.graph`` ...) must be a relative path that
   resolves inside the resolved run directory (again: no ``..``, no absolute path, no
   symlink out).
4. Files are read with a byte limit checked before reading (``stat``) and while reading
   (read at most limit + 1 bytes), so an oversized or growing file cannot exhaust memory.
5. JSON that does not parse, or has the wrong shape, raises :class:`AppDataError` with one
   line naming the file and the problem; pages show that line instead of a traceback.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from interpbench.errors import InterpbenchError

MiB = 1024 * 1024
RESULT_MAX_BYTES = 16 * MiB
"""Largest ``result.json`` the app reads."""
GRAPH_MAX_BYTES = 64 * MiB
"""Default largest ``graph.json`` / ``features.jsonl`` the app reads (``create_app(max_file_mb=...)``)."""

_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._\-]{0,199}$")


class AppDataError(InterpbenchError):
    """A run, file or id the app cannot show; the message is shown in the page as is."""


@dataclass(frozen=True)
class RunSummary:
    """One row of the Runs page."""

    run_id: str
    """Directory name under the runs directory."""
    recipe: str
    """Recipe name (``result.json`` ``recipe``)."""
    kind: str
    """Result kind (activation_patching, circuit, sae_labels, ...)."""
    model: str
    """Model name."""
    task: str
    """Task name and size, e.g. ``ioi (n=32)``."""
    method: str
    """Method that made the scores."""
    metric: str
    """Metric name."""
    created: str
    """ISO timestamp the run was written."""
    has_graph: bool
    """The run has a causal graph file the Graph page can open."""
    has_scores: bool
    """The run has score arrays the Patching page can draw."""
    has_features: bool
    """The run has ``features.jsonl`` for the Feature page."""
    error: Optional[str] = None
    """Why ``result.json`` could not be read (the row is still listed), or None."""
    has_labels: bool = False
    """The run is a dissection with unit labels (``files.labels`` / ``labels.json``) for the Units page."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def check_run_id(run_id: Any) -> str:
    """Return ``run_id`` if it is one safe path component, else raise :class:`AppDataError`."""
    if not isinstance(run_id, str) or not run_id:
        raise AppDataError("no run selected; pick one on the Runs page")
    if not _RUN_ID.match(run_id) or ".." in run_id:
        shown = run_id if len(run_id) < 80 else run_id[:77] + "..."
        raise AppDataError(f"invalid run id {shown!r}: a run id is a directory name under the runs "
                           f"directory (letters, digits, '.', '_', '-'); pick one on the Runs page")
    return run_id


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def resolve_run(runs_dir: Path, run_id: Any) -> Path:
    """The resolved directory of ``run_id``; raises AppDataError for bad or unknown ids."""
    run_id = check_run_id(run_id)
    root = Path(runs_dir).resolve()
    path = (root / run_id).resolve()
    if not _inside(path, root) or path == root:
        raise AppDataError(f"run {run_id!r} points outside the runs directory; the app only reads runs under {root}")
    if not path.is_dir():
        raise AppDataError(f"no run named {run_id!r} under {root}; open the Runs page to pick one")
    return path


def run_file(run_dir: Path, name: Any, what: str = "file") -> Path:
    """A file inside ``run_dir`` (already resolved) named by a relative path; never outside it."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise AppDataError(f"{what} name {name!r} in {run_dir.name}/result.json is not a file name")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise AppDataError(f"{what} {name!r} in {run_dir.name}/result.json must be a path inside the run directory")
    path = (run_dir / rel).resolve()
    if not _inside(path, run_dir):
        raise AppDataError(f"{what} {name!r} of run {run_dir.name!r} points outside the run directory; refusing to read it")
    return path


def read_bytes_limited(path: Path, limit: int, what: str) -> bytes:
    """Read a file of at most ``limit`` bytes; raise AppDataError if missing or too big."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AppDataError(f"{what} not found ({path.name} is missing from run {path.parent.name!r})") from None
    except OSError as exc:
        raise AppDataError(f"{what} cannot be read: {exc.strerror}") from None
    if size > limit:
        raise AppDataError(f"{what} is {size / MiB:.1f} MiB, over the app's limit of {limit / MiB:.1f} MiB; "
                           f"prune it before viewing or start the app with a larger --max-file-mb")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise AppDataError(f"{what} cannot be read: {exc.strerror}") from None
    if len(data) > limit:
        raise AppDataError(f"{what} grew past the app's limit of {limit / MiB:.1f} MiB while reading")
    return data


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON number {name}")


def parse_json(data: bytes, what: str) -> Any:
    """Parse JSON bytes, turning every failure into one readable line."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise AppDataError(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        unbalanced = data.count(b"{") + data.count(b"[") > data.count(b"}") + data.count(b"]")
        hint = " (the file looks truncated)" if unbalanced or exc.pos >= len(data.rstrip()) - 1 else ""
        raise AppDataError(f"{what} is not valid JSON{hint}: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise AppDataError(f"{what} is nested too deeply to be a result file") from None


def load_result(runs_dir: Path, run_id: Any) -> dict:
    """``result.json`` of a run as a dict (checked: an object with ``kind`` and ``schema_version``)."""
    run_dir = resolve_run(runs_dir, run_id)
    path = run_file(run_dir, "result.json", "result.json")
    what = f"{run_dir.name}/result.json"
    result = parse_json(read_bytes_limited(path, RESULT_MAX_BYTES, what), what)
    if not isinstance(result, dict):
        raise AppDataError(f"{what} must hold a JSON object, not {type(result).__name__}")
    version = result.get("schema_version")
    if version != 1:
        raise AppDataError(f"{what} has schema_version {version!r}; this app reads schema_version 1")
    return result


def graph_file_name(result: dict) -> Optional[str]:
    """The graph file named by a result (``files.graph``), or None."""
    files = result.get("files")
    if isinstance(files, dict) and isinstance(files.get("graph"), str):
        return files["graph"]
    return None


def graph_path(runs_dir: Path, run_id: Any) -> Path:
    """Resolved path of a run's graph file (``files.graph`` or ``graph.json``); checked to be inside the run."""
    run_dir = resolve_run(runs_dir, run_id)
    name = "graph.json"
    try:
        result = load_result(runs_dir, run_id)
        name = graph_file_name(result) or name
    except AppDataError:
        if not (run_dir / "graph.json").exists():
            raise
    return run_file(run_dir, name, "graph file")


def load_graph_json(runs_dir: Path, run_id: Any, max_bytes: int = GRAPH_MAX_BYTES) -> Any:
    """The raw parsed graph JSON of a run (validated later by :mod:`apps.graph_data`)."""
    path = graph_path(runs_dir, run_id)
    what = f"graph file {Path(run_id).name}/{path.name}"
    return parse_json(read_bytes_limited(path, max_bytes, what), what)


def load_features(runs_dir: Path, run_id: Any, max_bytes: int = GRAPH_MAX_BYTES) -> tuple[list[dict], list[str]]:
    """Feature records of ``<run>/features.jsonl`` (or ``features.json``) and a list of problems.

    Malformed lines are skipped and reported (never silently): each problem is one line.
    """
    run_dir = resolve_run(runs_dir, run_id)
    jsonl = run_file(run_dir, "features.jsonl", "features file")
    problems: list[str] = []
    if jsonl.exists():
        raw = read_bytes_limited(jsonl, max_bytes, f"{run_dir.name}/features.jsonl")
        records = []
        for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"features.jsonl line {i}: not valid JSON ({exc.msg})")
                continue
            records.append(rec)
    else:
        path = run_file(run_dir, "features.json", "features file")
        if not path.exists():
            raise AppDataError(f"run {run_dir.name!r} has no features.jsonl; the Feature page shows SAE feature-label runs")
        data = parse_json(read_bytes_limited(path, max_bytes, f"{run_dir.name}/features.json"), "features.json")
        records = data.get("features", []) if isinstance(data, dict) else data
        if not isinstance(records, list):
            raise AppDataError("features.json must hold a list of feature records")
    good = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not isinstance(rec.get("feature"), int) or isinstance(rec.get("feature"), bool):
            problems.append(f"feature record {i}: needs an integer 'feature' field")
            continue
        good.append(rec)
    return good, problems


def _text(x: Any, default: str = "") -> str:
    return x if isinstance(x, str) else default


def summarize(run_id: str, run_dir: Path, result: dict) -> RunSummary:
    """Runs-page row of one parsed ``result.json``."""
    # dissection runs write model / task / metric as plain strings
    model = result.get("model") if isinstance(result.get("model"), dict) else {"name": result.get("model")}
    task = result.get("task") if isinstance(result.get("task"), dict) else {"task": result.get("task")}
    metric = result.get("metric") if isinstance(result.get("metric"), dict) else {"name": result.get("metric")}
    task_txt = _text(task.get("task"))
    if isinstance(task.get("n"), int):
        task_txt += f" (n={task['n']})"
    scores = result.get("scores")
    return RunSummary(
        run_id=run_id, recipe=_text(result.get("recipe")), kind=_text(result.get("kind")),
        model=_text(model.get("name")), task=task_txt, method=_text(result.get("method")),
        metric=_text(metric.get("name")), created=_text(result.get("created")),
        has_graph=graph_file_name(result) is not None or (run_dir / "graph.json").is_file(),
        has_scores=isinstance(scores, dict) and len(scores) > 0,
        has_features=(run_dir / "features.jsonl").is_file() or (run_dir / "features.json").is_file(),
        has_labels=_has_labels(run_dir, result))


def _has_labels(run_dir: Path, result: dict) -> bool:
    files = result.get("files") if isinstance(result.get("files"), dict) else {}
    if isinstance(files.get("labels"), str):
        return True
    return result.get("kind") == "dissection" and (run_dir / "labels.json").is_file()


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory under ``runs_dir`` (newest first); unreadable ones carry ``error``."""
    root = Path(runs_dir).resolve()
    if not root.is_dir():
        raise AppDataError(f"runs directory {root} does not exist; run a recipe first "
                           f"(interpbench run recipes/<name>.yaml) or start the app with --runs DIR")
    rows = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not _RUN_ID.match(entry.name):
            continue
        try:
            run_dir = resolve_run(root, entry.name)
        except AppDataError:
            continue  # symlinks out of the runs dir and stray files are not runs
        if not (run_dir / "result.json").exists() and not (run_dir / "graph.json").exists():
            continue
        try:
            rows.append(summarize(entry.name, run_dir, load_result(root, entry.name)))
        except AppDataError as exc:
            rows.append(RunSummary(entry.name, "", "", "", "", "", "", "", (run_dir / "graph.json").is_file(),
                                   False, False, error=str(exc)))
    rows.sort(key=lambda r: (r.created, r.run_id), reverse=True)
    return rows


def finite(x: Any) -> Optional[float]:
    """``x`` as a finite float, or None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None
