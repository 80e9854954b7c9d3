"""Examples -> features (token windows with labels and offsets) -> padded batches.

One `prepare_features` and one `collate` serve training, evaluation, `lightning_qa predict` and
`QAPredictor`, so a question is cut, windowed, labelled and padded the same way everywhere.
"""

from __future__ import annotations

import inspect
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from lightning_qa.tokenization import (
    cut_questions,
    encode_windows,
    offsets_include_spaces,
    question_budget,
)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
LABELS = ("start_positions", "end_positions")
# a teacher's logits of each training window (`distill.py`), padded with the batch
TEACHER_LOGITS = ("teacher_start_logits", "teacher_end_logits")
# per-window integers that travel with a batch; the rest of an evaluation feature are lists of strings
INDEX_KEYS = ("cls_index", "example_index", "feature_index")
TEXT_KEYS = ("example_id", "context", "answer_texts")

_first = itemgetter(0)


def model_inputs(model: Any, tokenizer: PreTrainedTokenizerBase | None = None) -> list[str]:
    """The inputs to feed `model`: those its forward (or call) signature names, else the tokenizer's.

    DistilBERT takes no `token_type_ids` although BERT tokenizers make them; an ONNX graph names
    exactly its inputs; a callable with `**kwargs` says nothing, so its tokenizer decides.
    """
    target = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    named = [n for n in MODEL_INPUTS if n in params]
    if "input_ids" in named:
        return named
    from_tokenizer = [n for n in MODEL_INPUTS if n in getattr(tokenizer, "model_input_names", ())]
    return from_tokenizer or ["input_ids", "attention_mask"]


def _answer_span(
    offsets: Sequence[Sequence[int]],
    ctx_start: int,
    ctx_end: int,
    start_char: int,
    end_char: int,
    last_window: bool,
) -> tuple[int, int] | None:
    """Smallest token span [start, end] covering characters [start_char, end_char) among context tokens
    ctx_start..ctx_end, or None when the answer is not wholly inside this window.

    Tokenizers may drop characters (a variation selector, a combining accent) so that no token ends where
    the answer ends: the end is the last token starting before `end_char`, and the context's last window
    holds an answer that runs to the context's end even when its final token ends short of it.
    """
    if offsets[ctx_start][0] > start_char or (offsets[ctx_end][1] < end_char and not last_window):
        return None
    lo, hi = ctx_start, ctx_end + 1
    # the last token starting at or before the answer, or the next one if the answer starts in a gap after it
    start = max(bisect_right(offsets, start_char, lo, hi, key=_first) - 1, lo)
    if offsets[start][1] <= start_char:
        start += 1
    # the last token starting before the answer's end
    end = bisect_left(offsets, end_char, lo, hi, key=_first) - 1
    return (start, end) if start <= end else None


def _trimmed(offsets: Sequence[Sequence[int]], context: str) -> list[tuple[int, int]]:
    """Token spans without surrounding whitespace ([-1, -1] for whitespace-only tokens), so a decoded
    answer never starts or ends with a space or is empty."""
    out = []
    for a, b in offsets:
        while a < b and context[a].isspace():
            a += 1
        while b > a and context[b - 1].isspace():
            b -= 1
        out.append((a, b) if a < b else (-1, -1))
    return out


def prepare_features(
    examples: dict[str, list],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_question_length: int | None = 64,
    for_eval: bool = False,
    word_ids: bool = False,
) -> dict[str, list]:
    """Tokenize a batch of examples into overlapping windows (features).

    Questions longer than the question budget (`tokenization.question_budget`) are cut first (None: the
    caller already cut them, as the data module does for a whole split at once to count them).

    Every feature gets `start_positions`/`end_positions` when the example has answers: the token span of
    the first answer, or the CLS index when it is not wholly inside the window (and for unanswerable
    questions). Evaluation features also keep what decoding needs: `example_index` (row of the example in
    its table), `offsets` (character span of each context token, [-1, -1] elsewhere), `cls_index`, and the
    example's id, context and gold answer texts, so a batch is self-contained; with `word_ids`, the word
    of each token (-1 for none), which the old pipeline's `align_to_words` needs.
    """
    questions = examples["question"]
    if max_question_length is not None:
        budget = question_budget(tokenizer, max_seq_length, doc_stride, max_question_length)
        questions, _ = cut_questions(questions, tokenizer, budget)
    contexts = examples["context"]
    windows, example = encode_windows(tokenizer, questions, contexts, max_seq_length, doc_stride)
    context_id = 1 if tokenizer.padding_side == "right" else 0
    answers = examples.get("answers")
    if answers is None and not for_eval:
        raise ValueError("training features need answers")
    out: dict[str, list] = {k: [] for k in MODEL_INPUTS if k in tokenizer.model_input_names}
    out.pop("attention_mask", None)  # all ones before padding: collate builds it
    out["start_positions"], out["end_positions"], out["cls_index"] = [], [], []
    if for_eval:
        for key in ("example_index", "offsets", *TEXT_KEYS, *(("word_ids",) if word_ids else ())):
            out[key] = []
    base_index = examples["__index__"] if "__index__" in examples else None
    ids_of = examples.get("id")
    trim = for_eval and offsets_include_spaces(tokenizer)
    cls_id = tokenizer.cls_token_id
    for i, (enc, ex) in enumerate(zip(windows, example, strict=True)):
        answer = answers[ex] if answers is not None and answers[ex]["text"] else None
        last_window = i + 1 == len(windows) or example[i + 1] != ex
        ids, offsets, seq_ids = enc.ids, enc.offsets, enc.sequence_ids
        try:
            cls_index = ids.index(cls_id)
        except ValueError:  # no CLS token (or none in this tokenizer): position 0 stands in for it
            cls_index = 0
        ctx_start = seq_ids.index(context_id)
        ctx_end = len(seq_ids) - 1 - seq_ids[::-1].index(context_id)
        span = None
        if answer is not None:
            start_char = answer["answer_start"][0]
            end_char = start_char + len(answer["text"][0])
            span = _answer_span(offsets, ctx_start, ctx_end, start_char, end_char, last_window)
        out["input_ids"].append(ids)
        if "token_type_ids" in out:
            out["token_type_ids"].append(enc.type_ids)
        out["start_positions"].append(span[0] if span else cls_index)
        out["end_positions"].append(span[1] if span else cls_index)
        out["cls_index"].append(cls_index)
        if for_eval:
            out["example_index"].append(base_index[ex] if base_index is not None else ex)
            # the context tokens are one contiguous range: mask the rest by slicing (no per-token Python)
            spans = _trimmed(offsets, contexts[ex]) if trim else offsets
            context_offsets = np.fromiter(chain.from_iterable(spans), np.int32, 2 * len(spans))
            context_offsets = context_offsets.reshape(-1, 2)
            context_offsets[:ctx_start] = -1
            context_offsets[ctx_end + 1 :] = -1
            out["offsets"].append(context_offsets)
            out["example_id"].append(ids_of[ex] if ids_of is not None else str(ex))
            out["context"].append(contexts[ex])
            out["answer_texts"].append(list(answers[ex]["text"]) if answers is not None else [])
            if word_ids:
                out["word_ids"].append([-1 if w is None else w for w in enc.word_ids])
    return out


