"""Pure figure builders of the app."""

from __future__ import annotations

import math

import pytest

from apps.data import AppDataError
from apps.figures import (convention_text, faithfulness_figure, histogram_figure, message_figure,
                          patching_heatmap)
from apps.fixtures import result_record, tiny_scores


def test_heatmap_tokens_title_and_ci():
    scores = tiny_scores()
    result = result_record("r", recipe="ioi_resid", scores=scores)
    fig = patching_heatmap("resid_pre", scores["resid_pre"], result)
    assert fig.layout.title.text == "ioi_resid · resid_pre: logit_diff (clean=1.0, corrupted=0.0)"
    assert list(fig.layout.xaxis.ticktext) == ["&lt;s&gt;", "When", " Mary", " and", " John", " went"]
    assert fig.layout.xaxis.title.text == "pos" and fig.layout.yaxis.title.text == "layer"
    h = fig.data[0]
    assert h.z[1][2] == pytest.approx(0.6) and h.zmid == 0
    assert list(h.customdata[1][2]) == [" Mary", "1", "[0.59, 0.61]"]
    assert "95% CI %{customdata[2]}" in h.hovertemplate
    heads = patching_heatmap("heads", scores["heads"], result)
    assert list(heads.layout.xaxis.ticktext) == ["H0", "H1"] and heads.data[0].customdata[0][0][2] == "n/a"


def test_heatmap_prefers_token_labels_and_flattens_3d():
    score = {"values": [[[1, 2], [3, 4], [5, 6]]], "axes": ["layer", "pos", "head"],
             "labels": {"layer": [4], "pos": [0, 1, 2], "tokens": ["a", "b", "c"], "head": [0, 1]}}
    fig = patching_heatmap("z", score, {"metric": {"name": "logit_diff", "direction": "denoise"}})
    assert list(fig.layout.xaxis.ticktext) == ["a·0", "a·1", "b·0", "b·1", "c·0", "c·1"]
    assert list(fig.layout.yaxis.ticktext) == ["4"] and list(fig.data[0].z[0]) == [1, 2, 3, 4, 5, 6]
    assert fig.layout.title.text.endswith("logit_diff (direction=denoise)")


@pytest.mark.parametrize("values, msg", [([[1, 2], [3]], "ragged"), ([], "2-D nested list"), ("x", "2-D")])
def test_heatmap_rejects_bad_arrays(values, msg):
    with pytest.raises(AppDataError, match=msg):
        patching_heatmap("s", {"values": values, "axes": ["layer", "pos"]}, {})


def test_heatmap_nan_cells_stay_empty():
    fig = patching_heatmap("s", {"values": [[1.0, None], [float("inf"), -2.0]], "axes": ["layer", "head"]}, {})
    z = fig.data[0].z
    assert math.isnan(z[0][1]) and math.isnan(z[1][0]) and fig.data[0].zmax == 2.0


def test_convention_text():
    assert convention_text({"name": "kl", "convention": "lower is better"}) == "kl (lower is better)"
    assert convention_text({"name": "p"}) == "p"
    real = {"name": "logit_diff", "convention": {"name": "logit_diff", "direction": "denoise", "pos": -1,
                                                 "schema_version": 1}}
    assert convention_text(real) == "logit_diff (direction=denoise, pos=-1)"
    assert convention_text(None) == "metric n/a"


def test_faithfulness_simple_and_mib_blocks():
    fig = faithfulness_figure({"sizes": [1, 10, 100], "values": [0.1, 0.5, 0.9], "cpr": 0.71, "cmd": 0.2,
                               "ablation": "mean"})
    assert fig.layout.title.text == "faithfulness (CPR 0.71, CMD 0.2, ablation mean)"
    assert list(fig.data[0].x) == [1, 10, 100] and fig.layout.xaxis.type == "log"
    curve = {"percentages": [0.1, 1.0], "edges_kept": [3, 30], "faithfulness": [0.4, 1.0], "ci95": [[0.3, 0.5], [1, 1]]}
    mib = {"definition": "...", "ablations": {"resample": {"cpr": 0.8, "cmd": 0.1, "curve_signed": curve,
                                                           "curve_abs": curve}}}
    fig = faithfulness_figure(mib)
    assert len(fig.data) == 2 and fig.data[0].name == "resample, signed" and fig.data[1].line.dash == "dash"
    assert list(fig.data[0].error_y.array) == pytest.approx([0.1, 0.0])
    assert "resample: CPR 0.8" in fig.layout.title.text
    sv = {"seeds": [0, 1, 2], "cpr": {"mean": 1.4261, "std": 0.192}, "cmd": {"mean": 0.124, "std": float("nan")}}
    title = faithfulness_figure({**mib, "seed_variance": sv}).layout.title.text
    assert "CPR 1.426 ± 0.192 over 3 seeds" in title and "CMD 0.124" not in title  # NaN std: not shown
    assert faithfulness_figure(None).layout.annotations[0].text == "no faithfulness curve in this run"
    assert faithfulness_figure({"sizes": [], "values": []}).layout.annotations[0].text == "the faithfulness curve is empty"


def test_histogram_and_message():
    fig = histogram_figure({"edges": [0, 1, 3], "counts": [5, 2]})
    assert fig.layout.title.text == "activation histogram"
    assert "active on 7 of 1,000 harvested tokens, 0.70 %" in histogram_figure(
        {"edges": [0, 1, 3], "counts": [5, 2], "n_tokens": 1000, "n_active": 7}).layout.title.text
    assert list(fig.data[0].x) == [0.5, 2.0] and list(fig.data[0].width) == [1, 2]
    assert "malformed" in histogram_figure({"edges": [0, 1], "counts": [1, 2]}).layout.annotations[0].text
    assert message_figure("hi").layout.annotations[0].text == "hi"
