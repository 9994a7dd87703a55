"""Ray scale-out with the same ledger semantics as local runs.

1. ``ray.init(address)`` (``local`` starts a private local instance with ``num_cpus=workers``),
   unless Ray is already initialised in this process.
2. Pending features are split into ``workers`` round-robin chunks; each chunk is one Ray
   task that builds its own :class:`~.job.Pipeline` (reading the shared harvest file) and its
   own ledger connection, and runs the features with the same stage/attempt logic.
3. Wait for every task; a task that raised re-raises here (its features stay pending or
   failed in the ledger, so ``--resume`` picks them up). Ray is shut down if we started it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InterpbenchError


def _chunk_worker(cfg_dict: dict, directory: str, features: list[int]) -> dict:
    from .config import LabelConfig
    from .job import Pipeline
    from .ledger import Ledger

    cfg = LabelConfig.from_dict(cfg_dict)
    pipe = Pipeline(cfg, Path(directory))
    ledger = Ledger(Path(directory) / "ledger.sqlite")
    out: dict = {}
    try:
        for f in features:
            s = pipe.run_feature(ledger, f)
            out[s] = out.get(s, 0) + 1
    finally:
        ledger.close()
    return out


def run_on_ray(cfg, directory: Path, pending: list[int], address: str, workers: int) -> dict:
    try:
        import ray
    except ImportError:
        raise InterpbenchError("--ray needs the ray package: pip install -c constraints.txt ray") from None
    started = False
    if not ray.is_initialized():
        kw = dict(num_cpus=workers, include_dashboard=False, log_to_driver=False) if address == "local" \
            else dict(address=address, log_to_driver=False)
        try:
            ray.init(**kw)
        except Exception as exc:  # noqa: BLE001 - connection failures come in many types
            raise InterpbenchError(f"cannot start/connect to Ray at {address!r}: {exc}") from None
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_chunk_worker)
        chunks = [pending[i::workers] for i in range(workers) if pending[i::workers]]
        results = ray.get([task.remote(cfg.to_dict(), str(directory), c) for c in chunks])
        total: dict = {}
        for r in results:
            for k, v in r.items():
                total[k] = total.get(k, 0) + v
        return total
    finally:
        if started:
            ray.shutdown()
