"""`QAPredictor(decoding="pipeline")` gives transformers 4.57.6's `pipeline("question-answering")` answers.

The old pipeline runs in a venv of its own (transformers 4.57.6, tokenizers 0.22.2, the installed torch),
made once by `benchmarks/pipeline_parity.ensure_venv` and cached (~/.cache/lightning_qa/tf457-venv); the
tests skip, with pip's reason, only when it cannot be installed. Both sides load one model directory (a
random DistilBERT with the real uncased vocabulary when the MiniLM wheel is installed, else the packaged
tiny model) and answer the first 100 questions of SQuAD v1.1 dev and a few awkward hand-written ones,
under the old pipeline's defaults and under a second, small-window configuration. Every answer's text,
start and end must be identical, and its score equal within 1e-5 relative.

QAPredictor gets decoding="pipeline" and every option explicitly: its own defaults may change (for models
trained by lightning_qa), the old pipeline's will not.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest
from helpers import MINILM_DIR, SQUAD_DIR

from lightning_qa import QAPredictor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import pipeline_parity  # noqa: E402

DEV = SQUAD_DIR / "dev-v1.1.json"
N_SQUAD = 100
BATCH_SIZE = 8  # windows per forward pass, the same on both sides
SCORE_RTOL = 1e-5
SMALL_WINDOWS = {
    **pipeline_parity.SETTINGS,
    "top_k": 3,
    "handle_impossible_answer": True,
    "max_answer_len": 30,
    "doc_stride": 64,
    "max_seq_len": 128,
}
# name: (the old pipeline's call options, QAPredictor's options)
CONFIGS = {
    "defaults": ({"top_k": 1}, pipeline_parity.SETTINGS),  # SETTINGS: the old defaults, spelled out
    "small-windows": (SMALL_WINDOWS, SMALL_WINDOWS),
}


def _many_windows_context() -> str:
    """About 8,400 characters of varied sentences: 8 windows under the old defaults, 37 under the small
    ones (with the real vocabulary); the answer sits near the end, in a late window."""
    towns = ["Arden", "Belmont", "Corvin", "Dunmore", "Elsworth", "Fairhaven", "Glenrock"]
    things = ["mill", "chapel", "bridge", "school", "granary", "market hall", "watchtower"]
    places = ["river", "old road", "harbour", "forest edge", "chalk hills"]
    sentences = [
        f"In {1702 + 3 * i}, the village of {towns[i % 7]} built a {things[(i * 3) % 7]} near the "
        f"{places[i % 5]}, paid for by {40 + i} families."
        for i in range(90)
    ]
    sentences.insert(80, "The lighthouse keeper of Fairhaven was a woman named Ingrid Solberg.")
    return " ".join(sentences)


AWKWARD = [
    {
        "id": "accents",
        "question": "Who opened the Café Lumière?",
        "context": "Zoë opened the Café Lumière in 1887. Two years later her brother Étienne moved the café "
        "to the Rue de la Paix, where crème brûlée became its best-known dish.",
    },
    {
        "id": "emoji",
        "question": "Which 🍕 place did Ana 😀 open?",
        "context": "Ana 😀 opened Pizza 🍕 Palace in Lisbon in 2019 🎉. It sells 🍕 slices and ☕ coffee "
        "until 2 a.m. 🌙, and its owner 👩‍🍳 bakes every crust herself.",
    },
    {
        "id": "many-windows",
        "question": "What was the lighthouse keeper's name?",
        "context": _many_windows_context(),
    },
    {
        "id": "repeated-answer",
        "question": "Which city hosted the Olympics in 1924?",
        "context": "Paris is the capital of France. Many people visit Paris every year, and Paris hosted the "
        "Olympics in 1900, 1924 and 2024. Paris, Texas, is a different city; Paris, Ontario, too.",
    },
    {
        "id": "long-question",  # long, but within max_question_len and the small windows' room
        "question": "Considering what the passage says about the early history of the small coastal town, "
        "its founding families and the storms that wrecked the harbour twice, in which year was the "
        "harbour finally rebuilt in stone?",
        "context": "Founded by four fishing families in 1612, the town built a wooden harbour that storms "
        "destroyed in 1703 and again in 1757. It was finally rebuilt in stone in 1791, and still stands.",
    },
]


def as_list(result: dict | list) -> list[dict]:
    """One question's answers as a list: the old pipeline returns a dict when it has one answer only."""
    return result if isinstance(result, list) else [result]


def mismatch(question: dict, ours: dict | list, old: dict | list) -> str | None:
    """How our answers to `question` differ from the old pipeline's, or None when they do not."""
    a, b = as_list(ours), as_list(old)
    if len(a) == len(b) and all(
        pipeline_parity.same(x, y) and math.isclose(x["score"], y["score"], rel_tol=SCORE_RTOL)
        for x, y in zip(a, b, strict=True)
    ):
        return None
    context = question["context"]
    shown = context if len(context) <= 300 else f"{context[:300]}... ({len(context)} characters)"
    return (
        f"{question['id']}: {question['question']!r}\n  context: {shown!r}\n"
        f"  QAPredictor:  {ours}\n  old pipeline: {old}"
    )


