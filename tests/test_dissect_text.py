"""Text dissection: exact token concepts, annotation errors, planted latents on a tiny model, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from interpbench.dissect.engine import DissectConfig, dissect
from interpbench.dissect.text import TextData, resolve_sites, text_acts_fn
from interpbench.dissect.text_concepts import BUILTIN_CONCEPTS, builtin_masks
from interpbench.errors import InterpbenchError

TEXTS = ["On Monday 12 red cats (and 3 dogs) ran quickly.", "In May, \"she said\" 42 times: yes!",
         "The 7 blue birds flew over 2019 hills on Friday."] * 2


def test_builtin_masks_exact():
    toks = ["On", " Monday", " 12", " red", " (", "and", ")", "."]
    m = builtin_masks(toks)
    col = {c: [i for i in range(len(toks)) if m[i, j]] for j, c in enumerate(BUILTIN_CONCEPTS)}
    assert col["digits"] == [2] and col["day"] == [1] and col["colour"] == [3]
    assert col["punctuation"] == [4, 6, 7] and col["capitalised"] == [0, 1] and col["in_parens"] == [5]
    assert col["space_led"] == [1, 2, 3, 4] and col["first_token"] == [0] and col["even_position"] == [0, 2, 4, 6]


def test_annotations_jsonl(tiny_llama, tmp_path):
    tok = tiny_llama.tokenizer
    text = "Paris is in France."
    strs = [tok.decode([i]) for i in tok(text, add_special_tokens=False)["input_ids"]]
    good = tmp_path / "c.jsonl"
    good.write_text(json.dumps({"text": text, "concepts": {"city": [0], "country": [3]}, "tokens": strs}) + "\n")
    data = TextData(tiny_llama, None, str(good))
    assert data.concepts == ["city", "country"] and data.masks[0][:, 0].nonzero().flatten().tolist() == [0]
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"text": text, "concepts": {"city": [0]}, "tokens": ["X"] + strs[1:]}) + "\n")
    with pytest.raises(InterpbenchError, match="differ from the tokenizer's at index 0"):
        TextData(tiny_llama, None, str(bad))
    empty = tmp_path / "e.jsonl"
    empty.write_text(json.dumps({"text": text, "concepts": {"city": [0], "none": []}}) + "\n")
    with pytest.raises(InterpbenchError, match="'none' is empty"):
        TextData(tiny_llama, None, str(empty))
    out = tmp_path / "o.jsonl"
    out.write_text(json.dumps({"text": text, "concepts": {"city": [99]}}) + "\n")
    with pytest.raises(InterpbenchError, match="names token 99"):
        TextData(tiny_llama, None, str(out))


def test_site_without_token_axis(tiny_llama):
    with pytest.raises(InterpbenchError, match="without a token axis"):
        resolve_sites(tiny_llama, "blocks.0.attn.hook_pattern")


def test_planted_latents_are_labelled(tiny_llama):
    """Latents = one-hot of the token class read off the embedding (a lookup the encoder knows)."""
    data = TextData(tiny_llama, TEXTS, "builtin", max_len=32, batch_size=3)
    want = ["digits", "punctuation", "capitalised"]
    cols = [data.concepts.index(c) for c in want]
    # token id -> class indicator table: exact planted latents on hook_embed via nearest embedding row
    emb_w = tiny_llama.hf.get_input_embeddings().weight.detach()
    table = torch.zeros(emb_w.shape[0], len(want))
    for ids, m in zip(data.ids, data.masks):
        for p, tid in enumerate(ids[data.offset:]):
            table[tid] = m[p, cols].float()

    def encode(x):  # [b p d] -> [b p 3]: recover the token id from its embedding, look up its class
        tid = (x @ emb_w.T).argmax(-1)
        return table[tid] + 0.01 * x[..., :1]

    sites = ["hook_embed"]
    res = dissect(text_acts_fn(tiny_llama, sites, {"hook_embed": encode}), data.batches, sites, data.concepts,
                  DissectConfig(quantile=0.8))
    assert [lab.concept for lab in res["hook_embed"].labels] == want


def test_mlp_dissection_runs_and_is_deterministic(tiny_llama):
    data = TextData(tiny_llama, TEXTS, "builtin", max_len=32, batch_size=4)
    sites = resolve_sites(tiny_llama, "blocks.*.mlp.hook_post")
    cfg = DissectConfig(comp_units=2, tail=64)
    a = dissect(text_acts_fn(tiny_llama, sites), data.batches, sites, data.concepts, cfg)
    b = dissect(text_acts_fn(tiny_llama, sites), data.batches, sites, data.concepts, cfg)
    assert set(a) == {"blocks.0.mlp.hook_post", "blocks.1.mlp.hook_post"}
    assert a["blocks.0.mlp.hook_post"].iou.shape == (128, len(data.concepts))
    torch.testing.assert_close(a["blocks.1.mlp.hook_post"].iou, b["blocks.1.mlp.hook_post"].iou)
    assert sum(bool(x.formula) for x in a["blocks.0.mlp.hook_post"].labels) == 2


def test_cli_text_run(tiny_llama_path, tmp_path, monkeypatch, capsys):
    from typer.testing import CliRunner

    import interpbench.cli as cli

    monkeypatch.setenv("INTERPBENCH_CACHE", str(tmp_path))
    cli._register_areas()
    r = CliRunner().invoke(cli.app, ["dissect", "--model", str(tiny_llama_path), "--sites", "blocks.1.mlp.hook_post",
                                     "--n-texts", "4", "--max-len", "24", "--comp-units", "1"])
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "runs").iterdir())
    res = json.loads((run / "result.json").read_text())
    assert res["kind"] == "dissection" and res["schema_version"] == 1
    labels = json.loads((run / "labels.json").read_text())
    assert len(labels["sites"]["blocks.1.mlp.hook_post"]["units"]) == 128
    with pytest.raises(SystemExit) as exc:
        cli.main(["dissect", "--model", str(tiny_llama_path), "--sites", "blocks.1.attn.hook_pattern"])
    assert exc.value.code == 2 and "without a token axis" in capsys.readouterr().err


def test_planted_check_precision(tiny_llama):
    from interpbench.dissect.run_text import planted_check

    data = TextData(tiny_llama, TEXTS * 4, "builtin", max_len=32, batch_size=4)
    res = planted_check(tiny_llama, data, DissectConfig(tail=256))
    assert {"day", "month", "colour"} <= set(res["planted"])
    for c in ("day", "month", "colour", "suffix_ed"):
        assert res["labels"][res["planted"].index(c)] == c
    # in this tiny repeated corpus 'preposition' coincides with first tokens ("On", "In") and
    # 'in_quotes' with "she": 9 of 11 planted latents get their own label
    assert res["recall"] == pytest.approx(9 / 11) and res["precision"] == pytest.approx(9 / 11)
