"""SQuAD data: files or hub -> examples -> tokenized windows (features) -> padded batches.

The feature functions are pure and module-level so they are tested on their own; `SquadDataModule`
only wires them to `datasets` (loading, `map`, on-disk cache) and to DataLoaders.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from filelock import FileLock
from lightning.pytorch import LightningDataModule
from tokenizers import Encoding, Tokenizer
from torch.utils.data import DataLoader, DistributedSampler
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from lightning_qa.io import DataError, read_examples

log = logging.getLogger(__name__)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
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


def check_lengths(
    tokenizer: PreTrainedTokenizerBase, max_seq_length: int, doc_stride: int, max_question_length: int
) -> None:
    """Fail early, with one message, on window settings the tokenizer would reject mid-run."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - max_question_length - specials
    problems = []
    if room <= 0:
        problems.append(
            f"max_seq_length ({max_seq_length}) must exceed max_question_length ({max_question_length}) "
            f"+ {specials} special tokens"
        )
    elif doc_stride >= room:
        problems.append(
            f"doc_stride ({doc_stride}) must be smaller than max_seq_length - max_question_length - special tokens "
            f"({max_seq_length} - {max_question_length} - {specials} = {room})"
        )
    if doc_stride < 0:
        problems.append(f"doc_stride ({doc_stride}) must be >= 0")
    if problems:
        raise ValueError("; ".join(problems))


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


def encode_windows(
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[str],
    contexts: Sequence[str],
    max_length: int,
    stride: int,
) -> tuple[list[Encoding], list[int]]:
    """Every window of every (question, context) pair and the pair each came from, in the order
    `tokenizer(question, context, truncation="only_second", max_length=..., stride=...,
    return_overflowing_tokens=True)` gives them (context first for tokenizers that pad on the left).
    Shared by training features and the predictor."""
    question_first = tokenizer.padding_side == "right"
    pairs = zip(questions, contexts, strict=True) if question_first else zip(contexts, questions, strict=True)
    strategy = "only_second" if question_first else "only_first"
    with _truncation(tokenizer, max_length=max_length, stride=stride, strategy=strategy) as backend:
        encodings = backend.encode_batch(list(pairs))
    windows = [w for e in encodings for w in (e, *e.overflowing)]
    return windows, [i for i, e in enumerate(encodings) for _ in range(1 + len(e.overflowing))]


def truncate_questions(
    questions: list[str], tokenizer: PreTrainedTokenizerBase, max_question_length: int
) -> tuple[list[str], int]:
    """Left-strip questions and cut those longer than `max_question_length` tokens at a token boundary.

    Without this a long question leaves no room for the context and the tokenizer panics.
    """
    questions = [q.lstrip() for q in questions]
    # a token covers at least one byte (plus one leading marker): shorter questions cannot be too long
    maybe_long = [i for i, q in enumerate(questions) if len(q.encode("utf-8")) + 1 > max_question_length]
    if not maybe_long:
        return questions, 0
    with _truncation(tokenizer) as backend:
        encodings = backend.encode_batch([questions[i] for i in maybe_long], add_special_tokens=False)
    cut = 0
    for i, enc in zip(maybe_long, encodings, strict=True):
        if len(enc) > max_question_length:
            questions[i] = questions[i][: enc.offsets[max_question_length - 1][1]]
            cut += 1
    return questions, cut


_first = itemgetter(0)


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


