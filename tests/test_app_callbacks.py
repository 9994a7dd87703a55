"""The app's layouts and callbacks called as plain functions inside a request context,
plus app construction, the CLI command and "nothing at import"."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps.data import AppDataError
from apps.fixtures import result_record, tiny_graph, tiny_scores, write_run
from apps.server import create_app


def _text(component) -> str:
    """All strings inside a Dash component tree."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    write_run(runs, "tiny", result_record("tiny", scores=tiny_scores()), tiny_graph())
    write_run(runs, "feat", result_record("feat", kind="sae_labels", graph=False),
              features=[{"feature": 3, "explanation": "dates", "explainer": "x", "scores": {},
                         "examples": [{"tokens": ["a", "b"], "acts": [0.0, 2.0]}]}])
    bad = write_run(runs, "bad", result_record("bad"), tiny_graph())
    (bad / "graph.json").write_text('{"schema_version": 1, "nodes": [], "edges": [{"source": "x"}]}')
    return create_app(runs)


@pytest.fixture(scope="module")
def pages(app):
    app.server.test_client().get("/")  # Dash loads the pages and their callbacks
    return {name: sys.modules[f"apps.pages.{name}"] for name in ("runs", "graph", "patching", "features")}


def test_graph_callbacks_as_functions(app, pages):
    g = pages["graph"]
    with app.server.test_request_context():
        elements, summary, status = g.update_graph("top", 40, None, ["gt"], [], "tiny")
        assert status is None and summary.startswith("showing 3 of 10 edges")
        assert {e["data"]["id"] for e in elements if "source" in e["data"]} == \
            {"a1.h1->logits", "a0.h0->a1.h1", "a1.h0->logits", "m0->a1.h1"}
        panel, selected = g.tap({"id": "a0.h0", "type": "attention"}, "tiny")
        assert selected == "a0.h0" and "a1.h1" in _text(panel) and "+0.8" in _text(panel)
        assert g.tap({"id": "__row:embed", "type": "axis"}, "tiny")[0] is not None  # no_update sentinel
        dl, status = g.export_json(1, "top", 100, None, [], [], "tiny")
        doc = json.loads(dl["content"])
        assert dl["filename"] == "tiny-view.json" and len(doc["edges"]) == 10 and status is None
        assert g.export_png(1, "tiny")["action"] == "download"
        assert g.faithfulness("tiny").layout.title.text.startswith("faithfulness (CPR 0.9")
        # bad input: a message in the page, never an exception
        elements, summary, status = g.update_graph("top", 40, None, [], [], "../tiny")
        assert elements == [] and "invalid run id" in _text(status)
        _, _, status = g.update_graph("top", 40, None, [], [], "bad")
        assert "edge 0 refers to unknown node 'x'" in _text(status)
        _, _, status = g.update_graph("nonsense", "NaN?", "tiny", "junk", "junk", "tiny")
        assert "compare needs a different run" in _text(status)
        assert "invalid run id" in _text(g.tap({"id": "a0.h0"}, "/etc")[0])


def test_pins_callback(pages):
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    g = pages["graph"]
    for trigger, pinned, want in (("graph-pin", ["a"], ["a", "b"]), ("graph-clear-pins", ["a"], []),
                                  ("graph-pin", ["b"], ["b"])):
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": f"{trigger}.n_clicks", "value": 1}]))
        assert g.pins(1, 0, "b", pinned) == want


def test_layouts_show_errors_not_tracebacks(app, pages):
    with app.server.test_request_context():
        for page, kwargs, msg in ((pages["graph"], {"run": "../../etc"}, "invalid run id"),
                                  (pages["graph"], {"run": "nope"}, "no run named 'nope'"),
                                  (pages["graph"], {}, "no run selected"),
                                  (pages["patching"], {"run": "feat"}, "has no score arrays"),
                                  (pages["features"], {"run": "tiny"}, "has no features.jsonl")):
            assert msg in _text(page.layout(**kwargs))
        assert "Causal graph · tiny" in _text(pages["graph"].layout(run="tiny", compare="feat"))
        assert "resid_pre" in str(pages["patching"].layout(run="tiny"))
        feat = pages["features"]
        assert "feature 3" in str(feat.layout(run="feat", feature="oops"))
        assert "dates" in _text(feat.show_feature(3, "feat"))
        assert "not in run" in _text(feat.show_feature(4, "feat"))
        table = pages["runs"].show_runs("sae")
        assert "1 of 3 runs" in _text(table) and "feat" in _text(table)