def questions() -> list[dict]:
    squad = pipeline_parity.load_questions(DEV, N_SQUAD) if DEV.is_file() else []
    return squad + AWKWARD


def nudge_cls_toward_null(model_dir: str, amount: float = 0.1) -> None:
    """Move position 0's embedding (the [CLS] token's) a little along the QA head's weights, so that with
    handle_impossible_answer the null answer ranks first on some questions and second or third on others
    (a plain random model never ranks it: its [CLS] logits are no higher than any token's)."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    with torch.no_grad():
        direction = model.qa_outputs.weight.sum(0)
        model.distilbert.embeddings.position_embeddings.weight[0] += amount * direction / direction.norm()
    model.save_pretrained(model_dir)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """One directory both sides load: a random DistilBERT (dim 64) with the real uncased vocabulary, or
    without the MiniLM wheel the packaged tiny model (a vocabulary of the sample: many [UNK]s on SQuAD)."""
    work = tmp_path_factory.mktemp("parity-model")
    if MINILM_DIR is not None:
        out = Path(pipeline_parity.random_distilbert(work, "tiny"))
    else:
        out = work / "tiny-distilbert"
        shutil.copytree(ROOT / "lightning_qa" / "assets" / "tiny-distilbert", out)
        # its tokenizer_config names transformers 5's class; 4.57 loads the same tokenizer.json generically
        config_file = out / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config_file.write_text(json.dumps({**config, "tokenizer_class": "PreTrainedTokenizerFast"}))
    nudge_cls_toward_null(str(out))
    return str(out)


@pytest.fixture(scope="module")
def answers(model_dir, tmp_path_factory) -> dict[str, dict[str, tuple]]:
    """{configuration: {question id: (question, ours, old pipeline's)}}, the old side in one worker run."""
    try:
        python = pipeline_parity.ensure_venv()
    except pipeline_parity.VenvUnavailable as e:
        pytest.skip(f"transformers {pipeline_parity.OLD_VERSION} venv could not be installed: {e}")
    qs = questions()
    old_options = [old for old, _ in CONFIGS.values()]
    work = tmp_path_factory.mktemp("parity-worker")
    old = pipeline_parity.old_answers(python, model_dir, qs, old_options, work, BATCH_SIZE)
    out = {}
    for (name, (_, options)), theirs in zip(CONFIGS.items(), old, strict=True):
        predictor = QAPredictor(
            model_dir, device="cpu", decoding="pipeline", batch_size=BATCH_SIZE, **options
        )
        ours = predictor.predict([q["question"] for q in qs], [q["context"] for q in qs])
        out[name] = {q["id"]: (q, a, b) for q, a, b in zip(qs, ours, theirs, strict=True)}
    return out


@pytest.mark.skipif(not DEV.is_file(), reason=f"SQuAD v1.1 dev not found at {DEV}")
@pytest.mark.parametrize("config", CONFIGS)
def test_squad_dev_answers_match_the_old_pipeline(answers, config):
    compared = [answers[config][q["id"]] for q in pipeline_parity.load_questions(DEV, N_SQUAD)]
    assert len(compared) == N_SQUAD
    diffs = [d for q, ours, old in compared if (d := mismatch(q, ours, old))]
    assert not diffs, f"{len(diffs)}/{N_SQUAD} answers differ ({config}); the first:\n{diffs[0]}"


@pytest.mark.parametrize("case", [q["id"] for q in AWKWARD])
@pytest.mark.parametrize("config", CONFIGS)
def test_awkward_answers_match_the_old_pipeline(answers, config, case):
    diff = mismatch(*answers[config][case])
    assert diff is None, f"({config}) {diff}"


@pytest.mark.parametrize("config", CONFIGS)
def test_awkward_cases_are_what_they_claim(model_dir, config):
    """The long context spans 5+ windows, the long question is not cut (it fits max_question_len and
    the windows' room), so the cases test what their names say under both configurations."""
    options = CONFIGS[config][1]
    tokenizer = QAPredictor(model_dir, device="cpu", decoding="pipeline", **options).tokenizer
    case = {q["id"]: q for q in AWKWARD}
    windows = tokenizer(
        case["many-windows"]["question"],
        case["many-windows"]["context"],
        truncation="only_second",
        max_length=options["max_seq_len"],
        stride=options["doc_stride"],
        return_overflowing_tokens=True,
    )["input_ids"]
    assert len(windows) >= 5
    room = options["max_seq_len"] - tokenizer.num_special_tokens_to_add(pair=True) - options["doc_stride"] - 1
    n_question = len(tokenizer(case["long-question"]["question"], add_special_tokens=False)["input_ids"])
    assert 30 <= n_question <= min(options["max_question_len"], room)


def test_a_venv_that_cannot_be_installed_is_a_reason_not_an_error(tmp_path, monkeypatch):
    """No index to install from (as without a network): VenvUnavailable with pip's own error line, and no
    half-made venv left behind."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    venv = tmp_path / "venv"
    with pytest.raises(pipeline_parity.VenvUnavailable, match="ERROR: .*transformers==4.57.6"):
        pipeline_parity.ensure_venv(venv)
    assert not venv.exists()
