"""Task generators: tokenizer checks, shapes, determinism, dropping, registry, JSONL."""

from __future__ import annotations

import json

import pytest
import torch

from interpbench.errors import InterpbenchError
from interpbench.tasks import TASKS, from_jsonl, make_task, register_task
from interpbench.tasks.greater_than import formulation
from interpbench.tasks.ioi import NAMES, single_token_names


def test_registry_has_builtin_tasks_and_rejects_duplicates(tiny_llama):
    make_task("induction", tiny_llama, n=2)
    assert {"ioi", "greater_than", "induction", "jsonl"} <= set(TASKS)
    with pytest.raises(InterpbenchError, match="already registered"):
        register_task("ioi")(lambda model, n=16, seed=0: None)
    with pytest.raises(InterpbenchError, match="unknown task"):
        make_task("no_such_task", tiny_llama)


def test_ioi_names_single_tokens(tokenizer):
    ok, bad = single_token_names(tokenizer)
    assert len(ok) + len(bad) == len(NAMES)
    assert len(ok) == 50 and bad == []  # SmolLM2: every name is one token with a leading space


def test_ioi_pairs(tiny_llama):
    p = make_task("ioi", tiny_llama, n=6, seed=1)
    tok = tiny_llama.tokenizer
    assert p.n == 6 and p.clean.shape == p.corrupted.shape
    for i in range(p.n):
        clean, corr = p.clean_text[i], p.corrupted_text[i]
        io, s = tok.decode([int(p.answer[i])]).strip(), tok.decode([int(p.wrong[i])]).strip()
        assert clean.count(" " + s) == 2 and clean.count(" " + io) == 1
        assert io not in corr.split() and s not in corr.split()  # ABC: three other names
        diff = (p.clean[i] != p.corrupted[i]).sum()
        assert int(diff) == 3
        assert tok.decode(p.clean[i, 1:].tolist()) == clean
    again = make_task("ioi", tiny_llama, n=6, seed=1)
    assert torch.equal(again.clean, p.clean) and torch.equal(again.answer, p.answer)
    assert make_task("ioi", tiny_llama, n=6, seed=2).data_hash() != p.data_hash()


def test_ioi_drops_unequal_length_templates(tiny_llama):
    p = make_task("ioi", tiny_llama, n=4)
    assert any("not the batch length" in d for d in p.dropped)


def test_greater_than_digit_formulation(tiny_llama):
    tok = tiny_llama.tokenizer
    assert formulation(tok) == "digit"  # SmolLM2 splits digits
    p = make_task("greater_than", tiny_llama, n=5)
    assert p.meta["formulation"] == "digit"
    for i in range(p.n):
        yy = p.clean_text[i].split("year 17")[1][:2]
        assert "year 1701 " in p.corrupted_text[i]
        assert tok.decode([int(p.answer[i])]) == str(int(yy[0]) + 1)
        assert tok.decode([int(p.wrong[i])]) == str(int(yy[0]) - 1)


def test_induction_pairs(tiny_llama):
    p = make_task("induction", tiny_llama, n=5, seq_len=6, seed=3)
    assert p.clean.shape == (5, 12)
    for i in range(p.n):
        c, x = p.clean[i].tolist(), p.corrupted[i].tolist()
        assert sum(a != b for a, b in zip(c, x)) == 1
        j = next(t for t in range(12) if c[t] != x[t])
        assert c[j] == int(p.answer[i]) and x[j] == int(p.wrong[i])
        assert c[j - 1] == c[-1]  # the token before the answer in the first copy ends the prompt
    def repeat_len(c):  # longest suffix that repeats the tokens just before position seq_len
        return max(k for k in range(1, 6) if c[12 - k:] == c[6 - k:6])
    ks = {repeat_len(p.clean[i].tolist()) for i in range(p.n)}
    assert len(ks) > 1  # random offsets of the repeated segment


def test_from_jsonl(tmp_path, tiny_llama):
    f = tmp_path / "pairs.jsonl"
    rows = [{"clean": "The capital of France is", "corrupted": "The capital of Italy is", "answer": " Paris",
             "wrong": " Rome"},
            {"clean": "A B C", "corrupted": "A B C D", "answer": " x", "wrong": " y"},
            {"clean": "The capital of Spain is", "corrupted": "The capital of Japan is", "answer": " Madrid and",
             "wrong": " Tokyo"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    p = from_jsonl(f, tiny_llama)
    assert p.n == 1 and p.clean_text == (rows[0]["clean"],)
    assert len(p.dropped) == 2
    assert "line 2" in p.dropped[0] and "line 3" in p.dropped[1]
    assert make_task("jsonl", tiny_llama, path=str(f)).data_hash() == p.data_hash()


def test_from_jsonl_bad_input(tmp_path, tiny_llama):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"clean": "a", "corrupted": "b"}\n')
    with pytest.raises(InterpbenchError, match="bad.jsonl:1"):
        from_jsonl(f, tiny_llama)
    f.write_text('{"clean": "a b", "corrupted": "a b c", "answer": " x", "wrong": " y"}\n')
    with pytest.raises(InterpbenchError, match="empty"):
        from_jsonl(f, tiny_llama)
    with pytest.raises(InterpbenchError, match="does not exist"):
        from_jsonl(tmp_path / "missing.jsonl", tiny_llama)