def collate(
    features: list[dict[str, Any]], pad_token_id: int = 0, pad_to_multiple_of: int | None = 8
) -> dict[str, Any]:
    """Pad a list of features to the longest one (rounded up to `pad_to_multiple_of`), on the right.

    Right padding keeps labels, `cls_index` and offsets valid as stored, whatever the tokenizer's side.
    """
    lengths = [len(f["input_ids"]) for f in features]
    length = max(lengths)
    if pad_to_multiple_of:
        length = math.ceil(length / pad_to_multiple_of) * pad_to_multiple_of
    first = features[0]
    padded = {"input_ids": pad_token_id, "token_type_ids": 0, "word_ids": -1}
    arrays = {k: np.full((len(features), length), pad, np.int64) for k, pad in padded.items() if k in first}
    mask = np.zeros((len(features), length), np.int64)
    if "offsets" in first:
        offsets = np.full((len(features), length, 2), -1, np.int64)
    for row, (f, n) in enumerate(zip(features, lengths, strict=True)):
        mask[row, :n] = 1
        for key, array in arrays.items():
            array[row, :n] = f[key]
        if "offsets" in first:  # [L, 2] from prepare_features, flat [2L] from the Arrow cache
            offsets[row, :n] = np.asarray(f["offsets"]).reshape(-1, 2)
    batch: dict[str, Any] = {k: torch.from_numpy(v) for k, v in arrays.items()}
    batch["attention_mask"] = torch.from_numpy(mask)
    for key in TEACHER_LOGITS:
        if key in first:  # padding is masked out of the loss
            logits = np.zeros((len(features), length), np.float32)
            for row, (f, n) in enumerate(zip(features, lengths, strict=True)):
                logits[row, :n] = f[key]
            batch[key] = torch.from_numpy(logits)
    for key in (*LABELS, *INDEX_KEYS):
        if key in first:
            batch[key] = torch.tensor([f[key] for f in features])
    if "offsets" in first:
        batch["offsets"] = torch.from_numpy(offsets)
    for key in TEXT_KEYS:
        if key in first:
            batch[key] = [f[key] for f in features]
    return batch


class Collator:
    """Picklable collate function (DataLoader workers need one)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(features, self.pad_token_id, self.pad_to_multiple_of)


def chunk_batches(
    examples: dict[str, list],
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_seq_length: int,
    doc_stride: int,
    max_question_length: int,
    batch_size: int,
    pad_to_multiple_of: int | None = None,
    word_ids: bool = False,
    first_index: int = 0,
) -> Iterator[dict[str, Any]]:
    """A chunk of examples (columns id, question, context) as padded evaluation batches, longest windows
    first, so little is padded; `lightning_qa predict` and `QAPredictor` both answer through this.

    Windows carry their example's index (`first_index` + row) and their position in the chunk
    (`feature_index`, which orders an example's windows); the chunk's last batch has "chunk_done": True,
    when every window of every example of the chunk has been handed out. Memory is one chunk's.
    """
    n = len(examples["question"])
    columns = {**examples, "__index__": list(range(first_index, first_index + n))}
    features = prepare_features(
        columns, tokenizer, max_seq_length, doc_stride, max_question_length, for_eval=True, word_ids=word_ids
    )
    keys = [
        k
        for k in (*MODEL_INPUTS, "offsets", "cls_index", "example_index", "word_ids", *TEXT_KEYS)
        if k in features
    ]
    lengths = np.fromiter(map(len, features["input_ids"]), np.int64, len(features["input_ids"]))
    order = np.argsort(-lengths, kind="stable").tolist()
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        batch = collate(
            [{**{k: features[k][i] for k in keys}, "feature_index": i} for i in rows],
            pad_token_id,
            pad_to_multiple_of,
        )
        batch["chunk_done"] = lo + batch_size >= len(order)
        yield batch
