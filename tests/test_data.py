"""Data path: labels, windows, padding, sharding, splitting, caching.  Run: pytest tests/test_data.py"""

import inspect
import json
import os

import pytest
from helpers import SQUAD_DIR, check_labels, requires_squad

from lightning_qa.data import SquadDataModule, split_by_context
from lightning_qa.features import collate, prepare_features
from lightning_qa.io import read_examples
from lightning_qa.samplers import ExampleShardSampler, LengthGroupedSampler, ResumableLoader, ShuffledSampler
from lightning_qa.tokenization import cut_questions, question_budget


@requires_squad
def test_labels_align_on_squad_dev(bert_tokenizer):
    records = read_examples(str(SQUAD_DIR / "dev-v1.1.json"))[:1000]
    counts = check_labels(records, bert_tokenizer)
    assert counts["features"] > 1500  # many examples span several windows at 128/32
    assert counts["cls"] > 300
    assert counts["exact"] > 10 * counts["covering"]
    print(counts)


def test_labels_align_on_shipped_sample(bert_tokenizer, sample_dir):
    counts = check_labels(read_examples(str(sample_dir / "train.json")), bert_tokenizer)
    assert counts["exact"] > 200 and counts["features"] > counts["exact"]


def test_windows_overlap_and_cover_context(bert_tokenizer):
    context = " ".join(f"word{i}" for i in range(300))
    feats = prepare_features(
        {
            "id": ["a"],
            "question": ["which word?"],
            "context": [context],
            "answers": [{"text": ["word250"], "answer_start": [context.find("word250")]}],
        },
        bert_tokenizer,
        64,
        16,
        16,
        for_eval=True,
    )
    assert len(feats["input_ids"]) > 5 and all(len(x) <= 64 for x in feats["input_ids"])
    spans = [[o for o in offs if o[0] >= 0] for offs in feats["offsets"]]
    assert spans[0][0][0] == 0 and spans[-1][-1][1] == len(context)
    for prev, nxt in zip(spans, spans[1:], strict=False):
        assert nxt[0][0] < prev[-1][1]  # consecutive windows overlap
    labelled = [i for i, s in enumerate(feats["start_positions"]) if s != feats["cls_index"][i]]
    assert labelled and all(
        context[feats["offsets"][i][feats["start_positions"][i]][0] :].startswith("word250") for i in labelled
    )


def test_long_questions_are_cut_after_a_whole_word(bert_tokenizer):
    def n_tokens(text: str) -> int:
        return len(bert_tokenizer(text, add_special_tokens=False)["input_ids"])

    long_word = "antidisestablishmentarianism"  # several word pieces
    assert n_tokens(long_word) > 2
    questions, cut = cut_questions(["why " * 200, "  short?", "what " * 62 + long_word], bert_tokenizer, 64)
    assert cut == 2 and questions[1] == "short?"
    assert questions[0] == " ".join(["why"] * 64) and n_tokens(questions[0]) == 64
    assert questions[2] == " ".join(["what"] * 62)  # the word that did not fit whole is dropped whole
    feats = prepare_features(
        {
            "id": ["a"],
            "question": ["why " * 200],
            "context": ["a short context"],
            "answers": [{"text": ["short"], "answer_start": [2]}],
        },
        bert_tokenizer,
        128,
        16,
        64,
    )
    assert feats["start_positions"] == [feats["end_positions"][0]] and feats["start_positions"][0] > 64


def test_question_budget_leaves_room_for_the_stride_or_names_the_problem(bert_tokenizer):
    assert question_budget(bert_tokenizer, 384, 128, 64) == 64
    assert question_budget(bert_tokenizer, 384, 316, 64) == 64  # 384 - 3 specials - 316 - 1 = 64
    assert question_budget(bert_tokenizer, 384, 317, 64) == 63  # the question gives way to the stride
    with pytest.raises(ValueError, match=r"max_seq_length \(128\) leaves no room .*doc_stride \(128\)"):
        question_budget(bert_tokenizer, 128, 128, 64)
    with pytest.raises(ValueError, match=r"doc_stride \(-1\) must be >= 0"):
        question_budget(bert_tokenizer, 128, -1, 64)


def test_collate_pads_dynamically_to_multiple_of_8():
    feats = [
        {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "start_positions": 1, "end_positions": 2},
        {"input_ids": [1] * 10, "attention_mask": [1] * 10, "start_positions": 0, "end_positions": 0},
    ]
    batch = collate(feats, pad_token_id=0, pad_to_multiple_of=8)
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"][0].tolist() == [1, 1, 1] + [0] * 13
    assert batch["start_positions"].tolist() == [1, 0]
    assert collate(feats, 0, None)["input_ids"].shape == (2, 10)


