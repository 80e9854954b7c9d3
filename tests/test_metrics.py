import json
import random

import pytest
from helpers import SQUAD_DIR, requires_squad

from lightning_qa import evaluate
from lightning_qa.metrics import (
    best_thresholds,
    exact_match,
    f1,
    load_squad_golds,
    missing_ids,
    normalize_answer,
    squad_v1,
    squad_v2,
)

V1_DATA = SQUAD_DIR / "dev-v1.1.json"
V1_PRED = SQUAD_DIR / "predictions" / "bert-ensemble-dev-v1.1.json"
V2_DATA = SQUAD_DIR / "dev-v2.0.json"
V2_PRED = SQUAD_DIR / "predictions" / "bert-single-dev-v2.0.json"
V1_EXPECTED = {"exact_match": 86.20624408703878, "f1": 92.19557978351129}
V2_EXPECTED = {
    "exact": 78.74168280973637,
    "f1": 81.77528052374727,
    "HasAns_exact": 74.10593792172739,
    "HasAns_f1": 80.18183293833516,
    "NoAns_exact": 83.36417157275021,
}


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def squad_file(qas, version="v2.0"):
    return {"version": version, "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]}


# --- the official numbers on the real dev sets ---


@requires_squad
def test_v1_leaderboard_bert_ensemble(capsys):
    golds, version = load_squad_golds(V1_DATA)
    assert version == "1.1" and len(golds) == 10570
    predictions = json.loads(V1_PRED.read_text())
    scores = squad_v1(golds, predictions)
    assert scores == pytest.approx(V1_EXPECTED, abs=1e-9, rel=0)
    assert missing_ids(golds, predictions) == []

    printed = evaluate.main([str(V1_DATA), str(V1_PRED)])
    assert printed == pytest.approx(V1_EXPECTED, abs=1e-9, rel=0)
    out, err = capsys.readouterr()
    assert json.loads(out) == printed and err == ""


@requires_squad
def test_v2_leaderboard_bert_single(capsys):
    golds, version = load_squad_golds(V2_DATA)
    assert version == "2.0" and len(golds) == 11873
    assert sum(g == [""] for g in golds.values()) == 5945
    scores = squad_v2(golds, json.loads(V2_PRED.read_text()))
    assert {k: scores[k] for k in V2_EXPECTED} == pytest.approx(V2_EXPECTED, abs=1e-9, rel=0)
    assert (scores["total"], scores["HasAns_total"], scores["NoAns_total"]) == (11873, 5928, 5945)
    assert scores["NoAns_f1"] == scores["NoAns_exact"]
    assert "best_f1" not in scores

    printed = evaluate.main([str(V2_DATA), str(V2_PRED)])
    assert printed == scores
    assert json.loads(capsys.readouterr().out) == scores


# --- definitions, on hand-made cases ---


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The Cat", "cat"),
        ("  An   apple,\ta day!\n", "apple day"),
        ("Theater anthem", "theater anthem"),  # articles only as whole words
        ("a.m.", "am"),  # punctuation goes first, so "a.m." is no article
        ("rock 'n' roll", "rock n roll"),
        ("the", ""),
        ("", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_ignores_case_articles_punctuation_whitespace():
    assert exact_match("the  Eiffel Tower.", "Eiffel tower") == 1.0
    assert exact_match("Eiffel", "Eiffel Tower") == 0.0


def test_f1_partial_overlap():
    # prediction tokens [cat, sat], gold [cat, sat, on, mat]: precision 1, recall 1/2
    assert f1("The cat sat", "cat sat on the mat") == pytest.approx(2 / 3, abs=1e-15)
    # repeated tokens count only as often as they occur on both sides: common = {a: 0, b: 1}
    assert f1("b b b", "b c", version="1.1") == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert f1("dog", "cat") == 0.0


def test_f1_empty_differs_between_versions():
    assert f1("", "", version="2.0") == 1.0
    assert f1("The.", "", version="2.0") == 1.0  # normalizes to no tokens: a correct "no answer"
    assert f1("", "", version="1.1") == 0.0
    assert f1("cat", "", version="2.0") == 0.0
    assert f1("", "cat", version="2.0") == 0.0
    assert f1("", "cat", version="1.1") == 0.0


def test_v1_max_over_golds():
    golds = {"q": ["Paris", "in Paris, France"]}
    # vs "Paris": p 1/2 r 1 -> 2/3; vs "in Paris France": p 1 r 2/3 -> 4/5
    scores = squad_v1(golds, {"q": "Paris France"})
    assert scores == pytest.approx({"exact_match": 0.0, "f1": 80.0}, abs=1e-12)
    assert squad_v1(golds, {"q": "paris"}) == {"exact_match": 100.0, "f1": 100.0}


def test_v1_missing_prediction_counts_as_zero():
    golds = {"a": ["cat"], "b": ["dog"], "c": ["bird"], "d": ["fish"]}
    predictions = {"a": "cat", "c": "bird", "z": "not in the data"}
    assert squad_v1(golds, predictions) == {"exact_match": 50.0, "f1": 50.0}
    assert missing_ids(golds, predictions) == ["b", "d"]


def test_v2_scores_and_breakdown():
    golds = {"a": ["cat"], "b": [""], "c": ["big red dog"], "d": [""]}
    predictions = {"a": "cat", "b": "", "c": "red dog", "d": "bird"}
    scores = squad_v2(golds, predictions)
    assert scores == pytest.approx(
        {
            "exact": 50.0,
            "f1": 100.0 * (1 + 1 + 0.8 + 0) / 4,
            "total": 4,
            "HasAns_exact": 50.0,
            "HasAns_f1": 90.0,
            "HasAns_total": 2,
            "NoAns_exact": 50.0,
            "NoAns_f1": 50.0,
            "NoAns_total": 2,
        },
        abs=1e-12,
    )
    only_answerable = squad_v2({"a": ["cat"]}, {"a": "cat"})
    assert set(only_answerable) == {"exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"}


def test_v2_missing_prediction_scores_zero_everywhere():
    # the official script would crash here; we score the missing "no answer" question 0, not 1
    scores = squad_v2({"a": ["cat"], "b": [""]}, {"a": "cat"})
    assert (scores["exact"], scores["total"], scores["NoAns_exact"], scores["NoAns_total"]) == (
        50.0,
        2,
        0.0,
        1,
    )


def test_v2_na_prob_threshold():
    golds = {"a": ["cat"], "b": [""]}
    predictions = {"a": "cat", "b": "dog"}
    na_probs = {"a": 0.2, "b": 0.9}
    at_default = squad_v2(golds, predictions, na_probs)  # 1.0: no probability exceeds it
    assert (at_default["exact"], at_default["HasAns_exact"], at_default["NoAns_exact"]) == (50.0, 100.0, 0.0)
    assert squad_v2(golds, predictions, na_probs, 0.5)["exact"] == 100.0  # b -> "": right
    assert squad_v2(golds, predictions, na_probs, 0.1)["exact"] == 50.0  # a -> "" too: wrong
    assert squad_v2(golds, predictions, na_probs, 0.2)["exact"] == 100.0  # "exceeds", not "reaches"
    with pytest.raises(ValueError, match="missing for 1 questions"):
        squad_v2(golds, predictions, {"a": 0.2})


def test_v2_best_thresh_hand_computed():
    golds = {"q1": ["cat"], "q2": [""], "q3": ["big red dog"], "q4": [""]}
    predictions = {"q1": "cat", "q2": "dog", "q3": "red dog", "q4": "bird"}
    na_probs = {"q1": 0.1, "q2": 0.5, "q3": 0.3, "q4": 0.7}
    # start with every question "": 2 points; then by probability q1 +1, q3 +0 (exact) or +0.8 (f1), q2 -1, q4 -1
    scores = squad_v2(golds, predictions, na_probs)
    assert scores["best_exact"] == 75.0 and scores["best_exact_thresh"] == 0.1
    assert scores["best_f1"] == pytest.approx(95.0, abs=1e-12) and scores["best_f1_thresh"] == 0.3


def test_v2_best_thresh_keeps_official_tie_order():
    golds = {"q1": ["cat"], "q2": [""]}
    predictions = {"q1": "cat", "q2": "dog"}
    # tie at 0.5: the official walk counts q1 alone first and reports 100 at 0.5, which that threshold
    # does not reproduce (it answers both: 50); in the other order it never beats the start (50 at 0.0)
    first = squad_v2(golds, predictions, {"q1": 0.5, "q2": 0.5})
    assert (first["best_exact"], first["best_exact_thresh"]) == (100.0, 0.5)
    assert squad_v2(golds, predictions, {"q1": 0.5, "q2": 0.5}, 0.5)["exact"] == 50.0
    second = squad_v2(golds, predictions, {"q2": 0.5, "q1": 0.5})
    assert (second["best_exact"], second["best_exact_thresh"]) == (50.0, 0.0)
    # best_thresholds takes the tie as one group, so its number is one a threshold really gives
    ours = best_thresholds(golds, predictions, {"q1": 0.5, "q2": 0.5})
    assert ours["best_exact"] == 50.0 and ours["best_exact_thresh"] < 0.5


def test_best_thresholds_beats_official_rethresholding():
    golds = {"q1": ["big cat"], "q2": [""]}
    best_non_null = {"q1": "cat", "q2": "dog"}
    null_odds = {"q1": 0.4, "q2": 0.8}
    # the model's own threshold 0.0 made both answers "": q1 lost its span
    final = {qid: "" if null_odds[qid] > 0.0 else best_non_null[qid] for qid in golds}
    official = squad_v2(golds, final, null_odds)
    assert (official["best_f1"], official["best_f1_thresh"]) == (50.0, 0.0)
    ours = best_thresholds(golds, best_non_null, null_odds)
    # at 0.4 q1 answers "cat" (f1 2/3) and q2 stays "": (2/3 + 1) / 2
    assert (
        ours["best_f1"] == pytest.approx(100 * (2 / 3 + 1) / 2, abs=1e-12) and ours["best_f1_thresh"] == 0.4
    )
    assert ours["best_f1"] > official["best_f1"]
    assert (ours["best_exact"], ours["best_exact_thresh"]) == (50.0, pytest.approx(0.4))


def test_best_thresholds_equals_sweeping_squad_v2():
    rng = random.Random(0)
    words = ["cat", "dog", "big", "red", "the"]
    for _ in range(30):
        n = rng.randint(1, 12)
        golds = {f"q{i}": [rng.choice(["", "big cat", "red dog", "cat"])] for i in range(n)}
        spans = {q: " ".join(rng.sample(words, rng.randint(1, 3))) for q in golds}
        odds = {q: float(rng.randint(-3, 3)) for q in golds}  # many ties
        ours = best_thresholds(golds, spans, odds)
        candidates = [min(odds.values()) - 1.0, *odds.values()]
        for name in ("exact", "f1"):
            swept = max(squad_v2(golds, spans, odds, t)[name] for t in candidates)
            assert ours[f"best_{name}"] == pytest.approx(swept, abs=1e-9)
            at_thresh = squad_v2(golds, spans, odds, ours[f"best_{name}_thresh"])[name]
            assert at_thresh == pytest.approx(ours[f"best_{name}"], abs=1e-9)
    with pytest.raises(ValueError, match="missing"):
        best_thresholds({"a": ["x"]}, {}, {"a": 0.0})


# --- reading files and the command line ---


def test_load_squad_golds_versions(tmp_path):
    qas = [
        {"id": "a", "question": "?", "answers": [{"text": "cat", "answer_start": 0}, {"text": "a cat"}]},
        {"id": "b", "question": "?", "answers": [], "is_impossible": True},
    ]
    golds, version = load_squad_golds(write_json(tmp_path / "v2.json", squad_file(qas, version="1.1")))
    assert version == "2.0" and golds == {"a": ["cat", "a cat"], "b": [""]}
    v2_by_name = squad_file([{"id": "a", "question": "?", "answers": [{"text": "x"}]}], version="v2.0")
    assert load_squad_golds(write_json(tmp_path / "v2name.json", v2_by_name))[1] == "2.0"
    v1 = squad_file([{"id": "a", "question": "?", "answers": [{"text": "x"}]}], version="1.1")
    assert load_squad_golds(write_json(tmp_path / "v1.json", v1))[1] == "1.1"
    with pytest.raises(ValueError, match=r'qas\[0\] needs "answers"'):
        load_squad_golds(write_json(tmp_path / "bad.json", squad_file([{"id": "a"}])))


def test_cli_bad_json_exits_2_with_one_line(tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text('{"version": "1.1", "data": [')
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([str(data), str(tmp_path / "pred.json")])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(f"lightning_qa evaluate: error: {data}: not valid JSON")


@pytest.mark.parametrize(
    ("predictions", "complaint"),
    [(["cat"], "expected a JSON object"), ({"a": 3}, "'a' maps to 3")],
)
def test_cli_rejects_bad_predictions(tmp_path, capsys, predictions, complaint):
    data = write_json(tmp_path / "data.json", squad_file([{"id": "a", "answers": [{"text": "cat"}]}]))
    pred = write_json(tmp_path / "pred.json", predictions)
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main([data, pred])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lightning_qa evaluate: error: {pred}: ") and complaint in err


def test_cli_v2_with_na_prob_and_missing(tmp_path, capsys):
    qas = [
        {"id": "a", "answers": [{"text": "cat"}], "is_impossible": False},
        {"id": "b", "answers": [], "is_impossible": True},
        {"id": "c", "answers": [{"text": "dog"}], "is_impossible": False},
    ]
    data = write_json(tmp_path / "data.json", squad_file(qas))
    pred = write_json(tmp_path / "pred.json", {"a": "cat", "b": "dog"})
    na_prob = write_json(tmp_path / "na.json", {"a": 0.1, "b": 0.9})
    scores = evaluate.main([data, pred, "--na_prob", na_prob, "--na_prob_thresh", "0.5"])
    out, err = capsys.readouterr()
    assert json.loads(out) == scores
    assert scores["exact"] == pytest.approx(200 / 3) and scores["total"] == 3
    assert scores["best_exact"] == pytest.approx(200 / 3) and scores["best_exact_thresh"] == 0.1
    assert err == "lightning_qa evaluate: 1 of 3 questions have no prediction and score 0: c\n"