def test_create_app_checks_runs_dir(tmp_path):
    with pytest.raises(AppDataError, match="does not exist"):
        create_app(tmp_path / "missing")
    a, b = create_app(tmp_path), create_app(tmp_path, max_file_mb=2)  # two apps side by side
    from apps.server import _CONFIG_KEY

    assert a.server.config[_CONFIG_KEY].max_file_bytes == 64 * 2**20
    assert b.server.config[_CONFIG_KEY].max_file_bytes == 2 * 2**20
    assert a.config.serve_locally and not a.config.external_stylesheets and not a.config.external_scripts


def test_import_reads_nothing_and_cli_defaults(tmp_path):
    code = ("import os, apps, apps.server, apps.data, apps.graph_view, apps.figures, apps.cli; "
            "import inspect; from apps.server import serve; "
            "print(inspect.signature(serve).parameters['host'].default)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         env={"INTERPBENCH_CACHE": str(tmp_path / "nocache"), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "127.0.0.1" and not (tmp_path / "nocache").exists()


def test_cli_app_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from apps.cli import register

    cli = typer.Typer()
    register(cli)

    @cli.command()
    def other() -> None:  # a second command so typer keeps subcommand names
        pass

    res = CliRunner().invoke(cli, ["app", "--help"])
    assert res.exit_code == 0 and "--runs" in res.output and "--host" in res.output and "127.0.0.1" in res.output
    res = CliRunner().invoke(cli, ["app", "--runs", str(tmp_path / "missing")])
    assert isinstance(res.exception, AppDataError) and "does not exist" in str(res.exception)


def _score_stage(score: float, rnd: float, shuf: float) -> dict:
    return {"score": score, "random_explanation": {"score": rnd}, "random_explanation_text": "units of measurement",
            "shuffled_latent": {"score": shuf}, "metrics": {"auroc": score}, "model": "judge-x", "n_pos": 4,
            "n_neg": 5, "n_items": 9, "parse_failures": 1, "prompt_tokens": 10, "completion_tokens": 2}


def test_feature_panel_reads_export_records(tmp_path, pages):
    """Records made by interpbench.explain.export.feature_records from a real ledger: LLM and
    baseline explainers, each scorer beside both controls, dead/skipped/failed with reasons."""
    from interpbench.explain.config import LabelConfig
    from interpbench.explain.export import feature_records
    from interpbench.explain.ledger import Ledger

    led = Ledger(tmp_path / "ledger.sqlite")
    led.init(LabelConfig(source="synthetic:x", features="0:4"), range(4))
    led.put_stage(0, "explanation", {"text": "years and dates", "explainer": "llm:local", "kind": "llm"})
    led.put_stage(0, "score:detection", _score_stage(0.9, 0.4, 0.55))
    led.put_stage(0, "score:fuzzing", _score_stage(0.5, 0.6, 0.45))
    led.set_status(0, "done")
    led.set_status(1, "dead", "never activates (max 0)")
    led.set_status(2, "skipped", "too few active windows (1 < 2)")
    for _ in range(2):
        led.record_failure(3, "judge timed out after 60 s", max_attempts=2)
    recs = {r["feature"]: r for r in feature_records(led)}
    led.close()
    panel = pages["features"].feature_panel

    text = _text(panel(recs[0]))
    assert "years and dates" in text and "explainer: llm:local" in text and "LLM explainer" in text
    table = next(c for c in panel(recs[0]) if getattr(c, "id", None) == "feature-scores")
    rows = [_text(r.children) for r in table.children[1:]]  # header row skipped
    assert rows[0].split()[:5] == ["detection", "0.900", "0.400", "0.550", "yes"]
    assert rows[1].split()[:5] == ["fuzzing", "0.500", "0.600", "0.450", "no"]  # loses to the random explanation
    assert "judge-x 4/5 1 units of measurement" in rows[0]
    assert "top activating examples are not recorded" in text and "histogram: not recorded" in text
    assert "dead latent: never activates (max 0)" in _text(panel(recs[1]))
    assert "(no explanation)" in _text(panel(recs[1])) and "no scores recorded" in _text(panel(recs[1]))
    assert "skipped: too few active windows (1 < 2)" in _text(panel(recs[2]))
    assert "failed: judge timed out after 60 s (retried 2x)" in _text(panel(recs[3]))
    base = dict(recs[0], explainer="baseline:top-tokens", explainer_kind="baseline")
    assert "baseline explainer (no LLM)" in _text(panel(base))
    old = {"feature": 7, "explanation": "x", "explainer": "e", "scores": {"det": {"score": 0.8, "random_control": 0.5}},
           "examples": [{"tokens": ["a"], "acts": [1.0]}]}  # the older app fixture format
    assert "det 0.800 0.500 n/a yes" in _text(panel(old)) and "top activating examples (1)" in _text(panel(old))
