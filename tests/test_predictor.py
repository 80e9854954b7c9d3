"""`QAPredictor` and the old pipeline's ranking rule (`pipeline_rule`): real models, offline.

Hand-made logits pin the rule down (softmax with CLS, span band, word alignment, merging by text, null
answer); a tiny random model and a checkpoint from `lightning_qa fit` exercise the predictor end to end.
Parity with transformers 4.57's own pipeline is tests/test_pipeline_parity.py (SQuAD and hand-written cases)
and, timed on more questions, `benchmarks/pipeline_parity.py`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import SMALL, run_dirs, sample_args
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from lightning_qa import QAPredictor
from lightning_qa.answers import AnswerRule, choose
from lightning_qa.cli import main
from lightning_qa.decoding import feature_candidates, merge_windows
from lightning_qa.pipeline_rule import pipeline_answers, pipeline_candidates, word_offsets

NEG = -1e4


def samples(sample_dir: Path, n: int = 12) -> list[dict]:
    records = [json.loads(x) for x in (sample_dir / "questions.jsonl").read_text().splitlines()]
    return records[:n]


def key(answer: dict) -> tuple:
    return answer["answer"], answer["start"], answer["end"]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir) -> QAPredictor:
    return QAPredictor(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, sample_dir) -> Path:
    """A run directory of `lightning_qa fit` (a few steps): last.ckpt, hf_model/ (no validation in 4 steps: no best.ckpt)."""
    tmp = tmp_path_factory.mktemp("fit")
    main(
        [
            "fit",
            *sample_args(tiny_model_dir, sample_dir, max_train=32, max_eval=8),
            "--trainer.max_steps",
            "4",
            *run_dirs(tmp),
            *SMALL,
        ]
    )
    return tmp / "runs" / "version_0"


# -- the pure rule on hand-made logits -----------------------------------------------------------------------
def window(n_tokens: int, context: range, chars: list[tuple[int, int]]) -> torch.Tensor:
    """Offsets [1, n_tokens, 2]: `chars[i]` for the i-th token of `context`, [-1, -1] elsewhere."""
    offsets = torch.full((1, n_tokens, 2), -1, dtype=torch.long)
    for t, span in zip(context, chars, strict=True):
        offsets[0, t] = torch.tensor(span)
    return offsets


def test_pipeline_scores_are_products_of_softmaxes_over_context_and_cls():
    # [CLS] q [SEP] c1 c2 [SEP] pad
    start = torch.tensor([[1.0, 9.0, 9.0, 2.0, 0.5, 9.0, 9.0]])
    end = torch.tensor([[0.0, 9.0, 9.0, 1.0, 3.0, 9.0, 9.0]])
    offsets = window(7, range(3, 5), [(0, 4), (5, 9)])
    c = pipeline_candidates(start, end, offsets, torch.tensor([0]), n=5, max_answer_len=15)
    ps = torch.softmax(torch.tensor([1.0, 2.0, 0.5]), 0)  # CLS, c1, c2: question/special/pad tokens excluded
    pe = torch.softmax(torch.tensor([0.0, 1.0, 3.0]), 0)
    expected = sorted(
        [(ps[1] * pe[1], 0, 4), (ps[1] * pe[2], 0, 9), (ps[2] * pe[2], 5, 9)], key=lambda x: -float(x[0])
    )
    got = [
        (s, a, b)
        for s, a, b in zip(
            c["score"][0].tolist(), c["start_char"][0].tolist(), c["end_char"][0].tolist(), strict=True
        )
        if a >= 0
    ]
    assert [(a, b) for _, a, b in got] == [(a, b) for _, a, b in expected]  # reversed span (c2, c1) never
    for (s, _, _), (e, _, _) in zip(got, expected, strict=True):
        assert math.isclose(s, float(e), rel_tol=1e-6)
    assert math.isclose(c["null_score"].item(), float(ps[0] * pe[0]), rel_tol=1e-6)
    assert c["score"][0, 3:].eq(float("-inf")).all() and c["start_char"][0, 3:].eq(-1).all()


def test_pipeline_span_length_band():
    n = 8
    start = torch.zeros(1, n)
    end = torch.zeros(1, n)
    offsets = window(n, range(1, n), [(2 * i, 2 * i + 1) for i in range(n - 1)])
    c = pipeline_candidates(start, end, offsets, torch.tensor([0]), n=100, max_answer_len=3)
    found = [
        (a, b) for a, b in zip(c["start_char"][0].tolist(), c["end_char"][0].tolist(), strict=True) if a >= 0
    ]
    tokens = {(a // 2, (b - 1) // 2) for a, b in found}
    assert tokens == {(i, j) for i in range(n - 1) for j in range(i, min(i + 3, n - 1))}


def test_word_offsets_cover_whole_words_within_the_window():
    # tokens: CLS, "un" "##believ" "##able" (word 7), "cat" (word 8), "##s"? no: "dog" (word 9), SEP, pad
    offsets = window(7, range(1, 6), [(10, 12), (12, 18), (18, 22), (23, 26), (27, 30)])
    words = torch.tensor([[-1, 7, 7, 7, 8, 9, -1]])
    spans = word_offsets(offsets, words)
    assert spans[0, 1:6].tolist() == [[10, 22], [10, 22], [10, 22], [23, 26], [27, 30]]
    assert spans[0, 0].tolist() == [-1, -1] and spans[0, 6].tolist() == [-1, -1]
    # a word cut by the window's start: only its tokens inside the window count (Encoding.word_to_chars)
    cut = word_offsets(window(4, range(1, 3), [(12, 18), (18, 22)]), torch.tensor([[-1, 7, 7, -1]]))
    assert cut[0, 1].tolist() == [12, 22]
    # tokens without a word keep no span ([-1, -1]); the candidates then use raw offsets
    assert word_offsets(offsets, torch.full((1, 7), -1))[0].eq(-1).all()


def test_align_to_words_widens_spans_and_merges_subwords():
    context = "unbelievable dogs"
    offsets = window(6, range(1, 5), [(0, 2), (2, 8), (8, 12), (13, 17)])
    words = torch.tensor([[-1, 0, 0, 0, 1, -1]])
    start = torch.tensor([[0.0, 0.0, 3.0, 2.0, 0.0, NEG]])  # best start inside the word
    end = torch.tensor([[0.0, 2.5, 3.0, 0.0, 0.0, NEG]])
    raw = pipeline_candidates(start, end, offsets, torch.tensor([0]), n=12)
    aligned = pipeline_candidates(
        start, end, offsets, torch.tensor([0]), n=12, word_spans=word_offsets(offsets, words)
    )
    assert (raw["start_char"][0, 0].item(), raw["end_char"][0, 0].item()) == (2, 8)  # "believ"
    assert (aligned["start_char"][0, 0].item(), aligned["end_char"][0, 0].item()) == (0, 12)
    top = pipeline_answers([0], aligned, [context], top_k=3)[0]["answers"]
    assert top[0]["answer"] == "unbelievable"
    # every sub-word span inside the word collapses into one answer whose score is their sum
    inside = [
        s
        for s, a, b in zip(
            *(aligned[k][0].tolist() for k in ("score", "start_char", "end_char")), strict=True
        )
        if (a, b) == (0, 12)
    ]
    assert len(inside) == 6 and math.isclose(top[0]["score"], sum(inside), rel_tol=1e-6)


def test_pipeline_and_logits_rules_differ_as_documented():
    """Logits rule: the single best start+end logit sum wins. Pipeline rule: answers with the same text
    (ignoring case) add their probabilities, so a name said twice beats a slightly stronger single one."""
    context = "Paris or paris, not London"
    # CLS, "paris" (0-5), "or", "paris" (9-14), ",", "not", "london" (20-26), SEP
    offsets = window(8, range(1, 7), [(0, 5), (6, 8), (9, 14), (14, 15), (16, 19), (20, 26)])
    start = torch.tensor([[0.0, 2.0, NEG, 1.95, NEG, NEG, 2.2, NEG]])
    end = start.clone()
    cls = torch.tensor([0])
    pipe = pipeline_answers(
        [0], pipeline_candidates(start, end, offsets, cls, n=12, max_answer_len=1), [context]
    )
    merged = merge_windows([0], feature_candidates(start, end, offsets, cls, n_best=20, max_answer_length=1))
    logit = choose(merged, [context], AnswerRule())
    assert logit[0]["answers"][0]["answer"] == "London"
    best = pipe[0]["answers"][0]
    assert best["answer"] == "Paris" and (best["start"], best["end"]) == (0, 5)  # the first one's offsets
    z = math.exp(0.0) + math.exp(2.0) + math.exp(1.95) + math.exp(2.2)  # CLS + context (-1e4 ones vanish)
    assert math.isclose(best["score"], (math.exp(4.0) + math.exp(3.9)) / z**2, rel_tol=1e-5)


def test_pipeline_merges_windows_in_order_and_takes_the_smallest_null():
    context = "alpha beta gamma"
    chars = [(0, 5), (6, 10), (11, 16)]
    # two overlapping windows: [CLS, alpha, beta] and [CLS, beta, gamma]
    offsets = torch.cat([window(3, range(1, 3), chars[:2]), window(3, range(1, 3), chars[1:])])
    start = torch.tensor([[1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    end = torch.tensor([[1.0, 0.0, 2.0], [3.0, 2.0, 0.0]])
    cands = pipeline_candidates(start, end, offsets, torch.tensor([0, 0]), n=12, max_answer_len=1)
    # rows given in reverse: window_index restores the window order
    rev = {k: v.flip(0) for k, v in cands.items()}
    out = pipeline_answers(
        [0, 0], rev, [context], top_k=5, handle_impossible_answer=True, window_index=[1, 0]
    )[0]
    p = [torch.softmax(start[w], 0) for w in range(2)]
    beta = float(p[0][2] ** 2 + p[1][1] ** 2)  # "beta" from both windows, summed
    nulls = [float(p[w][0] ** 2) for w in range(2)]
    assert out["null_score"] == pytest.approx(min(nulls), rel=1e-6)
    by_text = {a["answer"]: a for a in out["answers"]}
    assert by_text["beta"]["score"] == pytest.approx(beta, rel=1e-5)
    assert (by_text[""]["start"], by_text[""]["end"]) == (0, 0)
    scores = [a["score"] for a in out["answers"]]
    assert scores == sorted(scores, reverse=True)


def test_null_threshold_shifts_only_the_null_rank():
    context = "alpha beta"
    offsets = window(3, range(1, 3), [(0, 5), (6, 10)])
    start = torch.tensor([[2.0, 1.0, 0.0]])
    cands = pipeline_candidates(start, start.clone(), offsets, torch.tensor([0]), n=12, max_answer_len=1)
    plain = pipeline_answers([0], cands, [context], top_k=3, handle_impossible_answer=True)[0]["answers"]
    assert plain[0]["answer"] == ""  # CLS logits 2+2 beat alpha's 1+1
    # log(null) - log(alpha) = 4 - 2 = 2 logits: a threshold above that keeps the span first
    shifted = pipeline_answers([0], cands, [context], 3, True, null_score_diff_threshold=2.5)[0]["answers"]
    assert [a["answer"] for a in shifted][:2] == ["alpha", ""]
    assert shifted[1]["score"] == plain[0]["score"]  # reported null score unchanged
    below = pipeline_answers([0], cands, [context], 3, True, null_score_diff_threshold=1.5)[0]["answers"]
    assert below[0]["answer"] == ""
    huge = pipeline_answers([0], cands, [context], 3, True, null_score_diff_threshold=-1e9)[0]["answers"]
    assert huge[0]["answer"] == ""
    # the logits rule decides with the same logit difference
    merged = merge_windows([0], feature_candidates(start, start.clone(), offsets, torch.tensor([0]), 20, 1))
    for threshold, first in ((2.5, "alpha"), (1.5, "")):
        rule = AnswerRule(top_k=2, handle_impossible_answer=True, null_score_diff_threshold=threshold)
        assert choose(merged, [context], rule)[0]["answers"][0]["answer"] == first


# -- the predictor end to end ---------------------------------------------------------------------------------
def test_answers_are_slices_of_their_context(predictor, sample_dir):
    records = samples(sample_dir)
    answers = predictor(question=[r["question"] for r in records], context=[r["context"] for r in records])
    assert len(answers) == len(records)
    for r, a in zip(records, answers, strict=True):
        assert set(a) == {"score", "start", "end", "answer"}
        assert a["answer"] and a["answer"] == r["context"][a["start"] : a["end"]]
        assert 0.0 < a["score"] <= 1.0
        assert a["answer"] == a["answer"].strip()  # whole words, no dangling spaces


def test_input_forms_and_batching_agree(predictor, sample_dir):
    r0, r1 = samples(sample_dir, 2)
    one = predictor(question=r0["question"], context=r0["context"])
    assert isinstance(one, dict)
    assert predictor(r0["question"], r0["context"]) == one
    assert predictor({"question": r0["question"], "context": r0["context"]}) == one
    pair = predictor([{"question": r["question"], "context": r["context"]} for r in (r0, r1)])
    assert isinstance(pair, list) and len(pair) == 2 and key(pair[0]) == key(one)
    same_context = predictor(question=[r0["question"], r1["question"]], context=r0["context"])
    assert key(same_context[0]) == key(one)
    assert len(predictor(question=[r0["question"]], context=[r0["context"]])) == 1  # a list stays a list
    records = samples(sample_dir)
    qs, cs = [r["question"] for r in records], [r["context"] for r in records]
    for rule in ("pipeline", "logits"):
        big = predictor(question=qs, context=cs, batch_size=32, decoding=rule)
        small = predictor(question=qs, context=cs, batch_size=1, decoding=rule)
        assert [key(a) for a in big] == [key(a) for a in small]
        assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(big, small, strict=True))
    with pytest.raises(ValueError):
        predictor(question="", context="x")
    with pytest.raises(ValueError):
        predictor(question=["a", "b"], context=["x"])
    with pytest.raises(TypeError):
        predictor(question="a", context="x", topk=2)


def test_top_k_returns_distinct_answers_from_all_windows(predictor, sample_dir):
    context = " ".join(r["context"] for r in samples(sample_dir, 6))
    opts = dict(max_seq_len=64, doc_stride=16, top_k=25)
    for rule in ("pipeline", "logits"):
        answers = predictor(question="Who built it?", context=context, decoding=rule, **opts)
        assert len(answers) == 25
        texts = [a["answer"].lower() if rule == "pipeline" else (a["start"], a["end"]) for a in answers]
        assert len(set(texts)) == 25
        assert all(a["answer"] == context[a["start"] : a["end"]] for a in answers)
        scores = [a["score"] for a in answers]
        assert scores == sorted(scores, reverse=True)
    # answers come from many windows (a window covers ~45 context tokens here)
    assert max(a["start"] for a in answers) - min(a["start"] for a in answers) > 400
    # a per-window pool far too small for top_k distinct answers grows until there are enough
    one_window = samples(sample_dir, 1)[0]["context"]
    few = predictor(question="Who built it?", context=one_window, n_candidates=1, top_k=25)
    assert len({a["answer"].lower() for a in few}) == 25
    # top_k > 1 always gives a list, even when a tiny context has a single possible answer
    assert predictor(question="Who?", context="Ann", top_k=3) == [
        {
            "score": pytest.approx(predictor(question="Who?", context="Ann")["score"]),
            "start": 0,
            "end": 3,
            "answer": "Ann",
        }
    ]


def test_handle_impossible_answer(predictor, sample_dir):
    r = samples(sample_dir, 1)[0]
    ask = dict(question=r["question"], context=r["context"])
    # a threshold far below any logit difference puts "" first, far above it last
    first = predictor(**ask, top_k=3, handle_impossible_answer=True, null_score_diff_threshold=-1e6)
    assert (first[0]["answer"], first[0]["start"], first[0]["end"]) == ("", 0, 0) and 0 < first[0][
        "score"
    ] < 1
    assert all(a["answer"] for a in first[1:])
    last = predictor(**ask, top_k=3, handle_impossible_answer=True, null_score_diff_threshold=1e6)
    spans = predictor(**ask, top_k=3)
    assert [key(a) for a in last] == [key(a) for a in spans] and [key(a) for a in first[1:]] == [
        key(a) for a in spans[:2]
    ]
    # without handle_impossible_answer there is never a null answer, whatever the threshold
    assert predictor(**ask, null_score_diff_threshold=-1e6)["answer"]
    for rule in ("pipeline", "logits"):
        plain = predictor(**ask, decoding=rule, top_k=500, handle_impossible_answer=True, max_answer_len=3)
        null = [a for a in plain if a["answer"] == ""]
        assert len(null) <= 1


def test_long_questions_are_cut_to_fit(predictor, sample_dir):
    r = samples(sample_dir, 1)[0]
    long_question = " ".join(["which"] * 70 + [r["question"]])  # over max_question_len (64) tokens
    a = predictor(question=long_question, context=r["context"])
    assert a["answer"] == r["context"][a["start"] : a["end"]]
    # a window too small for the whole question next to doc_stride context tokens: cut further
    b = predictor(
        question=long_question, context=r["context"], max_seq_len=64, doc_stride=16, max_question_len=500
    )
    assert b["answer"] == r["context"][b["start"] : b["end"]]
    with pytest.raises(ValueError, match="doc_stride"):
        predictor(question="Who?", context=r["context"], max_seq_len=64, doc_stride=100)


class HandMadeModel:
    """A `model=` callable: logits from the input ids (no torch module), as an ONNX wrapper would give."""

    def __init__(self, cls_logit: float) -> None:
        self.cls_logit = cls_logit

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> QuestionAnsweringModelOutput:
        logits = (input_ids % 7).float()  # deterministic, token dependent
        logits[:, 0] = self.cls_logit
        return QuestionAnsweringModelOutput(start_logits=logits, end_logits=logits.clone())


def test_model_override_callable(tiny_model_dir, sample_dir):
    r = samples(sample_dir, 1)[0]
    sure = QAPredictor(tiny_model_dir, model=HandMadeModel(cls_logit=50.0), handle_impossible_answer=True)
    assert sure.input_names == ["input_ids", "attention_mask"] and sure.device.type == "cpu"
    assert sure(question=r["question"], context=r["context"])["answer"] == ""
    unsure = QAPredictor(tiny_model_dir, model=HandMadeModel(cls_logit=-50.0), handle_impossible_answer=True)
    a = unsure(question=r["question"], context=r["context"])
    assert a["answer"] and a["answer"] == r["context"][a["start"] : a["end"]]


def test_compiled_model_gives_the_same_answers(predictor, tiny_model_dir, sample_dir):
    """compile=True: one dynamic-shape compilation serves several batch sizes and window lengths, with
    the eager model's answers."""
    records = samples(sample_dir)
    qs, cs = [r["question"] for r in records], [r["context"] for r in records]
    compiled = QAPredictor(tiny_model_dir, device="cpu", compile=True)
    assert compiled._run is not compiled.model
    for batch_size in (3, 8):
        got = compiled(question=qs, context=cs, top_k=2, batch_size=batch_size)
        want = predictor(question=qs, context=cs, top_k=2, batch_size=batch_size)
        assert [[key(a) for a in top] for top in got] == [[key(a) for a in top] for top in want]
        assert [a["score"] for top in got for a in top] == pytest.approx(
            [a["score"] for top in want for a in top], rel=1e-4
        )
    with pytest.raises(ValueError, match="torch module"):
        QAPredictor(tiny_model_dir, model=HandMadeModel(cls_logit=0.0), compile=True)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision(tiny_model_dir, sample_dir, dtype):
    records = samples(sample_dir)
    qs, cs = [r["question"] for r in records], [r["context"] for r in records]
    half = QAPredictor(tiny_model_dir, device="cpu", dtype=dtype)
    assert half.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    for rule in ("pipeline", "logits"):
        answers = half(question=qs, context=cs, decoding=rule, top_k=2)
        for r, top in zip(records, answers, strict=True):
            assert top and all(a["answer"] == r["context"][a["start"] : a["end"]] for a in top)
            assert all(isinstance(a["score"], float) and math.isfinite(a["score"]) for a in top)


