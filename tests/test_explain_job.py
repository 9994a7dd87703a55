"""Labelling jobs end to end on synthetic latents (tiny model's tokenizer, real corpus) with the
judge behind a real HTTP server: ledger semantics, refusal of other configs, failures,
kill -9 + resume, thread workers, Ray, and the CLI. The kill -9 and Ray tests (subprocesses,
a Ray instance) are marked ``slow``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from interpbench.errors import InterpbenchError
from interpbench.explain.config import LabelConfig
from interpbench.explain.export import feature_records
from interpbench.explain.examples import FeatureExamples
from interpbench.explain.fake_server import FakeServer, matches
from interpbench.explain.metrics import auroc
from interpbench.explain.scorers.detection import plain
from interpbench.explain.job import run_job
from interpbench.explain.ledger import Ledger, LedgerMismatch, job_dir


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: several times faster than two on this shared 2-core CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def server():
    with FakeServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPBENCH_CACHE", str(tmp_path / "cache"))
    models = os.path.abspath("cache/models")
    (tmp_path / "cache").mkdir()
    if os.path.isdir(models):
        os.symlink(models, tmp_path / "cache" / "models")
    return tmp_path / "cache"


def _cfg(path, url, **kw):
    base = dict(source=f"synthetic:{path}", features="0:6", explainer="tokens", scorers=("detection",),
                judge=f"openai:{url}", n_docs=24, n_score_pos=4, n_score_neg=4)
    return LabelConfig(**{**base, **kw})


def _records(job):
    led = Ledger(job_dir(job) / "ledger.sqlite")
    try:
        return feature_records(led)
    finally:
        led.close()


def _results(job):
    """Records without token counts (a rerun is served from the HTTP response cache: 0 tokens billed)."""
    recs = _records(job)
    for r in recs:
        for v in r["scores"].values():
            v.pop("prompt_tokens"), v.pop("completion_tokens")
    return recs


def test_job_runs_resumes_and_refuses_other_configs(tiny_llama_path, server):
    cfg = _cfg(tiny_llama_path, server.url)
    s = run_job(cfg, job="j", progress=False)
    assert s.counts == {"done": 5, "failed": 0, "dead": 1, "skipped": 0, "pending": 0} and s.processed == 6
    recs = {r["feature"]: r for r in _records("j")}
    assert recs[5]["status"] == "dead" and recs[5]["explanation"] is None and "never activates" in recs[5]["dead"]
    digits = recs[0]
    assert digits["explainer"] == "baseline:top-tokens" and digits["explainer_kind"] == "baseline"
    # exact: the rule judge says P(yes)=0.9 when a named token occurs in the window, else 0.1
    led = Ledger(job_dir("j") / "ledger.sqlite")
    ex = FeatureExamples.from_dict(led.stages(0)["examples"])
    led.close()
    p = [0.9 if matches(digits["explanation"], plain(r)) else 0.1 for r in ex.score_pos + ex.score_neg]
    assert digits["detection"] == auroc([1] * len(ex.score_pos) + [0] * len(ex.score_neg), p)
    assert digits["detection"] > 0.75 and digits["detection_random_explanation"] < digits["detection"]
    assert digits["scores"]["detection"]["n_pos"] == 4 and digits["scores"]["detection"]["n_neg"] == 4
    n_req = server.llm.requests
    with pytest.raises(InterpbenchError, match="pass --resume"):
        run_job(cfg, job="j", progress=False)
    s2 = run_job(cfg, job="j", resume=True, progress=False)
    assert s2.processed == 0 and server.llm.requests == n_req + 1  # only the pre-flight ping
    with pytest.raises(LedgerMismatch, match=r"n_docs: 24 != 30"):
        run_job(_cfg(tiny_llama_path, server.url, n_docs=30), job="j", resume=True, progress=False)


def test_failing_features_are_marked_failed_with_the_error(tiny_llama_path):
    with FakeServer(garbage=True) as bad:
        cfg = _cfg(tiny_llama_path, bad.url, explainer=f"openai:{bad.url}", features="0:2", max_attempts=2)
        s = run_job(cfg, job="bad", progress=False)
    assert s.counts["failed"] == 2
    for r in _records("bad"):
        assert r["status"] == "failed" and r["attempts"] == 2 and "unparseable LLM explanation" in r["error"]


def test_thread_workers_match_serial(tiny_llama_path, server):
    cfg = _cfg(tiny_llama_path, server.url)
    run_job(cfg, job="serial", progress=False)
    run_job(cfg, job="threads", workers=2, progress=False)
    assert _results("serial") == _results("threads")


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "interpbench.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


@pytest.mark.slow
def test_kill9_then_resume_equals_uninterrupted(tiny_llama_path, server, cache):
    args = ["label", "--synthetic", str(tiny_llama_path), "--features", "0:6", "--explainer", "tokens",
            "--scorers", "detection,simulation", "--judge", f"openai:{server.url}", "--n-docs", "24", "--no-progress"]
    env = {**os.environ, "INTERPBENCH_CACHE": str(cache), "INTERPBENCH_LABEL_STAGE_DELAY": "0.4"}
    p = _cli(args + ["--job", "killed"], env)
    db = job_dir("killed") / "ledger.sqlite"
    deadline = time.time() + 240
    n_before = 0
    while time.time() < deadline and p.poll() is None:
        if db.exists():
            try:
                n_before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM stages").fetchone()[0]
            except sqlite3.OperationalError:
                n_before = 0
            if n_before >= 5:
                break
        time.sleep(0.1)
    assert p.poll() is None, p.stdout.read().decode()[-2000:]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    con = sqlite3.connect(db)
    before = {(f, s): pid for f, s, pid in con.execute("SELECT feature, stage, pid FROM stages")}
    counts = dict(con.execute("SELECT status, COUNT(*) FROM features GROUP BY status").fetchall())
    con.close()
    assert 5 <= len(before) < 21 and counts.get("pending", 0) > 0  # killed in the middle
    env.pop("INTERPBENCH_LABEL_STAGE_DELAY")
    out = _cli(args + ["--job", "killed", "--resume"], env).communicate()[0].decode()
    assert "done 5" in out, out
    con = sqlite3.connect(db)
    after = {(f, s): pid for f, s, pid in con.execute("SELECT feature, stage, pid FROM stages")}
    con.close()
    assert all(after[k] == pid for k, pid in before.items())  # finished stages were not redone
    assert len(after) == 21  # 6 examples + 5 explanations + 5 × 2 scores, each exactly once
    ref = _cli(args + ["--job", "clean"], env).communicate()[0].decode()
    assert "done 5" in ref, ref
    assert _results("killed") == _results("clean")


def test_cli_status_and_export(tiny_llama_path, server, cache, tmp_path):
    from typer.testing import CliRunner

    from interpbench import cli

    run_job(_cfg(tiny_llama_path, server.url), job="c", progress=False)
    cli._register_areas() if not any(g.name == "label" for g in cli.app.registered_groups) else None
    runner = CliRunner()
    res = runner.invoke(cli.app, ["label", "status", "c"])
    assert res.exit_code == 0, res.output
    assert "done 5, failed 0, dead 1, skipped 0, pending 0" in res.output and "detection: mean" in res.output
    out = tmp_path / "x.jsonl"
    res = runner.invoke(cli.app, ["label", "export", "c", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["feature"] for r in lines] == list(range(6))
    assert {"feature", "explanation", "explainer", "detection", "detection_random_explanation"} <= set(lines[0])
    res = runner.invoke(cli.app, ["label", "status", "nope"])
    assert res.exit_code != 0 and "no labelling job 'nope'" in str(res.exception)


@pytest.mark.slow
def test_ray_local_same_results(tiny_llama_path, server):
    pytest.importorskip("ray")
    import ray

    cfg = _cfg(tiny_llama_path, server.url, features="0:4")
    run_job(cfg, job="serial4", progress=False)
    s = run_job(cfg, job="ray4", ray="local", workers=2, progress=False)
    assert not ray.is_initialized()  # shut down after the job
    assert s.counts == {"done": 4, "failed": 0, "dead": 0, "skipped": 0, "pending": 0}
    assert _results("serial4") == _results("ray4")


def test_unreachable_endpoint_fails_before_the_job_starts(tiny_llama_path):
    import socket

    from interpbench.explain.llm_http import EndpointError

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = _cfg(tiny_llama_path, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}"):
        run_job(cfg, job="down", progress=False)
    assert not (job_dir("down") / "ledger.sqlite").exists()


def test_recipe_runner(tiny_llama_path, server, tmp_path):
    import yaml

    from interpbench.errors import ConfigError
    from interpbench.explain.recipe import run_recipe

    recipe = {"kind": "label", **_cfg(tiny_llama_path, server.url, features="0:2").to_dict(), "job": "rec"}
    recipe.pop("schema_version")
    path = tmp_path / "label.yaml"
    path.write_text(yaml.safe_dump(recipe))
    s = run_recipe(path)
    assert s.job == "rec" and s.counts["done"] == 2
    with pytest.raises(ConfigError, match="bogus"):
        run_recipe({**recipe, "bogus": 1})
    import pathlib

    for f in pathlib.Path("recipes").glob("label_*.yaml"):  # shipped recipes parse into configs
        d = yaml.safe_load(f.read_text())
        d.pop("kind")
        for k in ("job", "resume", "workers", "ray", "progress"):
            d.pop(k, None)
        LabelConfig.from_dict(d)
