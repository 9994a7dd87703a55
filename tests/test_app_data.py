"""The app's run-directory reading: path safety, size limits, readable errors."""

from __future__ import annotations

import json
import os

import pytest

from apps.data import (AppDataError, check_run_id, graph_path, list_runs, load_features, load_graph_json,
                       load_result, parse_json, read_bytes_limited, resolve_run)
from apps.fixtures import result_record, tiny_graph, write_run


@pytest.fixture()
def runs(tmp_path):
    d = tmp_path / "runs"
    write_run(d, "a", result_record("a", created="2026-01-02T00:00:00"), tiny_graph())
    write_run(d, "b", result_record("b", kind="activation_patching", graph=False, created="2026-01-03T00:00:00",
                                    scores={"x": {"values": [[1.0]], "axes": ["layer", "pos"]}}))
    return d


@pytest.mark.parametrize("bad", ["../a", "..", "/etc/passwd", "a/b", "", None, ".hidden", "a\x00b", "x" * 300, 5,
                                 "..%2Fa", "a/../../b"])
def test_check_run_id_rejects(bad):
    with pytest.raises(AppDataError):
        check_run_id(bad)


@pytest.mark.parametrize("good", ["a", "run_1.2-x", "ioi_resid_patching-20261124-1200"])
def test_check_run_id_accepts(good):
    assert check_run_id(good) == good


def test_resolve_unknown_and_symlinks(runs, tmp_path):
    with pytest.raises(AppDataError, match="no run named 'zzz'"):
        resolve_run(runs, "zzz")
    outside = tmp_path / "outside"
    write_run(outside, "secret", result_record("secret"), tiny_graph())
    os.symlink(outside / "secret", runs / "escape")
    with pytest.raises(AppDataError, match="points outside the runs directory"):
        resolve_run(runs, "escape")
    with pytest.raises(AppDataError, match="points outside"):
        load_result(runs, "escape")
    os.symlink(runs / "a", runs / "alias")  # a symlink that stays inside is fine
    assert resolve_run(runs, "alias") == (runs / "a").resolve()


def test_graph_file_named_in_result_must_stay_inside(runs, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(tiny_graph()))
    for name, msg in (("../b/result.json", "must be a path inside"), (str(secret), "must be a path inside")):
        rec = result_record("c")
        rec["files"]["graph"] = name
        write_run(runs, "c", rec)
        with pytest.raises(AppDataError, match=msg):
            graph_path(runs, "c")
    rec = result_record("d")
    run = write_run(runs, "d", rec)
    os.symlink(secret, run / "graph.json")  # a symlinked file pointing out of the run
    with pytest.raises(AppDataError, match="points outside the run directory"):
        load_graph_json(runs, "d")


def test_size_limit_checked_before_reading(runs):
    path = runs / "a" / "graph.json"
    size = path.stat().st_size
    assert read_bytes_limited(path, size, "g") == path.read_bytes()
    with pytest.raises(AppDataError, match=r"over the app's limit of 0\.0 MiB"):
        read_bytes_limited(path, size - 1, "graph file")
    with pytest.raises(AppDataError, match="over the app's limit"):
        load_graph_json(runs, "a", max_bytes=100)


def test_parse_json_messages():
    text = json.dumps(tiny_graph()).encode()
    with pytest.raises(AppDataError, match=r"not valid JSON \(the file looks truncated\)"):
        parse_json(text[:150], "graph.json")
    with pytest.raises(AppDataError, match="not valid JSON: Expecting value"):
        parse_json(b'{"a": nope}', "graph.json")
    with pytest.raises(AppDataError, match="not UTF-8"):
        parse_json(b"\xff\xfe{}", "graph.json")
    with pytest.raises(AppDataError, match="nested too deeply"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, "graph.json")


def test_load_result_checks_shape(runs):
    (runs / "a" / "result.json").write_text("[1, 2]")
    with pytest.raises(AppDataError, match="must hold a JSON object"):
        load_result(runs, "a")
    (runs / "a" / "result.json").write_text(json.dumps({"schema_version": 2}))
    with pytest.raises(AppDataError, match="schema_version 2"):
        load_result(runs, "a")


def test_list_runs_newest_first_and_broken_listed(runs, tmp_path):
    (runs / "broken").mkdir()
    (runs / "broken" / "result.json").write_text("{")
    (runs / "not-a-run").mkdir()  # no result.json, no graph.json: skipped
    os.symlink(tmp_path, runs / "out")
    rows = list_runs(runs)
    assert [r.run_id for r in rows] == ["b", "a", "broken"]
    b, a, broken = rows
    assert (a.has_graph, a.has_scores, a.recipe, a.model, a.task, a.metric) == \
        (True, False, "tiny_circuit", "tiny-llama", "ioi (n=8)", "logit_diff")
    assert (b.has_graph, b.has_scores, b.kind) == (False, True, "activation_patching")
    assert broken.error and "not valid JSON" in broken.error
    with pytest.raises(AppDataError, match="does not exist"):
        list_runs(tmp_path / "nope")


def test_load_features_reports_bad_lines(runs):
    run = write_run(runs, "f", result_record("f", kind="sae_labels", graph=False),
                    features=[{"feature": 1, "explanation": "x"}, {"feature": "two"}])
    with open(run / "features.jsonl", "a") as f:
        f.write("{not json\n")
    recs, problems = load_features(runs, "f")
    assert [r["feature"] for r in recs] == [1]
    assert len(problems) == 2 and "line 3" in problems[0] and "integer 'feature'" in problems[1]
    with pytest.raises(AppDataError, match="has no features.jsonl"):
        load_features(runs, "a")