def _offsets_include_spaces(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Metaspace and byte-level BPE tokenizers put the space before a word into its token's span."""
    text = "a  b\tc"
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return any(text[a:b] != text[a:b].strip() or a == b for a, b in enc["offset_mapping"])


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
) -> dict[str, list]:
    """Tokenize a batch of examples into overlapping windows (features).

    Questions longer than `max_question_length` tokens are cut first (None: the caller already cut them,
    as the data module does for a whole split at once to count them for its warning).

    Every feature gets `start_positions`/`end_positions` when the example has answers: the token span of
    the first answer, or the CLS index when it is not wholly inside the window (and for unanswerable
    questions). Evaluation features also keep what decoding needs: `example_index` (row of the example in
    its table), `offsets` (character span of each context token, [-1, -1] elsewhere), `cls_index`, and the
    example's id, context and gold answer texts, so a batch is self-contained.
    """
    questions = examples["question"]
    if max_question_length is not None:
        questions, _ = truncate_questions(list(questions), tokenizer, max_question_length)
    contexts = examples["context"]
    windows, example = encode_windows(tokenizer, questions, contexts, max_seq_length, doc_stride)
    context_id = 1 if tokenizer.padding_side == "right" else 0
    answers = examples.get("answers")
    out: dict[str, list] = {k: [] for k in MODEL_INPUTS if k in tokenizer.model_input_names}
    out.pop("attention_mask", None)  # all ones before padding: collate builds it
    out["start_positions"], out["end_positions"], out["cls_index"] = [], [], []
    if for_eval:
        for key in ("example_index", "offsets", "example_id", "context", "answer_texts"):
            out[key] = []
    base_index = examples["__index__"] if "__index__" in examples else None
    trim = for_eval and _offsets_include_spaces(tokenizer)
    cls_id = tokenizer.cls_token_id
    for i, (enc, ex) in enumerate(zip(windows, example, strict=True)):
        answer = answers[ex] if answers is not None and answers[ex]["text"] else None
        last_window = i + 1 == len(windows) or example[i + 1] != ex
        ids, offsets, seq_ids = enc.ids, enc.offsets, enc.sequence_ids
        cls_index = ids.index(cls_id) if cls_id is not None else 0
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
            out["example_id"].append(examples["id"][ex])
            out["context"].append(contexts[ex])
            out["answer_texts"].append(list(answers[ex]["text"]) if answers is not None else [])
    if answers is None and not for_eval:
        raise ValueError("training features need answers")
    return out


def collate(
    features: list[dict[str, Any]], pad_token_id: int = 0, pad_to_multiple_of: int | None = 8
) -> dict[str, Any]:
    """Pad a list of features to the longest one (rounded up to `pad_to_multiple_of`), on the right.

    Right padding keeps labels, `cls_index` and offsets valid as stored, whatever the tokenizer's side.
    """
    length = max(len(f["input_ids"]) for f in features)
    if pad_to_multiple_of:
        length = math.ceil(length / pad_to_multiple_of) * pad_to_multiple_of
    batch: dict[str, Any] = {
        "attention_mask": torch.tensor(
            [[1] * len(f["input_ids"]) + [0] * (length - len(f["input_ids"])) for f in features]
        )
    }
    for key, pad in (("input_ids", pad_token_id), ("token_type_ids", 0)):
        if key in features[0]:
            batch[key] = torch.tensor([f[key] + [pad] * (length - len(f[key])) for f in features])
    for key in ("start_positions", "end_positions", "cls_index", "example_index", "feature_index"):
        if key in features[0]:
            batch[key] = torch.tensor([f[key] for f in features])
    if "offsets" in features[0]:
        batch["offsets"] = torch.full((len(features), length, 2), -1, dtype=torch.long)
        for row, f in enumerate(features):  # [L, 2] from prepare_features, flat [2L] from the Arrow cache
            offsets = np.asarray(f["offsets"], dtype=np.int64).reshape(-1, 2)
            batch["offsets"][row, : len(offsets)] = torch.from_numpy(offsets)
        for key in ("example_id", "context", "answer_texts"):
            batch[key] = [f[key] for f in features]
    return batch


class Collator:
    """Picklable collate function (DataLoader workers need one)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return collate(features, self.pad_token_id, self.pad_to_multiple_of)


class ExampleShardSampler(DistributedSampler):
    """Evaluation sampler: each rank gets whole examples (all their windows), each example exactly once,
    in order of decreasing length so that dynamic padding wastes little.

    Being a `DistributedSampler`, Lightning keeps it instead of injecting its own, which would duplicate
    features to even out ranks and split an example's windows across devices.
    """

    def __init__(
        self, example_index: Sequence[int], lengths: Sequence[int], num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.num_replicas, self.rank = num_replicas, rank
        n_examples = (max(example_index) + 1) if len(example_index) else 0
        lo, hi = n_examples * rank // num_replicas, n_examples * (rank + 1) // num_replicas
        mine = [i for i, e in enumerate(example_index) if lo <= e < hi]
        self.indices = sorted(mine, key=lambda i: -lengths[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        pass


def resume_order(sampler: DistributedSampler, order: list[int]) -> Iterator[int]:
    """The epoch's order, less the windows this rank already trained on when a run resumes mid-epoch
    (`ResumableLoader.load_state_dict` sets `resume_at` once; later epochs are whole again)."""
    epoch, done = getattr(sampler, "resume_at", None) or (-1, 0)
    sampler.resume_at = None
    return iter(order[done:] if epoch == sampler.epoch else order)


class ShuffledSampler(DistributedSampler):
    """torch's `DistributedSampler` (per-epoch seeded shuffle, even shards) that can resume mid-epoch."""

    def __iter__(self) -> Iterator[int]:
        return resume_order(self, list(super().__iter__()))


