"""The CLI: subcommands work, bad input exits 2 with one line and no traceback."""

import os
import subprocess
import sys


def _run(*args):
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "interpbench.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_version_and_models():
    r = _run("version")
    assert r.returncode == 0 and "interpbench" in r.stdout
    r = _run("models")
    assert r.returncode == 0 and "smollm2-135m" in r.stdout


def test_unknown_model_exits_2_without_traceback():
    r = _run("inspect", "no-such-model")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "unknown model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_inspect_tiny(tiny_llama_path):
    r = _run("inspect", str(tiny_llama_path), "--sites", "blocks.0.attn.*")
    assert r.returncode == 0, r.stderr
    assert "blocks.0.attn.hook_z" in r.stdout and "(1, 5, 4, 16)" in r.stdout.replace("\u2026", "")