def test_example_shard_sampler_gives_each_example_once():
    example_index = [0, 0, 1, 2, 2, 2, 3, 4, 5, 6]  # 7 examples, 10 windows: not divisible by 2 or 3
    lengths = list(range(10))
    for world in (1, 2, 3):
        shards = [list(ExampleShardSampler(example_index, lengths, world, r)) for r in range(world)]
        flat = sorted(i for s in shards for i in s)
        assert flat == list(range(10))
        for shard in shards:  # whole examples per rank, longest windows first
            assert [lengths[i] for i in shard] == sorted((lengths[i] for i in shard), reverse=True)
            exs = {example_index[i] for i in shard}
            assert {i for i in range(10) if example_index[i] in exs} == set(shard)


def test_length_grouped_sampler_is_a_seeded_permutation():
    lengths = [(i * 37) % 101 for i in range(500)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=1)
    first = list(sampler)
    assert sorted(first) == list(range(500)) and first == list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    batches = [first[i : i + 8] for i in range(0, 500, 8)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches would spread ~75


def test_split_by_context_keeps_articles_whole(sample_dir):
    import datasets

    full = datasets.Dataset.from_list(read_examples(str(sample_dir / "train.json")))
    train, val = split_by_context(full, 0.2, seed=0)
    assert len(train) + len(val) == len(full) and len(val) > 0
    assert not set(train["title"]) & set(val["title"])


def test_datamodule_limits_examples_and_caches(tmp_path, tiny_model_dir, sample_dir):
    dm = SquadDataModule(
        tiny_model_dir,
        train_file=str(sample_dir / "train.json"),
        validation_file=str(sample_dir / "dev.json"),
        max_train_samples=20,
        max_eval_samples=7,
        max_seq_length=64,
        doc_stride=16,
        max_question_length=16,
        cache_dir=str(tmp_path),
    )
    dm.prepare_data()
    cached = sorted(f for f in os.listdir(tmp_path / "features") if not f.endswith(".lock"))
    assert len(cached) == 2 and cached[0].startswith("train-") and cached[1].startswith("validation-")
    dm.setup("fit")
    val = dm.features["validation"]
    assert sorted(set(val["example_index"])) == list(range(7))  # 7 whole examples, all their windows
    assert len(val) > 7
    train_batch = next(iter(dm.train_dataloader()))
    assert set(train_batch) - {"token_type_ids"} == {
        "input_ids",
        "attention_mask",
        "start_positions",
        "end_positions",
    }
    assert train_batch["input_ids"].shape[1] % 8 == 0
    val_batch = next(iter(dm.val_dataloader()))
    assert val_batch["offsets"].shape[:2] == val_batch["input_ids"].shape and len(
        val_batch["context"]
    ) == len(val_batch["input_ids"])
    # a second data module with the same settings reads the cache instead of tokenizing again
    dm2 = SquadDataModule(
        tiny_model_dir,
        validation_file=str(sample_dir / "dev.json"),
        max_eval_samples=7,
        max_seq_length=64,
        doc_stride=16,
        max_question_length=16,
        cache_dir=str(tmp_path),
    )
    dm2.setup("validate")
    assert dm2.features["validation"]["input_ids"] == val["input_ids"]
    assert sorted(f for f in os.listdir(tmp_path / "features") if not f.endswith(".lock")) == cached


def test_predict_split_is_streamed_in_chunks_and_never_cached(tmp_path, tiny_model_dir, sample_dir):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "x1", "question": "Where?", "context": "In Paris."},
        {"id": "x2", "question": "Who?", "context": "Ann did."},
        {"id": "x3", "question": "When?", "context": "In 1887, Ann did. " * 40},  # several windows
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    dm = SquadDataModule(
        tiny_model_dir,
        predict_file=str(path),
        cache_dir=str(tmp_path),
        predict_chunk_size=2,
        max_seq_length=64,
        doc_stride=16,
    )
    dm.setup("predict")
    assert dm.n_predict == 3 and [r["id"] for r in dm.predict_records()] == ["x1", "x2", "x3"]
    batches = list(dm.predict_dataloader())
    chunks = [b["chunk"] for b in batches]
    assert chunks == sorted(chunks) and set(chunks) == {0, 1}  # chunk 0's batches, then chunk 1's
    assert [b["chunk_done"] for b in batches].count(True) == 2  # one per chunk, on its last batch
    chunk_1 = [b for b in batches if b["chunk"] == 1]
    assert {i for b in chunk_1 for i in b["example_index"].tolist()} == {2}  # the third question's windows
    assert sum(len(b["example_index"]) for b in chunk_1) > 1
    assert not os.path.exists(tmp_path / "features")  # nothing cached
    single = SquadDataModule(tiny_model_dir, question="Who?", context="Ann did.", cache_dir=str(tmp_path))
    (batch,) = list(single.predict_dataloader())
    assert batch["context"] == ["Ann did."] and batch["example_id"] == ["0"] and batch["chunk_done"]


def test_length_grouped_sampler_splits_global_batches_between_ranks():
    lengths = [(i * 37) % 101 for i in range(203)]
    for world in (2, 3):
        shards = [
            list(LengthGroupedSampler(lengths, 4, seed=3, num_replicas=world, rank=r)) for r in range(world)
        ]
        assert len({len(s) for s in shards}) == 1  # same number of windows on every rank (no DDP hang)
        assert set().union(*map(set, shards)) == set(range(203))  # all covered (a few padded twice)
        for step in range(
            len(shards[0]) // 4 - 1
        ):  # step k of all ranks: one global batch of similar lengths
            batch = [i for s in shards for i in s[step * 4 : (step + 1) * 4]]
            assert max(lengths[i] for i in batch) - min(lengths[i] for i in batch) < 15


