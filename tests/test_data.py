"""Data path: labels, windows, padding, sharding, splitting, caching.  Run: pytest tests/test_data.py"""

import json
import os

import pytest
from conftest import SQUAD_DIR, requires_squad

from lightning_qa.data import (
    ExampleShardSampler,
    LengthGroupedSampler,
    ResumableLoader,
    ShuffledSampler,
    SquadDataModule,
    check_lengths,
    collate,
    prepare_features,
    split_by_context,
    truncate_questions,
)
from lightning_qa.io import read_examples


def _columns(records: list[dict]) -> dict[str, list]:
    return {k: [r[k] for r in records] for k in records[0]}


def check_labels(
    records: list[dict], tokenizer, max_seq_length: int = 128, doc_stride: int = 32
) -> dict[str, int]:
    """Every labelled span decodes to the gold answer (or to the smallest token span covering it), and
    every CLS label is a window that really does not hold the whole answer. Returns the counts."""
    feats = prepare_features(_columns(records), tokenizer, max_seq_length, doc_stride, 64, for_eval=True)
    counts = {"exact": 0, "covering": 0, "cls": 0, "features": len(feats["input_ids"])}
    for i in range(counts["features"]):
        record = records[feats["example_index"][i]]
        text, start_char = record["answers"]["text"][0], record["answers"]["answer_start"][0]
        end_char = start_char + len(text)
        offsets, s, e = feats["offsets"][i], feats["start_positions"][i], feats["end_positions"][i]
        context_positions = [j for j, o in enumerate(offsets) if o[0] >= 0]
        first, last = context_positions[0], context_positions[-1]
        inside = offsets[first][0] <= start_char and offsets[last][1] >= end_char
        if s == feats["cls_index"][i] == e:
            assert not inside, f"{record['id']}: answer inside window {i} but labelled CLS"
            counts["cls"] += 1
            continue
        assert inside and first <= s <= e <= last
        decoded = record["context"][offsets[s][0] : offsets[e][1]]
        if decoded == text:
            counts["exact"] += 1
            continue
        # the answer starts or ends inside a word piece: the span must be the smallest one covering it
        assert offsets[s][0] <= start_char < offsets[s][1] or (offsets[s][0] <= start_char and s == e), (
            record["id"]
        )
        assert offsets[e][1] >= end_char and (e == s or offsets[e - 1][1] < end_char), record["id"]
        assert text.strip() in decoded, (record["id"], text, decoded)
        counts["covering"] += 1
    return counts


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


def test_long_question_is_truncated_not_fatal(bert_tokenizer):
    question = "why " * 200
    questions, cut = truncate_questions([question, "  short?"], bert_tokenizer, 64)
    assert cut == 1 and questions[1] == "short?"
    assert len(bert_tokenizer(questions[0], add_special_tokens=False)["input_ids"]) == 64
    feats = prepare_features(
        {
            "id": ["a"],
            "question": [question],
            "context": ["a short context"],
            "answers": [{"text": ["short"], "answer_start": [2]}],
        },
        bert_tokenizer,
        128,
        16,
        64,
    )
    assert feats["start_positions"] == [feats["end_positions"][0]] and feats["start_positions"][0] > 64


def test_check_lengths_names_the_problem(bert_tokenizer):
    check_lengths(bert_tokenizer, 384, 128, 64)
    check_lengths(bert_tokenizer, 384, 316, 64)
    with pytest.raises(ValueError, match=r"doc_stride \(317\) must be smaller .*384 - 64 - 3 = 317"):
        check_lengths(bert_tokenizer, 384, 317, 64)
    with pytest.raises(ValueError, match=r"doc_stride \(128\) must be smaller .*128 - 64 - 3 = 61"):
        check_lengths(bert_tokenizer, 128, 128, 64)


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


def test_jsonl_and_single_question(tmp_path, tiny_model_dir):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "x1", "question": "Where?", "context": "In Paris."},
        {"id": "x2", "question": "Who?", "context": "Ann did."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    dm = SquadDataModule(tiny_model_dir, predict_file=str(path), cache_dir=str(tmp_path))
    dm.setup("predict")
    assert dm.features["predict"]["example_id"] == ["x1", "x2"]
    cached = os.listdir(tmp_path / "features")
    single = SquadDataModule(tiny_model_dir, question="Who?", context="Ann did.", cache_dir=str(tmp_path))
    single.setup("predict")
    assert single.features["predict"]["context"] == ["Ann did."]
    assert os.listdir(tmp_path / "features") == cached  # one ad-hoc question is not worth a cache file


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
