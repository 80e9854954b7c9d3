"""Build the tiny DistilBERT-architecture QA model that needs no download: the quickstart's and the tests'.

Its WordPiece vocabulary is trained on the shipped sample, its weights are random (seeded). It exists so
that the whole pipeline runs offline in about a minute on a laptop CPU; its answers are not meant to be
good. It is saved with `save_pretrained` and loaded back through the same `from_pretrained` path as any
hub model. Nothing in the package imports this script.

Regenerate ``lightning_qa/assets/tiny-distilbert/`` (after the sample changes, since the vocabulary
comes from it) with::

    python scripts/make_tiny_model.py            # or --out DIR to write somewhere else
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModelForQuestionAnswering, DistilBertConfig, PreTrainedTokenizerFast

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ASSETS = Path(__file__).resolve().parents[1] / "lightning_qa" / "assets"
DEFAULT_DIR = ASSETS / "tiny-distilbert"


def train_wordpiece(texts: Iterable[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """An uncased BERT-style WordPiece tokenizer trained on `texts` (fast, with offsets)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"],
    )


def build_tiny_model(
    out_dir: str | os.PathLike,
    texts: Iterable[str],
    vocab_size: int = 2000,
    dim: int = 64,
    n_layers: int = 2,
    n_heads: int = 2,
    hidden_dim: int = 256,
    seed: int = 0,
) -> str:
    """Write a tiny DistilBERT QA model and its tokenizer to `out_dir`; return the path."""
    tokenizer = train_wordpiece(texts, vocab_size)
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        hidden_dim=hidden_dim,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_config(config)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def squad_texts(paths: Iterable[str]) -> list[str]:
    """Contexts and questions of SQuAD JSON files, to train the vocabulary on."""
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for article in json.load(f)["data"]:
                for para in article["paragraphs"]:
                    texts.append(para["context"])
                    texts += [qa["question"] for qa in para["qas"]]
    return texts


def main(out: Path = DEFAULT_DIR) -> None:
    """Regenerate the packaged quickstart model from the sample's train and dev files."""
    texts = squad_texts([str(ASSETS / "sample" / "train.json"), str(ASSETS / "sample" / "dev.json")])
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model(tmp, texts)
        out.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), out / name)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_DIR, help="output directory (default: %(default)s)"
    )
    main(parser.parse_args().out)
