"""Text -> token windows: the tokenizer, the one window-length rule and the one question-cut rule.

Training features, evaluation features and the predictor all call `encode_windows` after `cut_questions`,
so a question is windowed the same way wherever it is answered.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tokenizers import Encoding, Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerBase

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def load_tokenizer(model_name_or_path: str, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load the fast tokenizer and undo sentence-embedding style fixed padding/truncation baked into
    some `tokenizer.json` files (they would silently cut every context to 128 tokens)."""
    if os.path.isdir(model_name_or_path) and not any(
        os.path.exists(os.path.join(model_name_or_path, name)) for name in TOKENIZER_FILES
    ):  # transformers would quietly build an empty tokenizer that maps every word to [UNK]
        raise ValueError(
            f"{model_name_or_path}: no tokenizer files in this model directory ({', '.join(TOKENIZER_FILES[:3])}, ...)"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
    if not tokenizer.is_fast:
        raise ValueError(f"{model_name_or_path}: a fast tokenizer is required (offset mapping)")
    tokenizer.backend_tokenizer.no_padding()
    tokenizer.backend_tokenizer.no_truncation()
    return tokenizer


def question_budget(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, doc_stride: int, max_question_length: int
) -> int:
    """Most question tokens a window holds: `max_question_length`, or fewer when the window must also
    hold `doc_stride` + 1 context tokens (the fast tokenizer refuses a stride that is not smaller than the
    room left for the context, mid-run). Raises one message listing every setting that cannot work."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    budget = min(max_question_length, max_seq_length - specials - doc_stride - 1)
    problems = []
    if doc_stride < 0:
        problems.append(f"doc_stride ({doc_stride}) must be >= 0")
    if max_question_length < 1:
        problems.append(f"max_question_length ({max_question_length}) must be >= 1")
    elif budget < 1:
        problems.append(
            f"max_seq_length ({max_seq_length}) leaves no room for a question next to doc_stride "
            f"({doc_stride}) + 1 context tokens and {specials} special tokens"
        )
    if problems:
        raise ValueError("; ".join(problems))
    return budget


@contextmanager
def _truncation(tokenizer: PreTrainedTokenizerBase, **settings: Any) -> Iterator[Tokenizer]:
    """The fast tokenizer's Rust backend with these truncation settings (none if empty), restored after.

    `tokenizer(...)` sets the same backend up the same way, then copies every window into Python dicts
    (attention masks, special-token masks, ...): a fifth of the tokenizing time that we do not need.
    """
    backend = tokenizer.backend_tokenizer
    saved = backend.truncation
    if settings:
        backend.enable_truncation(**settings, direction=tokenizer.truncation_side)
    else:
        backend.no_truncation()
    backend.encode_special_tokens = tokenizer.split_special_tokens
    try:
        yield backend
    finally:
        if saved:
            backend.enable_truncation(**saved)
        else:
            backend.no_truncation()


def cut_questions(
    questions: Sequence[str], tokenizer: PreTrainedTokenizerBase, budget: int
) -> tuple[list[str], int]:
    """Left-strip questions and cut those longer than `budget` tokens after their last whole word that
    fits (inside the first word only if that word alone is longer). Returns (questions, how many were cut).

    Whole words re-tokenize to the same tokens, so a cut question never exceeds the budget; a cut inside a
    word could re-tokenize into more pieces. Left spaces are stripped as in `run_qa`: they would count as
    tokens for some tokenizers and leave less room for the context.
    """
    questions = [q.lstrip() for q in questions]
    # a token covers at least one byte (plus one leading marker): shorter questions cannot be too long
    maybe_long = [i for i, q in enumerate(questions) if len(q.encode("utf-8")) + 1 > budget]
    if not maybe_long:
        return questions, 0
    with _truncation(tokenizer) as backend:
        encodings = backend.encode_batch([questions[i] for i in maybe_long], add_special_tokens=False)
    cut = 0
    for i, enc in zip(maybe_long, encodings, strict=True):
        if len(enc) <= budget:
            continue
        words = enc.word_ids
        keep = next((t for t in range(budget, 0, -1) if words[t] is None or words[t] != words[t - 1]), budget)
        questions[i] = questions[i][: enc.offsets[keep - 1][1]]
        cut += 1
    return questions, cut


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    stride: int,
) -> tuple[list[Encoding], list[int]]:
    """Every window of every (question, context) pair and the pair each came from, in the order
    `tokenizer(question, context, truncation="only_second", max_length=..., stride=...,
    return_overflowing_tokens=True)` gives them (context first for tokenizers that pad on the left)."""
    question_first = tokenizer.padding_side == "right"
    pairs = zip(questions, contexts, strict=True) if question_first else zip(contexts, questions, strict=True)
    strategy = "only_second" if question_first else "only_first"
    with _truncation(tokenizer, max_length=max_length, stride=stride, strategy=strategy) as backend:
        encodings = backend.encode_batch(list(pairs))
    windows = [w for e in encodings for w in (e, *e.overflowing)]
    return windows, [i for i, e in enumerate(encodings) for _ in range(1 + len(e.overflowing))]


def offsets_include_spaces(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Metaspace and byte-level BPE tokenizers put the space before a word into its token's span."""
    text = "a  b\tc"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return any(text[a:b] != text[a:b].strip() or a == b for a, b in enc["offset_mapping"])
