"""Logits -> each example's answers with scores: the one path behind validation, `lightning_qa predict`,
`QAPredictor` and the server, so one model gives the same answers and scores wherever it is asked.

Per batch, `window_candidates` reduces the logits to each window's best spans where the logits are (small
fixed-width tensors); once all windows of some examples are in, `rank` merges them per example by the
chosen rule (`decoding`: the SQuAD logits rule, or the old pipeline's) and ranks the answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lightning_qa.decoding import NEG_INF, feature_candidates, merge_windows
from lightning_qa.pipeline_rule import pipeline_answers, pipeline_candidates, word_offsets

DECODINGS = ("logits", "pipeline")
NO_ANSWER = {"score": 0.0, "start": 0, "end": 0, "answer": ""}


@dataclass(frozen=True)
class AnswerRule:
    """How answers are picked and scored.

    Args:
        decoding: "logits" (start + end logit over all windows, the SQuAD rule validation scores; `score` is
            the answer's probability among the example's n-best spans) or "pipeline" (the old
            transformers pipeline's: per-window probabilities, answers with the same text merged).
        top_k: Answers per example (distinct, best first).
        n_best_size: Logits rule: start and end candidates per window, and spans per example among which
            `score` is a probability.
        max_answer_length: Longest answer, in tokens.
        align_to_words: Widen answers to whole words (needs the features' `word_ids`).
        handle_impossible_answer: Rank the answer "" (no answer) too (SQuAD 2.0).
        null_score_diff_threshold: "" beats a span when null score - span score exceeds this (logits rule;
            the pipeline rule compares log-probabilities, see `pipeline_rule.pipeline_answers`).
        n_candidates: Pipeline rule: spans kept per window (default 2 * top_k + 10 when aligning to words,
            else top_k, as the old pipeline).
        keep_nbest: Also return each example's n-best spans ("nbest"; logits rule).
    """

    decoding: str = "logits"
    top_k: int = 1
    n_best_size: int = 20
    max_answer_length: int = 30
    align_to_words: bool = False
    handle_impossible_answer: bool = False
    null_score_diff_threshold: float = 0.0
    n_candidates: int | None = None
    keep_nbest: bool = False

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, not {self.decoding!r}")
        for key in ("top_k", "n_best_size", "max_answer_length"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")

    @property
    def pool(self) -> int:
        """Spans each window keeps."""
        if self.decoding == "pipeline":
            if self.n_candidates is not None:
                return self.n_candidates
            return 2 * self.top_k + 10 if self.align_to_words else self.top_k
        return max(self.n_best_size, self.top_k)


def window_candidates(
    batch: dict[str, Any], start_logits: Tensor, end_logits: Tensor, rule: AnswerRule, pool: int | None = None
) -> dict[str, Tensor]:
    """The `pool` best spans of each window of `batch` by the rule, as character offsets, on the logits'
    device (`decoding.feature_candidates` / `pipeline_rule.pipeline_candidates`)."""
    pool = pool or rule.pool
    offsets, cls_index = batch["offsets"], batch["cls_index"]
    spans = word_offsets(offsets, batch["word_ids"]) if rule.align_to_words else None
    if rule.decoding == "pipeline":
        return pipeline_candidates(
            start_logits, end_logits, offsets, cls_index, pool, rule.max_answer_length, spans
        )
    if spans is not None:  # word-aligned token offsets: spans widen to whole words
        offsets = torch.where(spans.to(offsets.device) >= 0, spans.to(offsets.device), offsets)
    return feature_candidates(start_logits, end_logits, offsets, cls_index, pool, rule.max_answer_length)


def rank(
    example_index: Tensor | Sequence[int],
    window_index: Tensor | Sequence[int],
    candidates: dict[str, Tensor],
    contexts: Sequence[str] | dict[int, str],
    rule: AnswerRule,
    pool: int | None = None,
) -> list[dict]:
    """Each example's ranked answers from its windows' candidates (rows in any order).

    Returns, sorted by example index: {"example_index", "answers": [{"score", "start", "end", "answer"},
    ...] (best first, at most top_k; [] when nothing can be answered), "null_score", "n_spans" (distinct
    span answers), "exhausted" (no window had more spans than it gave: a bigger pool finds no more)}; the
    logits rule adds "best_non_null" (text of the best span, "" without one), "null_odds" (null score -
    best span score) and with `keep_nbest` "nbest" (dicts with "start", "end", "score", "probability").
    """
    pool = pool or rule.pool
    if rule.decoding == "pipeline":
        return pipeline_answers(
            example_index,
            candidates,
            contexts,
            rule.top_k,
            rule.handle_impossible_answer,
            rule.null_score_diff_threshold,
            window_index=window_index,
        )
    merged = merge_windows(
        example_index,
        candidates,
        pool,
        keep_nbest=rule.keep_nbest or rule.top_k > 1,
        with_null=rule.handle_impossible_answer,
    )
    return choose(merged, contexts, rule, pool)


def choose(
    merged: list[dict], contexts: Sequence[str] | dict[int, str], rule: AnswerRule, pool: int | None = None
) -> list[dict]:
    """The logits rule's answers for each example of `decoding.merge_windows` (see `rank`).

    The null answer ranks above a span when null_score - span score > threshold (validation's rule); scores
    are probabilities over the n-best spans (plus the null when `handle_impossible_answer`). With top_k 1
    the best span and the probabilities `merge_windows` computed suffice: one flat loop, as this runs for
    every example of every evaluation."""
    if rule.top_k > 1:
        pool = pool or rule.pool
        return [_ranked(m, contexts[m["example_index"]], rule, pool) for m in merged]
    impossible, threshold, keep_nbest = (
        rule.handle_impossible_answer,
        rule.null_score_diff_threshold,
        rule.keep_nbest,
    )
    out = []
    for m in merged:
        context = contexts[m["example_index"]]
        has_span = m["score"] != NEG_INF
        text = context[m["start"] : m["end"]] if has_span else ""
        if impossible and (not has_span or m["null_odds"] > threshold):
            answers = [{"score": m["null_probability"], "start": 0, "end": 0, "answer": ""}]
        elif has_span:
            score = m["probability_with_null"] if impossible else m["probability"]
            answers = [{"score": score, "start": m["start"], "end": m["end"], "answer": text}]
        else:
            answers = []
        result = {
            "example_index": m["example_index"],
            "answers": answers,
            "null_score": m["null_score"],
            "null_odds": m["null_odds"],
            "best_non_null": text,
            "n_spans": int(has_span),
            "exhausted": not has_span,
        }
        if keep_nbest:
            result["nbest"] = [{"text": context[c["start"] : c["end"]], **c} for c in m["nbest"]]
        out.append(result)
    return out


def _ranked(m: dict, context: str, rule: AnswerRule, pool: int) -> dict:
    """top_k > 1: the example's distinct spans (the same character span proposed by two windows counts
    once, its best entry) and the null answer, ranked, with probabilities over the n-best spans."""
    impossible = rule.handle_impossible_answer
    nbest = m["nbest"]
    if impossible:
        logits = [c["score"] for c in nbest] + [m["null_score"]]
        top = max(logits)
        weights = [math.exp(x - top) for x in logits]
        probs = [w / sum(weights) for w in weights]
    else:
        probs = [c["probability"] for c in nbest]
    ranked, seen = [], set()
    for c, p in zip(nbest, probs, strict=False):
        if (c["start"], c["end"]) in seen:
            continue
        seen.add((c["start"], c["end"]))
        answer = {"score": p, "start": c["start"], "end": c["end"], "answer": context[c["start"] : c["end"]]}
        ranked.append((answer, c["score"]))
    answers = [a for a, _ in ranked]
    if impossible:
        null_rank = m["null_score"] - rule.null_score_diff_threshold
        place = sum(1 for _, logit in ranked if logit >= null_rank)
        answers.insert(place, {"score": probs[-1], "start": 0, "end": 0, "answer": ""})
    has_span = m["score"] != NEG_INF
    out = {
        "example_index": m["example_index"],
        "answers": answers[: rule.top_k],
        "null_score": m["null_score"],
        "null_odds": m["null_odds"],
        "best_non_null": context[m["start"] : m["end"]] if has_span else "",
        "n_spans": len(ranked),
        "exhausted": len(nbest) < pool,
    }
    if rule.keep_nbest:
        out["nbest"] = [{"text": context[c["start"] : c["end"]], **c} for c in nbest]
    return out


def best(result: dict) -> dict:
    """The top answer of a `rank` result ({"score", "start", "end", "answer"}; "" when there is none)."""
    return dict(result["answers"][0]) if result["answers"] else dict(NO_ANSWER)


def decode_outputs(outputs: list[dict[str, Any]], rule: AnswerRule) -> list[dict]:
    """`rank` over collected step outputs (`window_candidates` of each batch plus its "example_index",
    "feature_index", "example_id", "context" and "answer_texts"); each result also gets "id" and "gold"."""
    if not outputs:
        return []
    cands = {k: torch.cat([o[k] for o in outputs]) for k in ("start_char", "end_char", "score", "null_score")}
    info: dict[int, tuple] = {}
    for o in outputs:
        for i, ex in enumerate(o["example_index"].tolist()):
            info.setdefault(ex, (o["example_id"][i], o["context"][i], o["answer_texts"][i]))
    results = rank(
        torch.cat([o["example_index"] for o in outputs]),
        torch.cat([o["feature_index"] for o in outputs]),
        cands,
        {ex: v[1] for ex, v in info.items()},
        rule,
    )
    for r in results:
        r["id"], _, r["gold"] = info[r["example_index"]]
    return results
