"""Plain-loop reference for `lightning_qa.decoding`: the specification the tests compare against, and the
baseline that `benchmarks/decode.py` times. One window at a time, one span at a time, no tensors.

Rule: in each window, among context tokens (offsets not [-1, -1]), take the `n_best` highest start logits
and the `n_best` highest end logits; every (start, end) pair with end >= start and at most
`max_answer_length` tokens is a candidate scored start + end logit. An example's answer is its best
candidate over all its windows; its null score is the smallest CLS start + end logit over its windows;
SQuAD 2.0 answers "" when null score - best score > threshold.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence


def reference_decode(
    start_logits: Sequence[Sequence[float]],
    end_logits: Sequence[Sequence[float]],
    offsets: Sequence[Sequence[Sequence[int]]],
    cls_index: Sequence[int],
    example_index: Sequence[int],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[int, dict]:
    """{example index: {"start", "end", "score", "null_score", "nbest": [(score, start, end), ...]}}.

    Per-window lists may be of any length (unpadded or padded: padding has offsets [-1, -1]).
    `nbest` holds the example's `n_best` best candidates, best first; "start"/"end"/"score" are those of
    the first (0, 0, -inf without any).
    """
    spans: dict[int, list[tuple[float, int, int]]] = {}
    null: dict[int, float] = {}
    for starts, ends, offs, cls, ex in zip(
        start_logits, end_logits, offsets, cls_index, example_index, strict=True
    ):
        context = [i for i, o in enumerate(offs) if not (o[0] == -1 and o[1] == -1)]
        best_starts = heapq.nlargest(n_best, context, key=lambda i: starts[i])
        best_ends = heapq.nlargest(n_best, context, key=lambda i: ends[i])
        found = spans.setdefault(ex, [])
        for i in best_starts:
            for j in best_ends:
                if j < i or j - i + 1 > max_answer_length:
                    continue
                score = starts[i] + ends[j]
                if score > -math.inf:
                    found.append((score, offs[i][0], offs[j][1]))
        null[ex] = min(null.get(ex, math.inf), starts[cls] + ends[cls])
    out = {}
    for ex in sorted(spans):
        nbest = sorted(spans[ex], key=lambda c: -c[0])[:n_best]
        score, start, end = nbest[0] if nbest else (-math.inf, 0, 0)
        out[ex] = {"start": start, "end": end, "score": score, "null_score": null[ex], "nbest": nbest}
    return out


def reference_answer(
    result: dict, context: str, version_2_with_negative: bool = False, null_score_diff_threshold: float = 0.0
) -> str:
    """The answer text of one `reference_decode` result ("" for no answer)."""
    if result["score"] == -math.inf:
        return ""
    if version_2_with_negative and result["null_score"] - result["score"] > null_score_diff_threshold:
        return ""
    return context[result["start"] : result["end"]]


def softmax(scores: Sequence[float]) -> list[float]:
    """Softmax in float64, as the n-best probabilities are defined."""
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [x / total for x in exps]