@pytest.mark.parametrize("grouped", [False, True])
def test_resumable_loader_continues_at_the_exact_batch(grouped):
    """A loader restored from the state saved after 3 batches of epoch 1 yields exactly the rest of that
    epoch; the epoch after it is whole again."""
    data = list(range(45))

    def loader() -> ResumableLoader:
        if grouped:
            sampler = LengthGroupedSampler([(i * 7) % 11 for i in data], batch_size=4, seed=5)
        else:
            sampler = ShuffledSampler(data, num_replicas=1, rank=0, seed=5)
        return ResumableLoader(data, batch_size=4, sampler=sampler, collate_fn=list)

    straight = loader()
    straight.sampler.set_epoch(1)
    epoch_1 = list(straight)
    assert sorted(i for b in epoch_1 for i in b) == data and straight.state_dict()["batches"] == 12
    straight.sampler.set_epoch(1)
    it = iter(straight)
    head = [next(it) for _ in range(3)]
    state = straight.state_dict()
    assert head == epoch_1[:3] and state == {"epoch": 1, "batches": 3}

    resumed = loader()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    assert list(resumed) == epoch_1[3:]
    assert resumed.state_dict() == {"epoch": 1, "batches": 12}  # counts the skipped batches too
    resumed.sampler.set_epoch(2)
    straight.sampler.set_epoch(2)
    assert list(resumed) == list(straight)  # the next epoch is whole and the same


def test_every_setting_that_changes_features_changes_the_cache_key(tmp_path, tiny_model_dir, sample_dir):
    """Each feature setting changed alone gives another cache key, loader settings reuse it, a split's
    own source and limit count for it alone, and every setting of the data module is classified (a new
    one must say how it bears on the cache)."""
    from lightning_qa import data

    params = set(inspect.signature(SquadDataModule).parameters)
    assert params == set(data.FEATURE_SETTINGS) | set(data.SOURCE_SETTINGS) | set(data.LOADER_SETTINGS)
    base = dict(
        model_name_or_path=tiny_model_dir,
        train_file=str(sample_dir / "train.json"),
        validation_file=str(sample_dir / "dev.json"),
        cache_dir=str(tmp_path),
    )

    def key(split: str, **changes) -> str:
        return SquadDataModule(**{**base, **changes})._fingerprint(split)

    features = dict(
        version_2_with_negative=True,
        on_bad_record="skip",
        max_seq_length=256,
        doc_stride=64,
        max_question_length=32,
    )
    loader = dict(
        train_batch_size=3,
        eval_batch_size=3,
        num_workers=1,
        pad_to_multiple_of=None,
        group_by_length=True,
        shuffle=False,
    )
    for split in ("train", "validation"):
        unchanged = key(split)
        for setting, value in features.items():
            assert key(split, **{setting: value}) != unchanged, (split, setting)
        for setting, value in loader.items():
            assert key(split, **{setting: value}) == unchanged, (split, setting)
        assert key(split, seed=7) == unchanged  # the seed only picks held-out articles
    assert key("train", max_train_samples=5) != key("train")
    assert key("validation", max_train_samples=5) == key("validation")  # another split's limit
    assert key("validation", max_eval_samples=5) != key("validation")
    assert key("validation", train_file=None) == key("validation")  # validate reuses fit's features
    held_out = dict(validation_file=None, validation_split=0.2)
    assert key("validation", **held_out) != key("validation")
    assert key("validation", **held_out, seed=7) != key("validation", **held_out)


def test_v2_run_after_v1_skip_run_keeps_its_unanswerable_questions(tmp_path, tiny_model_dir):
    """A file not marked SQuAD 2.0: a v1 run with on_bad_record=skip drops the questions without answers;
    a later v2 run on the same file and cache must tokenize again and keep them."""
    path = tmp_path / "train.jsonl"
    rows = [
        {
            "id": "a",
            "question": "Who?",
            "context": "Ann built it.",
            "answers": {"text": ["Ann"], "answer_start": [0]},
        },
        {
            "id": "b",
            "question": "When?",
            "context": "Ann built it.",
            "answers": {"text": [], "answer_start": []},
        },
        {
            "id": "c",
            "question": "What?",
            "context": "Bo saw a mill.",
            "answers": {"text": ["a mill"], "answer_start": [7]},
        },
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    common = dict(train_file=str(path), on_bad_record="skip", cache_dir=str(tmp_path / "cache"))
    v1 = SquadDataModule(tiny_model_dir, **common)
    v1.setup("fit")
    assert len(v1.features["train"]) == 2
    v2 = SquadDataModule(tiny_model_dir, version_2_with_negative=True, **common)
    v2.setup("fit")
    assert len(v2.features["train"]) == 3
