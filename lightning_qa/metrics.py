"""SQuAD metrics, matching the official v1.1 and v2.0 evaluation scripts number for number.

Golds map a question id to its gold answer texts; an unanswerable (v2.0) question has the gold `[""]`.
Predictions map a question id to one answer text, `""` meaning "no answer". All sums are plain Python
float64, in dataset order, as the official scripts do.
"""

import json
import math
import re
import string
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal

Version = Literal["1.1", "2.0"]

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


@lru_cache(maxsize=1 << 16)  # each gold and prediction is normalised for EM and F1 against every gold
def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, then the articles a/an/the, then collapse whitespace.

    The order matters and is the official one: punctuation goes before articles, so "the-end" keeps no
    article but "a.m." becomes "am".
    """
    s = s.lower().translate(_DROP_PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both texts normalize to the same string (identical in v1.1 and v2.0)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str, version: Version = "2.0") -> float:
    """Token-overlap F1 of the normalized texts.

    The scripts differ only when a side normalizes to no tokens: v2.0 scores 1.0 when both are empty
    (a correct "no answer") and 0.0 when one is; v1.1 has no special case, so no common tokens is 0.0
    even when both are empty.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if version == "2.0" and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def missing_ids(golds: dict[str, list[str]], predictions: dict[str, str]) -> list[str]:
    """Question ids without a prediction, in dataset order (they score 0 in both versions)."""
    return [qid for qid in golds if qid not in predictions]


def squad_v1(golds: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, float]:
    """The official v1.1 scores in percent: max over the gold answers, averaged over every question.

    A missing prediction scores 0 and still counts in the total (the official script warns and goes on);
    see `missing_ids`. Predictions for ids not in `golds` are ignored.
    """
    if not golds:
        raise ValueError("no questions to score")
    em_sum = f1_sum = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        em_sum += max((exact_match(pred, a) for a in answers), default=0.0)
        f1_sum += max((f1(pred, a, version="1.1") for a in answers), default=0.0)
    total = len(golds)
    return {"exact_match": 100.0 * em_sum / total, "f1": 100.0 * f1_sum / total}


def _v2_gold(answers: list[str]) -> tuple[list[str], bool]:
    """The texts to score against and whether the question is answerable, as the v2.0 script decides.

    Answerable means "has any gold text" (the script's `bool(qa["answers"])`), while the texts to score
    against drop those that normalize to nothing and fall back to `[""]`.
    """
    scored = [a for a in answers if normalize_answer(a)] or [""]
    return scored, any(a != "" for a in answers)


def _v2_raw_scores(
    golds: dict[str, list[str]], predictions: dict[str, str]
) -> tuple[dict[str, float], dict[str, float], dict[str, bool]]:
    exact, f1s, has_ans = {}, {}, {}
    for qid, answers in golds.items():
        scored, has_ans[qid] = _v2_gold(answers)
        if qid in predictions:
            pred = predictions[qid]
            exact[qid] = max(exact_match(pred, a) for a in scored)
            f1s[qid] = max(f1(pred, a, version="2.0") for a in scored)
    return exact, f1s, has_ans


def _best_thresh_official(
    predictions: dict[str, str],
    scores: dict[str, float],
    na_probs: dict[str, float],
    has_ans: dict[str, bool],
    total: int,
) -> tuple[float, float]:
    """The official `find_best_thresh`: start from "every question answered with no answer", then walk the
    questions by increasing no-answer probability, letting each one answer its raw prediction, and keep the
    first running total that is strictly the best.

    Kept exactly, quirks included: ties in probability are taken one question at a time in the order of
    `na_probs` (so the best score may be a prefix of a tie that its threshold does not reproduce), the
    starting threshold is 0.0, and an unanswerable question with a non-empty raw prediction costs one point
    even when that text normalizes to "".
    """
    cur = best = float(sum(1 for qid, h in has_ans.items() if not h and qid in scores))
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            cur += scores[qid]
        elif predictions[qid]:
            cur -= 1.0
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / total, best_thresh


def _summary(exact: dict[str, float], f1s: dict[str, float], qids: list[str]) -> dict[str, float]:
    return {
        "exact": 100.0 * sum(exact.get(q, 0.0) for q in qids) / len(qids),
        "f1": 100.0 * sum(f1s.get(q, 0.0) for q in qids) / len(qids),
        "total": len(qids),
    }


