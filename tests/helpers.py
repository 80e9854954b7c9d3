"""Shared test helpers (imported by test files; fixtures stay in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterable


def squad_texts(paths: Iterable[str]) -> list[str]:
    """Contexts and questions of SQuAD JSON files: text to train a test tokenizer's vocabulary on."""
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for article in json.load(f)["data"]:
                for para in article["paragraphs"]:
                    texts += [para["context"], *(qa["question"] for qa in para["qas"])]
    return texts