class ResumableLoader(DataLoader):
    """The training DataLoader, resumable at the exact batch. Lightning saves its `state_dict` (the epoch and
    the batches handed out in it) in every checkpoint, mid-epoch ones included, and restores it on resume;
    the sampler, whose order is a function of (seed, epoch), then skips those batches instead of replaying
    the epoch from its start. (Lightning iterates sized loaders without prefetching, so the count is exact.)"""

    _served = 0

    def __iter__(self) -> Iterator[Any]:
        epoch, done = getattr(self.sampler, "resume_at", None) or (-1, 0)
        self._served = done // self.batch_size if epoch == self.sampler.epoch else 0
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at = (state["epoch"], state["batches"] * self.batch_size)


class LengthGroupedSampler(DistributedSampler):
    """Training sampler: shuffled buckets of similar length, so batches carry little padding while the
    epoch order stays random. Seeded by (seed, epoch), so a resumed run draws the same order.

    With several ranks, global batches (batch_size x num_replicas windows of similar length) are split
    between the ranks, which all get the same number of windows. Being a `DistributedSampler`, Lightning
    keeps it rather than wrapping it in a shuffling sampler that would undo the grouping.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 42,
        num_replicas: int = 1,
        rank: int = 0,
        bucket_batches: int = 50,
    ) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.num_replicas, self.rank, self.bucket_batches = num_replicas, rank, bucket_batches
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        order += order[: len(self) * self.num_replicas - len(order)]  # every rank gets as many windows
        step = self.batch_size * self.num_replicas
        batches = []
        for b in range(0, len(order), step * self.bucket_batches):
            bucket = sorted(order[b : b + step * self.bucket_batches], key=lambda i: self.lengths[i])
            batches += [bucket[j : j + step] for j in range(0, len(bucket), step)]
        # only the final bucket can end in a short batch: keep it last so the DataLoader's chunks of
        # batch_size line up with these batches
        full = [b for b in batches if len(b) == step]
        rng.shuffle(full)
        mine = []
        for batch in full + [b for b in batches if len(b) < step]:
            share = len(batch) // self.num_replicas
            mine += batch[self.rank * share : (self.rank + 1) * share]
        return resume_order(self, mine)


def split_by_context(
    examples: datasets.Dataset, fraction: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out whole articles (by title, else by context): questions sharing a context never straddle."""
    keys = (
        examples["title"]
        if "title" in examples.column_names and all(examples["title"])
        else examples["context"]
    )
    groups = sorted(set(keys))
    random.Random(seed).shuffle(groups)
    held = set(groups[: max(1, round(len(groups) * fraction))])
    val = [i for i, k in enumerate(keys) if k in held]
    train = [i for i, k in enumerate(keys) if k not in held]
    return examples.select(train), examples.select(val)


def _features_to_store(examples: dict[str, list], **settings: Any) -> dict[str, list]:
    """`prepare_features` with each window's offsets flattened to [start, end, start, end, ...]: Arrow
    writes a 1-D array per row about 5x faster than an [L, 2] one (a tenth of a SQuAD dev tokenization);
    `collate` takes either."""
    out = prepare_features(examples, **settings)
    if "offsets" in out:
        out["offsets"] = [o.reshape(-1) for o in out["offsets"]]
    return out


def _with_feature_index(features: datasets.Dataset, split: str) -> datasets.Dataset:
    """Evaluation features carry their row number, which identifies a window across devices."""
    if split == "train":
        return features
    return _add_column(features, "feature_index", list(range(len(features))))


def _add_column(table: datasets.Dataset, name: str, values: list) -> datasets.Dataset:
    """`add_column` without hashing every value for the new table's fingerprint (a fifth of a second
    per SQuAD dev column): the values follow from the table and settings our cache key already holds."""
    return table.add_column(name, values, new_fingerprint=_fingerprint(table._fingerprint, name, len(values)))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while reading and tokenizing a split.

    Both allocate millions of small lists and tuples (records, token ids, offsets) that reference
    counting frees on its own; each batch of them triggers a collection that walks every live object
    (the tokenizer, the model), which cost ~10% of a cold tokenization of SQuAD dev.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _file_signature(path: str) -> list:
    if not os.path.isfile(path):
        raise DataError([f"{path}: file not found"])
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


