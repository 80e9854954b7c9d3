"""Turn start/end logits into answer spans: per-window n-best on the device, then a merge per example.

The rule is the usual SQuAD one (BERT's `run_squad`, Hugging Face `run_qa`): in each window (feature) take
the `n_best` best start and the `n_best` best end tokens among context tokens, keep the pairs that form a
valid span (end >= start, at most `max_answer_length` tokens), score a span by start + end logit, and pick
the best span over all the windows of an example. The "null" (no answer) score of an example is the
smallest CLS start + end logit over its windows, as SQuAD 2.0 decoding defines it.

`feature_candidates` is batched tensor work, called once per batch where the logits are (GPU included), and
returns small fixed-shape tensors that concatenate across batches. `merge_windows` groups them by example
with array operations on the CPU (one step per window slot, not per example); only building the returned
dicts is a Python loop.
`tests/reference_decoding.py` holds a plain-loop implementation of the same rule, the specification that
the tests compare against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import pad

NEG_INF = float("-inf")


def feature_candidates(
    start_logits: Tensor,
    end_logits: Tensor,
    offsets: Tensor,
    cls_index: Tensor,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, Tensor]:
    """The `n_best` best valid spans of every window, as character offsets into the example's context.

    Args:
        start_logits, end_logits: [F, L] finite logits of F windows (any float dtype; scored in float32).
        offsets: [F, L, 2] character span of each context token, [-1, -1] for every other position
            (question, special tokens, padding); may live on another device than the logits.
        cls_index: [F] position of the CLS token (its logits give the null score).
        n_best: Start candidates and end candidates per window, and spans returned per window.
        max_answer_length: Longest span, in tokens.

    Returns:
        {"start_char": long [F, n_best], "end_char": long [F, n_best] (span = context[start_char:end_char]),
        "score": float32 [F, n_best] (start + end logit, best first; -inf and chars -1 past the last valid
        span), "null_score": float32 [F]}, all on the logits' device.
    """
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best ({n_best}) and max_answer_length ({max_answer_length}) must be >= 1")
    device = start_logits.device
    start = start_logits.float()
    end = end_logits.float()
    offsets = offsets.to(device)
    cls_index = cls_index.to(device=device, dtype=torch.long).view(-1, 1)
    n_features, length = start.shape
    null_score = (start.gather(1, cls_index) + end.gather(1, cls_index)).squeeze(1)

    # Non-context tokens (offsets [-1, -1]) get -inf, so any pair that uses one scores -inf: that is
    # the "both in context" mask, folded into the scores (a window with fewer than k context tokens
    # still yields k indices, and its extra ones pair up to -inf).
    not_context = offsets[..., 0] < 0  # [F, L]
    k = min(n_best, length)
    start_top, start_idx = start.masked_fill(not_context, NEG_INF).topk(k, dim=1)  # [F, k]
    end_top, end_idx = end.masked_fill(not_context, NEG_INF).topk(k, dim=1)
    span = end_idx[:, None, :] - start_idx[:, :, None]  # [F, k, k]: tokens - 1
    pair = start_top[:, :, None] + end_top[:, None, :]
    pair.masked_fill_((span < 0) | (span >= max_answer_length), NEG_INF)

    m = min(n_best, k * k)
    score, flat = pair.view(n_features, k * k).topk(m, dim=1)  # [F, m], best first
    missing = score == NEG_INF
    start_char = offsets[..., 0].gather(1, start_idx.gather(1, flat // k)).masked_fill_(missing, -1).long()
    end_char = offsets[..., 1].gather(1, end_idx.gather(1, flat % k)).masked_fill_(missing, -1).long()
    if m < n_best:  # fixed width, so that batches concatenate
        score = pad(score, (0, n_best - m), value=NEG_INF)
        start_char = pad(start_char, (0, n_best - m), value=-1)
        end_char = pad(end_char, (0, n_best - m), value=-1)
    return {"start_char": start_char, "end_char": end_char, "score": score, "null_score": null_score}


def merge_windows(
    example_index: Tensor | Sequence[int],
    candidates: dict[str, Tensor],
    n_best: int = 20,
    *,
    keep_nbest: bool = True,
    with_null: bool = False,
) -> list[dict]:
    """Merge the windows' candidates (rows of `candidates`, in any order) into one result per example.

    Returns, sorted by example index, dicts with "example_index"; "start", "end", "score" of the best
    span (char offsets; start = end = 0 and score -inf when no window has a valid span); "probability",
    the probability the model assigns to this span among the example's n-best candidate spans (softmax
    of the scores of the `nbest` list); "null_score" (min over windows); "null_odds" = null_score - score
    (+inf without a span); with `with_null`, "probability_with_null" and "null_probability", the best span's
    and the null answer's shares of the softmax over the n-best spans plus the null score (SQuAD 2.0); "nbest": the `n_best` best spans over all windows, best first, as dicts
    {"start", "end", "score", "probability"}. Overlapping windows can propose the same span twice; both
    entries stay (each is a candidate of the model), as in the usual SQuAD post-processing.
    `keep_nbest=False` leaves "nbest" out: scoring needs only the best span, and the n-best dicts are
    most of the Python work here (one dict per candidate, 200k on SQuAD dev).

    Each row of `candidates` must be sorted best first, as `feature_candidates` returns it.
    """
    # NumPy on the CPU: the result is Python objects anyway, and these small array steps would only
    # pay torch's intra-op threading overhead (costly on a busy machine).
    score = candidates["score"].detach().float().cpu().numpy()
    start_char = candidates["start_char"].detach().cpu().numpy()
    end_char = candidates["end_char"].detach().cpu().numpy()
    if isinstance(example_index, Tensor):
        example_index = example_index.detach().cpu().numpy()
    examples = np.asarray(example_index, dtype=np.int64).reshape(-1)
    n_features, width = score.shape
    if n_features == 0:
        return []
    if examples.size != n_features:
        raise ValueError(f"{examples.size} example indices for {n_features} windows")

    # Number each example's windows 0, 1, ... (slot), then fold slot after slot into a running n-best:
    # slot 0 is already sorted, and few examples have more than one or two windows.
    ids, row, counts = np.unique(examples, return_inverse=True, return_counts=True)
    row = row.reshape(-1)
    order = np.argsort(row, kind="stable")
    first = np.cumsum(counts) - counts
    slot = np.empty_like(order)
    slot[order] = np.arange(n_features) - first[row[order]]
    n_windows = int(counts.max())
    k = min(n_best, n_windows * width)

    head = order[first]  # each example's first window
    top, starts, ends = score[head, :k], start_char[head, :k], end_char[head, :k]
    if k > width:  # narrower candidates than n_best and several windows: room to merge into
        more = ((0, 0), (0, k - width))
        top = np.pad(top, more, constant_values=NEG_INF)
        starts, ends = np.pad(starts, more, constant_values=-1), np.pad(ends, more, constant_values=-1)
    for w in range(1, n_windows):
        features = np.flatnonzero(slot == w)
        rows = row[features]
        both = np.concatenate([top[rows], score[features]], axis=1)
        pick = np.argsort(-both, axis=1, kind="stable")[:, :k]
        top[rows] = np.take_along_axis(both, pick, axis=1)
        starts[rows] = np.take_along_axis(
            np.concatenate([starts[rows], start_char[features]], axis=1), pick, axis=1
        )
        ends[rows] = np.take_along_axis(
            np.concatenate([ends[rows], end_char[features]], axis=1), pick, axis=1
        )
    with np.errstate(invalid="ignore"):  # rows without any span give nan; never read
        exp = np.exp(top - top[:, :1])
        probs = exp / exp.sum(axis=1, keepdims=True)
    null = np.full(ids.size, math.inf, dtype=np.float32)
    np.minimum.at(null, row, candidates["null_score"].detach().float().cpu().numpy())
    if with_null:
        peak = np.maximum(top[:, 0], null)  # softmax over the n-best spans and the null score
        with np.errstate(invalid="ignore", over="ignore"):
            span_weights = np.exp(top - peak[:, None]).sum(axis=1)
            null_weight = np.exp(null - peak)
            with_null_p = (np.exp(top[:, 0] - peak) / (span_weights + null_weight)).tolist()
            null_p = (null_weight / (span_weights + null_weight)).tolist()

    n_found = (top > NEG_INF).sum(axis=1).tolist()
    best = zip(
        starts[:, 0].tolist(), ends[:, 0].tolist(), top[:, 0].tolist(), probs[:, 0].tolist(), strict=True
    )
    if keep_nbest:  # one flat list of dicts, sliced per example: found spans are a prefix of each row
        flat = (x.reshape(-1).tolist() for x in (starts, ends, top, probs))
        flat_nbest = [
            {"start": a, "end": b, "score": c, "probability": d} for a, b, c, d in zip(*flat, strict=True)
        ]
    out = []
    for i, (ex, n, null_score, (s, e, sc, p)) in enumerate(
        zip(ids.tolist(), n_found, null.tolist(), best, strict=True)
    ):
        if n == 0:
            s, e, sc, p = 0, 0, NEG_INF, 0.0
        result = {
            "example_index": ex,
            "start": s,
            "end": e,
            "score": sc,
            "probability": p,
            "null_score": null_score,
            "null_odds": null_score - sc if n else math.inf,
        }
        if with_null:
            result["probability_with_null"], result["null_probability"] = (
                (with_null_p[i], null_p[i]) if n else (0.0, 1.0)
            )
        if keep_nbest:
            result["nbest"] = flat_nbest[i * k : i * k + n]
        out.append(result)
    return out
