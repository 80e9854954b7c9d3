"""Any encoder, not just WordPiece: byte-level BPE without token types (RoBERTa), SentencePiece-style
Unigram (ALBERT) and a tokenizer that pads on the left (context first). Tiny offline models of each:
labels, a short fit through the CLI, and decoding.  Run: pytest tests/test_tokenizers.py

Decoding returns context[start:end] for the character offsets of the chosen tokens, as the tokenizer
gives them. Labels are right for every family (the model learns the tokens that hold the answer), and
SQuAD scores ignore surrounding whitespace; but the answer text itself should be trimmed, and today it
is not where offsets hold whitespace: see test_decoded_answers_are_trimmed_substrings."""

import csv
import json
import shutil

import pytest
import torch
from helpers import SMALL, check_labels, run_dirs, sample_args, select_answers, squad_texts
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AlbertConfig, AutoModelForQuestionAnswering, PreTrainedTokenizerFast, RobertaConfig

from lightning_qa.cli import main
from lightning_qa.decoding import feature_candidates, merge_windows
from lightning_qa.features import prepare_features
from lightning_qa.io import read_examples
from lightning_qa.tokenization import load_tokenizer

# repeated spaces, a tab, a newline, accents: where offsets of sub-word schemes differ most
ODD_CONTEXT = "Zoë  opened\tthe Café  Lumière in 1887.\nIt closed   in 1901, said Ana Muñoz."


def save_model(out, tokenizer: PreTrainedTokenizerFast, config) -> str:
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def texts(sample_dir) -> list[str]:
    return squad_texts([str(sample_dir / "train.json")])


