"""SQuAD data: files or hub -> examples -> cached features -> DataLoaders.

`SquadDataModule` wires the pure pieces (`io.read_examples`, `features.prepare_features` / `collate`,
`samplers`) to `datasets` (loading, `map`, the on-disk feature cache) and to Lightning.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import datasets
import torch
from filelock import FileLock
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from transformers import PreTrainedTokenizerBase

from lightning_qa.features import (
    LABELS,
    MODEL_INPUTS,
    TEACHER_LOGITS,
    Collator,
    chunk_batches,
    prepare_features,
)
from lightning_qa.io import DataError, count_examples, iter_examples, read_examples
from lightning_qa.samplers import ExampleShardSampler, LengthGroupedSampler, ResumableLoader, ShuffledSampler
from lightning_qa.tokenization import cut_questions, load_tokenizer, question_budget

log = logging.getLogger(__name__)

FEATURES_VERSION = "v4"  # bump when prepare_features changes what it writes
# How each setting of the data module bears on the feature cache (a test checks every one is listed):
# these change the features of every split ...
FEATURE_SETTINGS = (
    "version_2_with_negative",
    "on_bad_record",
    "max_seq_length",
    "doc_stride",
    "max_question_length",
)
# ... these say where a split's examples come from and how many are kept (see `_fingerprint`) ...
SOURCE_SETTINGS = (
    "model_name_or_path",  # by the tokenizer's content, not its path
    "dataset_name",
    "dataset_config_name",
    "train_file",
    "validation_file",
    "test_file",
    "predict_file",
    "question",
    "context",
    "validation_split",
    "seed",
    "max_train_samples",
    "max_eval_samples",
    "max_predict_samples",
)
# ... and these only shape batches, or change no feature: changing them reuses the cache.
LOADER_SETTINGS = (
    "train_batch_size",
    "eval_batch_size",
    "num_workers",
    "pad_to_multiple_of",
    "group_by_length",
    "shuffle",
    "cache_dir",
    "trust_remote_code",
    "predict_chunk_size",  # the predict split is streamed, never cached
)


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
        predict_chunk_size: `predict` streams its questions: this many are read, tokenized, sorted by
            window length and answered together, so memory depends on it, not on the file's size.
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
        predict_chunk_size: int = 256,
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
        self.question_budget = 0  # set with the tokenizer (`tokenization.question_budget`)
        self.features: dict[str, datasets.Dataset] = {}
        self._train_loader: ResumableLoader | None = None
        self._train_position: dict[str, int] | None = None  # restored from a checkpoint, applied once
        self.n_predict = 0  # questions to predict, counted by the pre-pass (`io.count_examples`)
        self.predict_todo: list[int] | None = None  # chunks still to answer (set by the prediction writer)
        self.teacher_logits: datasets.Dataset | None = None  # row-aligned with the training features

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self._tokenizer is None:
            hp = self.hparams
            tokenizer = load_tokenizer(hp.model_name_or_path, hp.trust_remote_code)
            # fail now, with one message, on window settings that cannot work
            self.question_budget = question_budget(
                tokenizer, hp.max_seq_length, hp.doc_stride, hp.max_question_length
            )
            self._tokenizer = tokenizer
            # the cache key holds the tokenizer's content (hashed once: its JSON is ~1 MB for a BERT vocabulary)
            self._tokenizer_key = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
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
        """The feature cache's key for `split`: every setting that can change its features, in one place
        (`FEATURE_SETTINGS`, and of `SOURCE_SETTINGS` those of this split), the tokenizer by its content,
        files by path, size and modification time. A validate run reuses the features fit made."""
        hp = self.hparams
        held_out = self._holds_out_validation() and split in ("train", "validation")
        source = hp.train_file if held_out else self._split_source(split)
        tok = self.tokenizer
        return _fingerprint(
            FEATURES_VERSION,
            split,
            {k: hp[k] for k in FEATURE_SETTINGS},
            _file_signature(source) if source else [hp.dataset_name, hp.dataset_config_name],
            [hp.validation_split, hp.seed] if held_out else None,
            self._limit(split),
            self._tokenizer_key,
            [type(tok).__name__, tok.padding_side, tok.split_special_tokens],
            datasets.__version__,
        )

    def _build_features(self, split: str) -> datasets.Dataset | None:
        """Features of a split from the on-disk cache, tokenizing first if needed. A file lock makes one
        process per machine tokenize (also with several local "nodes"); the others wait and read."""
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
        tokenizer = self.tokenizer  # loaded with its question budget
        budget = self.question_budget
        questions, cut = cut_questions(examples["question"], tokenizer, budget)
        if cut:
            why = (
                ""
                if budget == hp.max_question_length
                else " (less than max_question_length: room for doc_stride)"
            )
            log.warning(
                f"{split}: {cut} question(s) longer than {budget} tokens{why} were cut after a whole word"
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
            if split != "predict":
                self._build_features(split)

    def setup(self, stage: str | None = None) -> None:
        for split in self._stages(stage):
            if split == "predict":
                self.n_predict = self._count_predict()
            elif split not in self.features:
                built = self._build_features(split)
                if built is not None:
                    self.features[split] = built

    def _count_predict(self) -> int:
        """Check every question to predict before any model work (a streaming pre-pass), keeping none."""
        hp = self.hparams
        if hp.question is not None:
            if not hp.context:
                raise ValueError("--data.question needs --data.context")
            return 1
        if hp.predict_file is None:
            raise ValueError(
                "no predict data: set --data.predict_file (or --data.question and --data.context)"
            )
        n = count_examples(hp.predict_file, hp.on_bad_record)
        return min(n, hp.max_predict_samples) if hp.max_predict_samples is not None else n

    def predict_records(self) -> Iterator[dict]:
        """The questions to predict, read again one at a time."""
        hp = self.hparams
        if hp.question is not None:
            yield {"id": "0", "question": hp.question, "context": hp.context}
            return
        yield from islice(iter_examples(hp.predict_file), self.n_predict)

    def add_teacher_logits(self, teacher: str) -> None:
        """Attach a teacher's logits of every training window (`distill.teacher_logits`): read from their
        Arrow file beside the feature cache, keyed by the features' key, the teacher and the trainer's
        precision, or computed once (every rank then reads the same file; a resumed run finds it there)."""
        from lightning_qa import distill

        features = self._require("train")
        trainer = self.trainer
        precision = str(trainer.precision) if trainer else "32-true"
        fingerprint = self._fingerprint("train")
        key = _fingerprint(fingerprint, distill.teacher_key(teacher, precision))
        self.teacher_logits = distill.teacher_logits(
            teacher,
            features,
            os.path.join(self.cache_dir, "features", f"train-{fingerprint}.teacher-{key}.arrow"),
            pad_token_id=self.tokenizer.pad_token_id or 0,
            batch_size=self.hparams.eval_batch_size,
            device=trainer.strategy.root_device if trainer else torch.device("cpu"),
            precision=trainer.precision_plugin if trainer else None,
            local_rank=trainer.local_rank if trainer else 0,
            progress=trainer is None or trainer.progress_bar_callback is not None,
        )

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
        if self.teacher_logits is not None:
            features = datasets.concatenate_datasets([features, self.teacher_logits], axis=1)
        model_columns = [c for c in (*MODEL_INPUTS, *LABELS, *TEACHER_LOGITS) if c in features.column_names]
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
        """Batches straight from the streamed questions (`PredictStream`): nothing is cached or kept."""
        if not self.n_predict:
            self.setup("predict")
        world, rank = self._world()
        hp = self.hparams
        chunks = self.predict_todo
        if chunks is None:
            chunks = list(range(rank, math.ceil(self.n_predict / hp.predict_chunk_size), world))
        return DataLoader(PredictStream(self, chunks), batch_size=None, num_workers=hp.num_workers)

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


class PredictStream(IterableDataset):
    """The predict split as batches, streamed: questions are read `predict_chunk_size` at a time, and each
    chunk of this rank's (`chunks`) is tokenized, sorted by window length and batched (`chunk_batches`).
    Its batches carry the chunk's number, and its last one says the chunk is done, so the prediction
    writer decodes and writes each chunk as soon as it is answered. DataLoader workers split the chunks.
    """

    def __init__(self, datamodule: SquadDataModule, chunks: list[int]) -> None:
        self.dm, self.chunks = datamodule, chunks

    def __iter__(self) -> Iterator[dict[str, Any]]:
        hp, tokenizer = self.dm.hparams, self.dm.tokenizer
        worker = get_worker_info()
        mine = set(self.chunks[worker.id :: worker.num_workers] if worker else self.chunks)
        records = self.dm.predict_records()
        size = hp.predict_chunk_size
        for chunk in range(max(mine, default=-1) + 1):
            rows = list(islice(records, size))
            if chunk not in mine:
                continue
            columns = {k: [r[k] for r in rows] for k in ("id", "question", "context")}
            for batch in chunk_batches(
                columns,
                tokenizer,
                max_seq_length=hp.max_seq_length,
                doc_stride=hp.doc_stride,
                max_question_length=hp.max_question_length,
                batch_size=hp.eval_batch_size,
                pad_to_multiple_of=hp.pad_to_multiple_of,
                word_ids=True,  # `--model.decoding pipeline` aligns answers to whole words
                first_index=chunk * size,
            ):
                yield {**batch, "chunk": chunk}


def sample_path(name: str) -> str:
    """Path of a file of the SQuAD-format sample shipped with the package."""
    return str(Path(__file__).parent / "assets" / "sample" / name)
