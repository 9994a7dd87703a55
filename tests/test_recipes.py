"""Recipes: strict parsing with line numbers, cached runs, atomic run dirs, CLI exit codes."""

import json
import os
import subprocess
import sys

import pytest

from interpbench.errors import ConfigError
from interpbench.recipes import parse_overrides, parse_recipe, run_recipe_file


@pytest.fixture()
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "runs"


def _write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_field_names_line(tmp_path):
    p = _write(tmp_path, "kind: activation_patching\nmodel: x\nn_promts: 3\n")
    with pytest.raises(ConfigError, match=r"r.yaml:3: unknown field 'n_promts'"):
        parse_recipe(p)


def test_wrong_type_and_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match=r":2: field 'n' must be int"):
        parse_recipe(_write(tmp_path, "kind: activation_patching\nn: many\n"))
    with pytest.raises(ConfigError, match="unknown or missing kind"):
        parse_recipe(_write(tmp_path, "kind: telepathy\n"))
    with pytest.raises(ConfigError, match="unknown field 'bogus'"):
        parse_recipe(_write(tmp_path, "kind: activation_patching\n"), overrides=parse_overrides(["bogus=1"]))


def test_run_is_cached_and_complete(tmp_path, runs, tiny_llama_path):
    p = _write(tmp_path, f"kind: activation_patching\nmodel: {tiny_llama_path}\ntask: ioi\nn: 2\nsite: resid_pre\n"
                         f"n_boot: 50\n")
    msgs = []
    d1 = run_recipe_file(p, echo=msgs.append)
    result = json.loads((d1 / "result.json").read_text())
    assert result["schema_version"] == 1 and result["kind"] == "activation_patching"
    assert result["metric"]["convention"]["direction"] == "denoise"
    assert result["task"]["n"] == 2 and result["scores"]["values"]["axes"] == ["layer", "pos"]
    assert len(result["scores"]["values"]["values"]) == 2  # tiny model: 2 layers
    assert (d1 / "tensors.safetensors").exists() and (d1 / "heatmap.html").exists()
    d2 = run_recipe_file(p, echo=msgs.append)
    assert d1 == d2 and any(m.startswith("cached") for m in msgs)


def test_failed_run_writes_nothing(tmp_path, runs, tiny_llama_path):
    p = _write(tmp_path, f"kind: activation_patching\nmodel: {tiny_llama_path}\ntask: no_such_task\nn: 2\n")
    with pytest.raises(Exception, match="unknown task"):
        run_recipe_file(p)
    assert not runs.exists() or not [d for d in runs.iterdir() if not d.name.startswith(".")]
    assert not runs.exists() or not list(runs.iterdir())


def test_cli_bad_recipe_exit_2(tmp_path):
    p = _write(tmp_path, "kind: activation_patching\nn_promts: 3\n")
    r = subprocess.run([sys.executable, "-m", "interpbench.cli", "run", str(p)], capture_output=True, text=True,
                       env={**os.environ, "INTERPBENCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and "Traceback" not in r.stderr and "n_promts" in r.stderr


def test_circuit_recipe_writes_graph(tmp_path, runs, tiny_llama_path):
    p = _write(tmp_path, f"kind: circuit\nmodel: {tiny_llama_path}\ntask: ioi\nmethod: eap\nn: 2\n", name="ioi_circuit.yaml")
    d = run_recipe_file(p, echo=lambda s: None)
    result = json.loads((d / "result.json").read_text())
    assert result["kind"] == "circuit" and result["recipe"] == "ioi_circuit"
    assert result["files"]["graph"] == "graph.json" and "faithfulness.html" in result["files"]["figures"]
    from interpbench.graphs.ir import load_graph

    g = load_graph(d / "graph.json")
    assert len(g.edges) > 0


@pytest.mark.parametrize("body", [
    "kind: causal_tracing\nn_facts: 2\nonly_correct: false\nsamples: 2\nkinds: [resid, mlp]\nwindow: 1\n",
    "kind: mediation\ntask: gender\nn: 2\nn_boot: 20\n",
    "kind: path_patching\ntask: ioi\nn: 2\n",
])
def test_effect_recipe_kinds_on_tiny(tmp_path, runs, tiny_llama_path, body):
    p = _write(tmp_path, f"model: {tiny_llama_path}\n" + body)
    d = run_recipe_file(p, echo=lambda s: None)
    result = json.loads((d / "result.json").read_text())
    assert result["scores"] and result["metric"]["name"] and result["files"]["figures"]
    for block in result["scores"].values():
        assert len(block["values"]) >= 1