@pytest.fixture(scope="module")
def roberta_bpe_dir(tmp_path_factory, sample_dir) -> str:
    """Byte-level BPE, `<s> A </s></s> B </s>`, no token_type_ids, offsets trimmed of the leading space."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(
        texts(sample_dir),
        trainers.BpeTrainer(vocab_size=1000, special_tokens=specials, initial_alphabet=alphabet),
    )
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")), trim_offsets=True
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        cls_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_input_names=["input_ids", "attention_mask"],
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=520,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    return save_model(tmp_path_factory.mktemp("roberta-bpe"), tokenizer, config)


@pytest.fixture(scope="module")
def albert_unigram_dir(tmp_path_factory, sample_dir) -> str:
    """SentencePiece-style Unigram with a Metaspace pre-tokenizer and ALBERT's normalizer (lower case,
    no accents, whitespace runs collapsed); `[CLS] A [SEP] B [SEP]` with token types."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace("``", '"'),
            normalizers.Replace("''", '"'),
            normalizers.NFKD(),
            normalizers.StripAccents(),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(r"\s"), " "),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        texts(sample_dir), trainers.UnigramTrainer(vocab_size=800, special_tokens=specials, unk_token="<unk>")
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = AlbertConfig(
        vocab_size=len(tokenizer),
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    return save_model(tmp_path_factory.mktemp("albert-unigram"), tokenizer, config)


@pytest.fixture(scope="module")
def left_padded_dir(tmp_path_factory, tiny_model_dir) -> str:
    """The tiny DistilBERT with a tokenizer that pads on the left: windows put the context first."""
    out = tmp_path_factory.mktemp("left-padded")
    shutil.copytree(tiny_model_dir, out, dirs_exist_ok=True)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["padding_side"] = "left"  # transformers 5 saves no padding_side for a plain tokenizer.json
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    assert load_tokenizer(str(out)).padding_side == "left"
    return str(out)


FAMILIES = ["roberta_bpe_dir", "albert_unigram_dir", "left_padded_dir"]


@pytest.fixture(params=FAMILIES)
def family(request) -> tuple[str, str]:
    return request.param, request.getfixturevalue(request.param)


def columns(records: list[dict]) -> dict[str, list]:
    return {k: [r[k] for r in records] for k in ("id", "question", "context", "answers")}


def odd_record() -> dict:
    answer = "Ana Muñoz"
    return {
        "id": "odd",
        "title": "",
        "question": "Who said it?",
        "context": ODD_CONTEXT,
        "answers": {"text": [answer], "answer_start": [ODD_CONTEXT.index(answer)]},
    }


def test_each_family_is_what_it_claims(family):
    name, model_dir = family
    tokenizer = load_tokenizer(model_dir)
    feats = prepare_features(columns([odd_record()]), tokenizer, 64, 16, 16, for_eval=True)
    ids, offsets = feats["input_ids"][0], feats["offsets"][0]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    context_positions = [i for i, o in enumerate(offsets) if o[0] >= 0]
    if name == "roberta_bpe_dir":
        assert "token_type_ids" not in feats and tokenizer.padding_side == "right"
        first = context_positions[0]
        assert tokens[0] == "<s>" and tokens[first - 2 : first] == ["</s>", "</s>"] and tokens[-1] == "</s>"
    if name == "albert_unigram_dir":
        assert feats["token_type_ids"][0][-1] == 1 and tokens[0] == "[CLS]"
        assert tokens[context_positions[0]].startswith("▁")
    if name == "left_padded_dir":
        assert tokenizer.padding_side == "left"
        assert context_positions[0] == 1  # [CLS] context [SEP] question [SEP]
        assert tokens[context_positions[-1] + 1] == "[SEP]" and tokens[-1] == "[SEP]"
    assert feats["cls_index"] == [0]


def tokenizer_windows(tokenizer, records: list[dict], max_length: int = 96, stride: int = 32):
    """The windows `tokenizer(...)` itself makes of the records (the question first unless it pads left)."""
    right = tokenizer.padding_side == "right"
    questions, contexts = [r["question"] for r in records], [r["context"] for r in records]
    return tokenizer(
        questions if right else contexts,
        contexts if right else questions,
        truncation="only_second" if right else "only_first",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )


@pytest.mark.parametrize("name", [*FAMILIES, "tiny_model_dir"])
def test_windows_are_the_tokenizer_call_s_and_its_settings_stay(name, request, sample_dir):
    """prepare_features calls the Rust encoder directly: its windows must be exactly those of
    `tokenizer(question, context, truncation=..., stride=..., return_overflowing_tokens=True)`, and the
    tokenizer's own truncation setting must be left as it was found (the predictor shares it)."""
    tokenizer = load_tokenizer(request.getfixturevalue(name))
    records = read_examples(str(sample_dir / "train.json"))[:40] + [odd_record()]
    tokenizer.backend_tokenizer.enable_truncation(512)  # a setting of someone else's
    feats = prepare_features(columns(records), tokenizer, 96, 32, 32)
    assert tokenizer.backend_tokenizer.truncation["max_length"] == 512
    enc = tokenizer_windows(tokenizer, records)
    assert len(feats["input_ids"]) > len(records)  # long contexts were split
    assert feats["input_ids"] == enc["input_ids"]
    assert feats.get("token_type_ids") == enc.get("token_type_ids")


@pytest.mark.parametrize("name", [*FAMILIES, "tiny_model_dir"])
def test_evaluation_windows_carry_the_tokenizer_call_s_words(name, request, sample_dir):
    """Evaluation features (what validation, `lightning_qa predict` and `QAPredictor` answer from) keep
    the example of each window and, for the old pipeline's `align_to_words`, the words of each token
    exactly as `tokenizer(...)` gives them (what the old pipeline aligned with)."""
    tokenizer = load_tokenizer(request.getfixturevalue(name))
    records = read_examples(str(sample_dir / "train.json"))[:40] + [odd_record()]
    feats = prepare_features(columns(records), tokenizer, 96, 32, 32, for_eval=True, word_ids=True)
    enc = tokenizer_windows(tokenizer, records)
    assert len(enc["input_ids"]) > len(records)
    assert feats["input_ids"] == enc["input_ids"]
    assert feats["example_index"] == enc["overflow_to_sample_mapping"]
    words = [[-1 if x is None else x for x in enc.word_ids(i)] for i in range(len(enc["input_ids"]))]
    assert feats["word_ids"] == words


def test_labels_align(family, sample_dir):
    """check_labels: every labelled span is the answer or the smallest span covering it, every CLS label
    a window without the whole answer. And nearly all labelled spans are the answer up to whitespace
    (Metaspace pieces carry the space before a word, so there the span starts one character early)."""
    _, model_dir = family
    tokenizer = load_tokenizer(model_dir)
    records = read_examples(str(sample_dir / "train.json")) + [odd_record()]
    counts = check_labels(records, tokenizer, max_seq_length=128, doc_stride=32)
    assert counts["cls"] > 100 and counts["features"] > len(records)
    feats = prepare_features(columns(records), tokenizer, 128, 32, 64, for_eval=True)
    decoded = []  # (labelled text, answer) of every window holding the answer
    for f, ex in enumerate(feats["example_index"]):
        s, e, offsets = feats["start_positions"][f], feats["end_positions"][f], feats["offsets"][f]
        if s != feats["cls_index"][f]:
            decoded.append(
                (records[ex]["context"][offsets[s][0] : offsets[e][1]], records[ex]["answers"]["text"][0])
            )
    assert len(decoded) == counts["features"] - counts["cls"]
    assert sum(text.strip() == answer for text, answer in decoded) > 0.95 * len(decoded)


def test_fit_validate_and_decode_through_the_cli(family, tmp_path, sample_dir):
    name, model_dir = family
    root = tmp_path / "runs"
    main(
        [
            *("fit", *sample_args(model_dir, sample_dir, max_train=24, max_eval=12), *SMALL),
            *("--model.learning_rate", "1e-3"),
            *("--trainer.max_steps", "4", "--trainer.val_check_interval", "4"),
            *("--trainer.num_sanity_val_steps", "0", "--trainer.log_every_n_steps", "1"),
            *run_dirs(tmp_path, root),
        ]
    )
    run = root / "version_0"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(0 < x < 20 for x in losses)
    assert [float(r["val/examples"]) for r in rows if r.get("val/examples")] == [12.0]
    predictions = json.loads((run / "predictions.json").read_text())
    contexts = {r["id"]: r["context"] for r in read_examples(str(sample_dir / "dev.json"))}
    assert len(predictions) == 12
    for qid, answer in predictions.items():
        assert answer and answer in contexts[qid], (name, qid, answer)


@pytest.mark.parametrize(
    "name",
    [
        "roberta_bpe_dir",
        "albert_unigram_dir",
        "left_padded_dir",
    ],
)
def test_decoded_answers_are_trimmed_substrings(name, request):
    """Put the best start and end on each context token in turn: the answer decoded is exactly
    context[start:end], not empty, and neither starts nor ends with whitespace."""
    tokenizer = load_tokenizer(request.getfixturevalue(name))
    record = odd_record()
    feats = prepare_features(columns([record]), tokenizer, 64, 16, 16, for_eval=True)
    bad = []
    for f, offsets in enumerate(feats["offsets"]):
        offsets_t = torch.tensor([offsets])
        for i in (i for i, o in enumerate(offsets) if o[0] >= 0):
            logits = torch.zeros(1, len(offsets))
            logits[0, i] = 10.0
            cands = feature_candidates(
                logits, logits, offsets_t, torch.tensor([feats["cls_index"][f]]), 5, 30
            )
            (merged,) = merge_windows([0], cands, 5)
            (picked,) = select_answers([merged], [ODD_CONTEXT])
            assert picked["answer"] == ODD_CONTEXT[picked["start"] : picked["end"]]
            if not picked["answer"] or picked["answer"] != picked["answer"].strip():
                bad.append(picked["answer"])
    assert bad == []