class SquadDataModule(LightningDataModule):
    """SQuAD v1.1 / v2.0 data from the Hugging Face hub or local files.

    Args:
        model_name_or_path: Tokenizer to use (linked to `--model.model_name_or_path` by the CLI).
        dataset_name: Hub dataset, e.g. "squad" or "squad_v2". Ignored for splits given as files.
        dataset_config_name: Hub dataset configuration name.
        train_file: SQuAD JSON or JSON Lines file for training.
        validation_file: File for validation (scored with SQuAD exact match / F1).
        test_file: File for `lightning_qa test`.
        predict_file: File for `lightning_qa predict` (answers optional).
        question: A single question to predict (with `context`) instead of `predict_file`.
        context: The context for `question`.
        version_2_with_negative: SQuAD 2.0: some questions have no answer.
        validation_split: With only a training set, hold out this fraction of its articles for validation.
        max_train_samples: Keep only the first N training examples (all their windows).
        max_eval_samples: Keep only the first N validation/test examples.
        max_predict_samples: Keep only the first N examples to predict.
        max_seq_length: Tokens per window (question + context + special tokens).
        doc_stride: Tokens of overlap between consecutive windows of a long context.
        max_question_length: Questions longer than this many tokens are truncated (with a warning).
        train_batch_size: Windows per training batch (per device).
        eval_batch_size: Windows per validation/test/predict batch (per device).
        num_workers: DataLoader worker processes.
        pad_to_multiple_of: Round each batch's padded length up to a multiple of this (None: no rounding).
        group_by_length: Batch training windows of similar length together (shuffled buckets).
        shuffle: Shuffle the training windows each epoch (off: a fixed order, e.g. to compare runs).
        cache_dir: Where tokenized features are cached (default ~/.cache/lightning_qa).
        seed: Seed for the validation split and the length-grouped sampler.
        trust_remote_code: Allow tokenizers with custom code from the hub (off: never run foreign code silently).
        on_bad_record: Unusable records in data files: "error" lists every problem and stops; "skip" drops
            them with one warning. Answer starts that miss their text are repaired either way.
    """

    def __init__(
        self,
        model_name_or_path: str = "distilbert/distilbert-base-uncased",
        dataset_name: str | None = None,
        dataset_config_name: str | None = None,
        train_file: str | None = None,
        validation_file: str | None = None,
        test_file: str | None = None,
        predict_file: str | None = None,
        question: str | None = None,
        context: str | None = None,
        version_2_with_negative: bool = False,
        validation_split: float | None = None,
        max_train_samples: int | None = None,
        max_eval_samples: int | None = None,
        max_predict_samples: int | None = None,
        max_seq_length: int = 384,
        doc_stride: int = 128,
        max_question_length: int = 64,
        train_batch_size: int = 16,
        eval_batch_size: int = 16,
        num_workers: int = 0,
        pad_to_multiple_of: int | None = 8,
        group_by_length: bool = False,
        shuffle: bool = True,
        cache_dir: str | None = None,
        seed: int = 42,
        trust_remote_code: bool = False,
        on_bad_record: str = "error",
    ) -> None:
        super().__init__()
        if on_bad_record not in ("error", "skip"):
            raise ValueError(f"on_bad_record must be 'error' or 'skip', not {on_bad_record!r}")
        self.save_hyperparameters()
        self.cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "lightning_qa")
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self.features: dict[str, datasets.Dataset] = {}
        self._train_loader: ResumableLoader | None = None
        self._train_position: dict[str, int] | None = None  # restored from a checkpoint, applied once

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            hp = self.hparams
            self._tokenizer = load_tokenizer(hp.model_name_or_path, hp.trust_remote_code)
            check_lengths(self._tokenizer, hp.max_seq_length, hp.doc_stride, hp.max_question_length)
        return self._tokenizer

    # -- examples ---------------------------------------------------------------------------------------
    def _split_source(self, split: str) -> str | None:
        hp = self.hparams
        return {
            "train": hp.train_file,
            "validation": hp.validation_file,
            "test": hp.test_file,
            "predict": hp.predict_file,
        }[split]

    def load_examples(self, split: str) -> datasets.Dataset | None:
        """Examples of one split (id, title, question, context, answers), or None if not configured."""
        hp = self.hparams
        if split == "predict" and hp.question is not None:
            if not hp.context:
                raise ValueError("--data.question needs --data.context")
            record = {"id": "0", "title": "", "question": hp.question, "context": hp.context}
            return datasets.Dataset.from_list([{**record, "answers": {"text": [], "answer_start": []}}])
        if self._holds_out_validation() and split in ("train", "validation"):
            records = read_examples(
                hp.train_file,
                need_answers=True,
                on_bad_record=hp.on_bad_record,
                allow_unanswerable=hp.version_2_with_negative,
            )
            full = datasets.Dataset.from_list(records)
            train, val = split_by_context(full, hp.validation_split, hp.seed)
            examples = train if split == "train" else val
        elif (path := self._split_source(split)) is not None:
            records = read_examples(
                path,
                need_answers=split != "predict",
                on_bad_record=hp.on_bad_record,
                allow_unanswerable=hp.version_2_with_negative,
            )
            examples = datasets.Dataset.from_list(records)
        elif hp.dataset_name is not None and split != "predict":
            hub_split = "validation" if split == "test" else split  # SQuAD publishes no test answers
            examples = datasets.load_dataset(hp.dataset_name, hp.dataset_config_name, split=hub_split)
        else:
            return None
        limit = self._limit(split)
        if limit is not None:
            examples = examples.select(range(min(limit, len(examples))))
        return examples

    def _configured(self, split: str) -> bool:
        hp = self.hparams
        if self._split_source(split) is not None or (
            self._holds_out_validation() and split in ("train", "validation")
        ):
            return True
        return hp.dataset_name is not None and split != "predict"

    def _limit(self, split: str) -> int | None:
        hp = self.hparams
        return {"train": hp.max_train_samples, "predict": hp.max_predict_samples}.get(
            split, hp.max_eval_samples
        )

    def _holds_out_validation(self) -> bool:
        hp = self.hparams
        return bool(hp.validation_split) and hp.train_file is not None and hp.validation_file is None

    # -- features ---------------------------------------------------------------------------------------
    def _fingerprint(self, split: str) -> str:
        hp = self.hparams
        source = self._split_source(split)
        source_sig = (
            _file_signature(source)
            if source and os.path.exists(source)
            else [hp.dataset_name, hp.dataset_config_name]
        )
        if self._holds_out_validation() and split in ("train", "validation"):
            source_sig = [_file_signature(hp.train_file), hp.validation_split, hp.seed]
        tok = self.tokenizer
        return _fingerprint(
            "v3",
            split,
            hp.on_bad_record,
            source_sig,
            tok.name_or_path,
            tok.vocab_size,
            type(tok).__name__,
            tok.padding_side,
            hp.max_seq_length,
            hp.doc_stride,
            hp.max_question_length,
            self._limit(split),
            datasets.__version__,
        )

    def _build_features(self, split: str) -> datasets.Dataset | None:
        """Features of a split from the on-disk cache, tokenizing first if needed. A file lock makes one
        process per machine tokenize (also with several local "nodes"); the others wait and read."""
        if split == "predict" and self.hparams.question is not None:
            return self._tokenize(split, None)  # one ad-hoc question: nothing worth caching
        if not self._configured(split):
            return None
        cache_file = os.path.join(self.cache_dir, "features", f"{split}-{self._fingerprint(split)}.arrow")
        os.makedirs(os.path.dirname(cache_file), exist_ok=True)
        with FileLock(cache_file + ".lock"):
            if not os.path.exists(cache_file) and self._tokenize(split, cache_file) is None:
                return None
        return _with_feature_index(datasets.Dataset.from_file(cache_file), split)

    @_collector_paused()
    def _tokenize(self, split: str, cache_file: str | None) -> datasets.Dataset | None:
        hp = self.hparams
        examples = self.load_examples(split)
        if examples is None:
            return None
        examples = _add_column(examples, "__index__", list(range(len(examples))))
        questions, cut = truncate_questions(examples["question"], self.tokenizer, hp.max_question_length)
        if cut:
            log.warning(
                f"{split}: {cut} question(s) longer than max_question_length={hp.max_question_length} tokens were truncated"
            )
        examples = _add_column(
            examples.remove_columns(
                "question", new_fingerprint=_fingerprint(examples._fingerprint, "-question")
            ),
            "question",
            questions,
        )
        features = examples.map(
            _features_to_store,
            batched=True,
            batch_size=1000,
            remove_columns=examples.column_names,
            fn_kwargs=dict(
                tokenizer=self.tokenizer,
                max_seq_length=hp.max_seq_length,
                doc_stride=hp.doc_stride,
                max_question_length=None,  # cut above
                for_eval=split != "train",
            ),
            cache_file_name=cache_file,
            new_fingerprint=self._fingerprint(split) if cache_file else None,
            desc=f"Tokenizing {split}",
        )
        log.info(f"Tokenized {split}: {len(examples)} examples -> {len(features)} windows")
        return _with_feature_index(features, split)

    def _stages(self, stage: str | None) -> list[str]:
        return {
            "fit": ["train", "validation"],
            "validate": ["validation"],
            "test": ["test"],
            "predict": ["predict"],
            None: ["train", "validation", "test", "predict"],
        }[stage]

    def prepare_data(self) -> None:
        """Tokenize once per machine (local rank 0); `setup` on every rank then reads the cache."""
        stage = self.trainer.state.fn.value if self.trainer is not None and self.trainer.state.fn else None
        for split in self._stages(stage):
            if split == "predict" and self.hparams.question is not None:
                continue
            self._build_features(split)

    def setup(self, stage: str | None = None) -> None:
        for split in self._stages(stage):
            if split not in self.features:
                built = self._build_features(split)
                if built is not None:
                    self.features[split] = built

    # -- loaders ----------------------------------------------------------------------------------------
    def _collator(self) -> Collator:
        return Collator(self.tokenizer.pad_token_id or 0, self.hparams.pad_to_multiple_of)

    def _world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def train_dataloader(self) -> DataLoader:
        """Windows in a per-epoch seeded order (a resumed run replays it), sharded over the ranks here,
        since Lightning's own distributed sampler would always shuffle and ignore length grouping."""
        features = self._require("train")
        world, rank = self._world()
        hp = self.hparams
        if hp.group_by_length:
            lengths = [len(x) for x in features["input_ids"]]
            sampler = LengthGroupedSampler(lengths, hp.train_batch_size, hp.seed, world, rank)
        else:
            sampler = ShuffledSampler(features, world, rank, shuffle=hp.shuffle, seed=hp.seed)
        model_columns = [
            c for c in (*MODEL_INPUTS, "start_positions", "end_positions") if c in features.column_names
        ]
        self._train_loader = ResumableLoader(
            features.select_columns(model_columns),
            batch_size=hp.train_batch_size,
            sampler=sampler,
            collate_fn=self._collator(),
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            # its own generator: the loader draws a seed from it for every iterator it starts, and one
            # drawn from the global RNG would shift the dropout masks of a run resumed mid-epoch
            generator=torch.Generator().manual_seed(hp.seed),
        )
        if self._train_position:
            self._train_loader.load_state_dict(self._train_position)
            self._train_position = None
        return self._train_loader

    # Lightning 2.6 builds the training loader (for `estimated_stepping_batches`, in `configure_optimizers`)
    # before it restores the loops, so the loader state it keeps itself never reaches the loader. The
    # datamodule's state is restored first: it carries the position to the loader as it is built.
    def state_dict(self) -> dict[str, Any]:
        return {"train_position": self._train_loader.state_dict()} if self._train_loader else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_position = state_dict.get("train_position")

    def _eval_loader(self, split: str) -> DataLoader:
        features = self._require(split)
        world, rank = self._world()
        sampler = ExampleShardSampler(
            features["example_index"], [len(x) for x in features["input_ids"]], world, rank
        )
        return DataLoader(
            features,
            batch_size=self.hparams.eval_batch_size,
            sampler=sampler,
            collate_fn=self._collator(),
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self._configured("validation"):
            return []  # fit without validation: Lightning then just trains
        return self._eval_loader("validation")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def _require(self, split: str) -> datasets.Dataset:
        if split not in self.features:
            self.setup(
                {"train": "fit", "validation": "validate", "test": "test", "predict": "predict"}[split]
            )
        if split not in self.features:
            flag = {
                "train": "--data.train_file",
                "validation": "--data.validation_file",
                "test": "--data.test_file",
                "predict": "--data.predict_file",
            }[split]
            raise ValueError(f"no {split} data: set {flag} (or --data.dataset_name)")
        return self.features[split]

    def n_examples(self, split: str) -> int:
        features = self._require(split)
        return (max(features["example_index"]) + 1) if len(features) else 0


def sample_path(name: str) -> str:
    """Path of a file of the SQuAD-format sample shipped with the package."""
    return str(Path(__file__).parent / "assets" / "sample" / name)
