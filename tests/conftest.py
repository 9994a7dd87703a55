"""Shared fixtures: tiny randomly initialised Llama (GQA) and GPT-2 models saved to a temp
dir and loaded back through load_model (exact, fast), and the bundled SmolLM2 (integration).

Tests that load the bundled model are marked ``slow``; `make test` runs them all.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _tokenizer():
    """SmolLM2's tokenizer (from the converted bundled model) for the tiny models."""
    from interpbench.models.loading import _bundled_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_bundled_path("smollm2-135m"))


@pytest.fixture(scope="session")
def tokenizer():
    return _tokenizer()


def _save_tiny(kind: str, root, tok):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=len(tok), n_embd=64, n_layer=2, n_head=4, n_positions=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        model = GPT2LMHeadModel(cfg)
    path = root / kind
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_path(tmp_path_factory, tokenizer):
    return _save_tiny("llama", tmp_path_factory.mktemp("tiny"), tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_path(tmp_path_factory, tokenizer):
    return _save_tiny("gpt2", tmp_path_factory.mktemp("tiny"), tokenizer)


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_path):
    import interpbench

    return interpbench.load_model(str(tiny_llama_path), device="cpu")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_path):
    import interpbench

    return interpbench.load_model(str(tiny_gpt2_path), device="cpu")


@pytest.fixture(scope="session")
def smol():
    import interpbench

    return interpbench.load_model("smollm2-135m", device="cpu")


@pytest.fixture(params=["tiny_llama", "tiny_gpt2"])
def tiny(request):
    return request.getfixturevalue(request.param)