def squad_v2(
    golds: dict[str, list[str]],
    predictions: dict[str, str],
    na_probs: dict[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """The official v2.0 scores in percent, with HasAns_*/NoAns_* parts and, given `na_probs`, best_*.

    A question whose `na_probs` value exceeds `na_prob_thresh` is taken as answered with "". Without
    `na_probs` every probability is 0.0, as in the script.

    Missing predictions: the official script prints them, leaves them out of the overall total and then
    crashes (KeyError) computing HasAns/NoAns. We do what v1.1 does instead: a missing prediction scores 0
    (even on an unanswerable question) under every threshold and counts in every total. `na_probs` must
    cover every predicted question (the script crashes too); a gap raises ValueError.
    """
    if not golds:
        raise ValueError("no questions to score")
    exact_raw, f1_raw, has_ans = _v2_raw_scores(golds, predictions)
    probs = na_probs if na_probs is not None else {qid: 0.0 for qid in predictions}
    lacking = [qid for qid in exact_raw if qid not in probs]
    if lacking:
        raise ValueError(f"no-answer probability missing for {len(lacking)} questions, e.g. {lacking[:3]}")
    exact, f1s = {}, {}
    for qid in exact_raw:
        if probs[qid] > na_prob_thresh:
            exact[qid] = f1s[qid] = float(not has_ans[qid])
        else:
            exact[qid], f1s[qid] = exact_raw[qid], f1_raw[qid]

    qids = list(golds)
    out = _summary(exact, f1s, qids)
    for prefix, answerable in (("HasAns", True), ("NoAns", False)):
        part = [qid for qid in qids if has_ans[qid] == answerable]
        if part:
            out.update({f"{prefix}_{k}": v for k, v in _summary(exact, f1s, part).items()})
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = _best_thresh_official(
            predictions, exact_raw, na_probs, has_ans, len(qids)
        )
        out["best_f1"], out["best_f1_thresh"] = _best_thresh_official(
            predictions, f1_raw, na_probs, has_ans, len(qids)
        )
    return out


def best_thresholds(
    golds: dict[str, list[str]], best_non_null: dict[str, str], null_odds: dict[str, float]
) -> dict[str, float]:
    """Best exact and F1 over every no-answer threshold, choosing between "" and each best non-null span.

    At threshold t a question answers "" when its null odds (null_score - best_span_score, higher = more
    likely no answer) exceed t, otherwise its best non-null span. One sort plus one pass tries every
    distinct odds value, each tie group at once, so the reported threshold reproduces the reported score;
    the all-"" starting point is reported as the largest float below the smallest odds.

    Why not the official `find_best_thresh`: it re-thresholds the final predictions, where a question the
    model already answered with "" has lost its span, so raising the threshold can never make it answer
    and best_f1 is understated. Every question must have a span and odds; a gap raises ValueError.
    """
    lacking = [qid for qid in golds if qid not in best_non_null or qid not in null_odds]
    if lacking:
        raise ValueError(f"span or null odds missing for {len(lacking)} questions, e.g. {lacking[:3]}")
    if not golds:
        return {"best_exact": 0.0, "best_exact_thresh": 0.0, "best_f1": 0.0, "best_f1_thresh": 0.0}
    null_exact, null_f1, span_exact, span_f1 = {}, {}, {}, {}
    for qid, answers in golds.items():
        scored, _ = _v2_gold(answers)
        span = best_non_null[qid]
        null_exact[qid] = null_f1[qid] = max(exact_match("", a) for a in scored)
        span_exact[qid] = max(exact_match(span, a) for a in scored)
        span_f1[qid] = max(f1(span, a, version="2.0") for a in scored)

    order = sorted(golds, key=lambda k: null_odds[k])
    out = {}
    for name, null, span in (("exact", null_exact, span_exact), ("f1", null_f1, span_f1)):
        cur = best = sum(null.values())
        thresh = math.nextafter(null_odds[order[0]], -math.inf)
        for i, qid in enumerate(order):
            cur += span[qid] - null[qid]
            last_of_tie = i + 1 == len(order) or null_odds[order[i + 1]] != null_odds[qid]
            if last_of_tie and cur > best:
                best, thresh = cur, null_odds[qid]
        out[f"best_{name}"], out[f"best_{name}_thresh"] = 100.0 * best / len(golds), thresh
    return out


def load_squad_golds(path: str | Path) -> tuple[dict[str, list[str]], Version]:
    """Read an official SQuAD JSON file into golds and its version ("1.1" or "2.0").

    It is v2.0 when any question has an "is_impossible" key or the version string starts with "v2"/"2".
    A question without answers gets `[""]`. Raises OSError, json.JSONDecodeError, or ValueError saying
    what is wrong with the layout.
    """
    with open(path, encoding="utf-8") as f:
        dataset = json.load(f)
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise ValueError('not a SQuAD file: expected an object with a "data" list')
    golds: dict[str, list[str]] = {}
    v2 = str(dataset.get("version", "")).lstrip("v").startswith("2")
    for i, article in enumerate(dataset["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f'not a SQuAD file: data[{i}] has no "paragraphs" list')
        for j, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                raise ValueError(f'not a SQuAD file: data[{i}].paragraphs[{j}] has no "qas" list')
            for k, qa in enumerate(qas):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("id"), str):
                    raise ValueError(f'not a SQuAD file: {where} has no string "id"')
                answers = qa.get("answers")
                if not isinstance(answers, list) or not all(
                    isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers
                ):
                    raise ValueError(f'not a SQuAD file: {where} needs "answers": [{{"text": ...}}, ...]')
                if qa["id"] in golds:
                    raise ValueError(f"not a SQuAD file: question id {qa['id']!r} appears twice")
                golds[qa["id"]] = [a["text"] for a in answers] or [""]
                v2 = v2 or "is_impossible" in qa
    return golds, "2.0" if v2 else "1.1"


def answer_metrics(results: list[dict], version_2: bool) -> dict[str, float]:
    """Metrics of decoded examples (`answers.rank` results with "id" and "gold"): the official v1.1 or
    v2.0 scores, for v2.0 with `best_thresholds` over each example's best span and null odds."""
    golds = {r["id"]: r["gold"] for r in results}
    predictions = {r["id"]: (r["answers"][0]["answer"] if r["answers"] else "") for r in results}
    if not version_2:
        scores = squad_v1(golds, predictions)
    else:
        scores = squad_v2(golds, predictions)
        scores.update(
            best_thresholds(
                golds,
                {r["id"]: r["best_non_null"] for r in results},
                {r["id"]: r["null_odds"] for r in results},
            )
        )
        scores["exact_match"] = scores["exact"]
    scores = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    scores["examples"] = float(len(results))
    return scores