def test_checkpoint_and_export_give_the_same_answers(trained_run, sample_dir):
    records = samples(sample_dir)
    qs, cs = [r["question"] for r in records], [r["context"] for r in records]
    from_ckpt = QAPredictor(str(trained_run / "last.ckpt"), device="cpu")
    from_dir = QAPredictor.from_pretrained(trained_run / "hf_model", device="cpu")
    assert from_ckpt.settings["max_seq_length"] == 96 and from_dir.settings["max_seq_length"] == 96
    a, b = from_ckpt(question=qs, context=cs), from_dir(question=qs, context=cs)
    assert [key(x) for x in a] == [key(x) for x in b]
    assert all(abs(x["score"] - y["score"]) < 1e-6 for x, y in zip(a, b, strict=True))
    with pytest.raises(FileNotFoundError):
        QAPredictor.from_checkpoint(trained_run / "missing.ckpt")


@pytest.mark.parametrize("rule", ["pipeline", "logits"])
def test_lightning_qa_predict_decodes_like_the_predictor(trained_run, sample_dir, tmp_path, rule):
    """`lightning_qa predict --model.decoding R` and `QAPredictor(decoding=R)` share the rule: same answers."""
    out = tmp_path / "answers.jsonl"
    main(
        [
            "predict",
            "--ckpt_path",
            str(trained_run / "last.ckpt"),
            "--data.predict_file",
            str(sample_dir / "questions.jsonl"),
            "--predictions_file",
            str(out),
            "--model.decoding",
            rule,
            "--model.max_answer_length",
            "12",
            *run_dirs(tmp_path),
        ]
    )
    records = [json.loads(x) for x in out.read_text().splitlines()]
    questions = [json.loads(x) for x in (sample_dir / "questions.jsonl").read_text().splitlines()]
    predictor = QAPredictor(str(trained_run / "last.ckpt"), device="cpu", decoding=rule, max_answer_len=12)
    # the CLI's windows are the checkpoint's (96 tokens, stride 32); logits rule without word alignment
    opts = dict(max_seq_len=96, doc_stride=32, max_question_len=32)
    if rule == "logits":
        opts["align_to_words"] = False
    answers = predictor(
        question=[q["question"] for q in questions], context=[q["context"] for q in questions], **opts
    )
    assert [r["id"] for r in records] == [q["id"] for q in questions]
    for r, a in zip(records, answers, strict=True):
        assert (r["answer"], r["start"], r["end"]) == key(a)
        assert r["score"] == pytest.approx(a["score"], abs=1e-5)
