"""Run a labelling job: harvest once, then examples → explanation → scores per feature.

1. Resolve the job (``--job`` or :meth:`LabelConfig.job_id`) to ``cache/labels/JOB/``; open its
   ledger. A ledger with another config is refused (:class:`~.ledger.LedgerMismatch`); an
   existing job needs ``resume=True``.
2. Pre-flight: build the source, explainer and scorers; ping every HTTP endpoint (an
   unreachable one fails here, before any work).
3. Harvest (:mod:`.harvest`) unless the ledger says it is done; the file is written
   atomically, then the ledger's ``harvest`` key is set.
4. For each pending feature, stages in order, each skipped when already in the ledger and
   recorded in its own transaction when finished: ``examples`` (dead latents are marked
   ``dead`` here, too sparse / dense ones ``skipped``, and go no further), ``explanation``, ``score:<name>`` per scorer; then
   the feature is marked ``done``. An exception counts an attempt; at ``max_attempts`` the
   feature is marked ``failed`` with the error.
5. Features run on ``workers`` threads (one ledger connection each; model forwards are
   serialised by locks — on this 2-core machine threads mostly overlap I/O with compute) or
   on a Ray cluster (``ray="local"`` or an address): pending features are split into chunks,
   each Ray task builds its own pipeline and ledger connection — the same ledger semantics.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import InterpbenchError
from .config import LabelConfig
from .examples import FeatureExamples, sample_examples
from .harvest import Harvest, corpus_docs, harvest
from .ledger import Ledger, job_dir

STAGE_DELAY_ENV = "INTERPBENCH_LABEL_STAGE_DELAY"
"""Seconds to sleep after each recorded stage (testing knob for kill/resume tests)."""


class Pipeline:
    """Source, harvest, explainer and scorers of one job, in one process."""

    def __init__(self, cfg: LabelConfig, directory: Path, source=None):
        from .explainers import build_explainer
        from .scorers import LLM_SCORERS, build_scorer
        from .sources import build_source

        self.cfg, self.dir = cfg, Path(directory)
        self.source = source if source is not None else build_source(cfg.source)
        self.model_lock = threading.Lock()
        self.explainer = build_explainer(cfg.explainer, cfg.llm_model, cfg.max_new_tokens)
        self.client = None
        if any(s in LLM_SCORERS for s in cfg.scorers):
            from .llm_base import build_client

            ex_client = getattr(self.explainer, "client", None)
            self.client = ex_client if ex_client is not None and cfg.judge == cfg.explainer \
                else build_client(cfg.judge, cfg.llm_model)
        self.scorers = {s: build_scorer(s, client=self.client, source=self.source, lock=self.model_lock, seed=cfg.seed)
                        for s in cfg.scorers}
        self._harvest: Optional[Harvest] = None
        self._tok_cache: dict[int, str] = {}

    def preflight(self) -> None:
        for c in {id(x): x for x in (getattr(self.explainer, "client", None), self.client) if x is not None}.values():
            if hasattr(c, "check"):
                c.check()

    @property
    def harvest_path(self) -> Path:
        return self.dir / "harvest.pt"

    def harvest(self, progress=None) -> Harvest:
        if self._harvest is None:
            if self.harvest_path.exists():
                self._harvest = Harvest.load(self.harvest_path)
            else:
                docs, label = corpus_docs(self.cfg.corpus, self.cfg.n_docs)
                with self.model_lock:
                    self._harvest = harvest(self.source, list(self.cfg.feature_range), docs, label, self.cfg.ctx_len,
                                            self.cfg.windows_per_doc, self.cfg.harvest_batch, progress)
                self._harvest.save(self.harvest_path)
        return self._harvest

    def token_strs(self, window: int) -> list[str]:
        tok = self.source.model.tokenizer
        out = []
        for i in self.harvest().tokens[window].tolist():
            if i not in self._tok_cache:
                self._tok_cache[i] = tok.decode([i])
            out.append(self._tok_cache[i])
        return out

    def process(self, ledger: Ledger, feature: int, attempt: int = 0) -> str:
        """Run the missing stages of one feature; returns its final status."""
        delay = float(os.environ.get(STAGE_DELAY_ENV, "0") or 0)
        done = ledger.stages(feature)
        if "examples" in done:
            ex = FeatureExamples.from_dict(done["examples"])
        else:
            ex = sample_examples(self.harvest(), feature, self.cfg, self.token_strs)
            ledger.put_stage(feature, "examples", ex.to_dict())
            time.sleep(delay)
        if ex.dead:
            status = "dead" if ex.dead.startswith("never activates") else "skipped"
            ledger.set_status(feature, status, ex.dead)
            return status
        if "explanation" in done:
            text = done["explanation"]["text"]
        else:
            e = self.explainer.explain(ex, self.source, seed=self.cfg.seed * 1_000_003 + feature * 7 + attempt)
            ledger.put_stage(feature, "explanation", e.to_dict())
            text = e.text
            time.sleep(delay)
        for name, scorer in self.scorers.items():
            if f"score:{name}" not in done:
                ledger.put_stage(feature, f"score:{name}", scorer.score(text, ex, self.cfg.seed).to_dict())
                time.sleep(delay)
        ledger.set_status(feature, "done")
        return "done"

    def run_feature(self, ledger: Ledger, feature: int) -> str:
        attempt = 0
        while True:
            try:
                return self.process(ledger, feature, attempt)
            except InterpbenchError as exc:
                err = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - any failure is recorded, never dropped
                err = f"{type(exc).__name__}: {exc}"
            attempt += 1
            if ledger.record_failure(feature, err, self.cfg.max_attempts) == "failed":
                return "failed"


@dataclass(frozen=True)
class JobSummary:
    """What a run of a job did."""

    job: str
    """Job name (folder under cache/labels)."""
    counts: dict
    """Feature counts by status after the run."""
    processed: int
    """Features this run finished (done, dead or failed)."""
    seconds: float
    """Wall time of the feature stage (harvest excluded)."""
    harvest_seconds: float
    """Wall time of the harvest (0 when reused)."""
    llm_usage: dict
    """Token/cost accounting of the LLM clients in this process."""

    @property
    def features_per_minute(self) -> float:
        return 60.0 * self.processed / self.seconds if self.seconds > 0 else float("nan")


def _check_existing(cfg: LabelConfig, name: str, path: Path, resume: bool) -> None:
    """Refuse a ledger with another config (naming the difference), or an existing job without resume."""
    if not path.exists():
        return
    ledger = Ledger(path)
    try:
        if ledger.config() is None:
            return
        ledger.init(cfg, cfg.feature_range)  # raises LedgerMismatch naming the difference
        if not resume:
            c = ledger.counts()
            raise InterpbenchError(f"job {name!r} already exists ({c['done']} done, {c['pending']} pending); "
                                   f"pass --resume to continue it or --job NEW for a fresh one")
    finally:
        ledger.close()


def run_job(cfg: LabelConfig, job: Optional[str] = None, resume: bool = False, workers: int = 1,
            ray: Optional[str] = None, progress: bool = True, source=None) -> JobSummary:
    """Run (or resume) a labelling job; see the module docstring."""
    name = job or cfg.job_id()
    d = job_dir(name)
    _check_existing(cfg, name, d / "ledger.sqlite", resume)
    pipe = Pipeline(cfg, d, source)
    pipe.preflight()  # an unreachable endpoint fails here, before the job is created
    ledger = Ledger(d / "ledger.sqlite")
    try:
        ledger.init(cfg, cfg.feature_range)
        t0 = time.time()
        if ledger.get_meta("harvest") is None:
            from tqdm.auto import tqdm

            with tqdm(total=None, unit="window", desc="harvest", disable=not progress) as bar:
                def tick(done, total):
                    bar.total = total
                    bar.update(done - bar.n)
                pipe.harvest(progress=tick)
            ledger.set_meta("harvest", "done")
        t1 = time.time()
        pending = ledger.pending()
        if ray:
            from .scale import run_on_ray

            run_on_ray(cfg, d, pending, ray, max(1, workers))
        else:
            _run_local(pipe, ledger, pending, workers, progress)
        counts = ledger.counts()
        usage = {}
        for c in {id(x): x for x in (getattr(pipe.explainer, "client", None), pipe.client) if x is not None}.values():
            usage[c.name] = c.usage.snapshot()
        return JobSummary(name, counts, len(pending) - counts["pending"], time.time() - t1,
                          (t1 - t0) if t1 - t0 > 0.05 else 0.0, usage)
    finally:
        ledger.close()


def _run_local(pipe: Pipeline, ledger: Ledger, pending: list[int], workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), unit="feat", disable=not progress, desc="labelling")
    t0 = time.time()
    lock = threading.Lock()

    def tick():
        with lock:
            bar.update(1)
            bar.set_postfix_str(f"{60 * bar.n / max(time.time() - t0, 1e-9):.1f} feat/min")

    if workers <= 1:
        for f in pending:
            pipe.run_feature(ledger, f)
            tick()
    else:
        local = threading.local()
        conns: list[Ledger] = []

        def work(f: int):
            if not hasattr(local, "ledger"):
                local.ledger = Ledger(ledger.path)
                conns.append(local.ledger)
            pipe.run_feature(local.ledger, f)
            tick()

        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(work, pending))
        finally:
            for c in conns:
                c.close()
    bar.close()
