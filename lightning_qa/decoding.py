"""Turn start/end logits into answer spans: per-window n-best on the device, then a merge per example.

The rule is the usual SQuAD one (BERT's `run_squad`, Hugging Face `run_qa`): in each window (feature) take
the `n_best` best start and the `n_best` best end tokens among context tokens, keep the pairs that form a
valid span (end >= start, at most `max_answer_length` tokens), score a span by start + end logit, and pick
the best span over all the windows of an example. The "null" (no answer) score of an example is the
smallest CLS start + end logit over its windows, as SQuAD 2.0 decoding defines it.

`feature_candidates` is batched tensor work, called once per batch where the logits are (GPU included), and
returns small fixed-shape tensors that concatenate across batches. `merge_windows` groups them by example
with tensor ops too; only building the returned dicts is a Python loop (one step per example).
`tests/reference_decoding.py` holds a plain-loop implementation of the same rule, the specification that
the tests compare against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

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
        start_logits, end_logits: [F, L] logits of F windows (any float dtype; scored in float32).
        offsets: [F, L, 2] character span of each context token, [-1, -1] for every other position.
        cls_index: [F] position of the CLS token (its logits give the null score).
        n_best: Start candidates and end candidates per window, and spans returned per window.
        max_answer_length: Longest span, in tokens.

    Returns:
        {"start_char": long [F, n_best], "end_char": long [F, n_best] (span = context[start_char:end_char]),
        "score": float32 [F, n_best] (start + end logit, best first; -inf and chars -1 past the last valid
        span), "null_score": float32 [F]}, all on the logits' device.
    """
    device = start_logits.device
    start = start_logits.float()
    end = end_logits.float()
    offsets = offsets.to(device=device, dtype=torch.long)
    cls_index = cls_index.to(device=device, dtype=torch.long).view(-1, 1)
    n_features, length = start.shape
    null_score = (start.gather(1, cls_index) + end.gather(1, cls_index)).squeeze(1)

    in_context = (offsets != -1).any(dim=-1)  # [F, L]
    k = min(n_best, length)
    _, start_idx = start.masked_fill(~in_context, NEG_INF).topk(k, dim=1)  # [F, k]
    _, end_idx = end.masked_fill(~in_context, NEG_INF).topk(k, dim=1)
    # Validity from masks, not from -inf scores: a window with fewer than k context tokens still
    # returns k indices, and the extra ones must never pair up.
    span_tokens = end_idx[:, None, :] - start_idx[:, :, None] + 1  # [F, k, k]
    valid = (
        in_context.gather(1, start_idx)[:, :, None]
        & in_context.gather(1, end_idx)[:, None, :]
        & (span_tokens >= 1)
        & (span_tokens <= max_answer_length)
    )
    pair = start.gather(1, start_idx)[:, :, None] + end.gather(1, end_idx)[:, None, :]
    pair = pair.masked_fill(~valid, NEG_INF).view(n_features, k * k)

    m = min(n_best, k * k)
    score, flat = pair.topk(m, dim=1)  # [F, m], sorted best first
    span_start = start_idx.gather(1, flat // k)
    span_end = end_idx.gather(1, flat % k)
    found = torch.isfinite(score)
    start_char = offsets[..., 0].gather(1, span_start).masked_fill(~found, -1)
    end_char = offsets[..., 1].gather(1, span_end).masked_fill(~found, -1)
    score = score.masked_fill(~found, NEG_INF)  # +inf/nan logits are not spans either
    if m < n_best:  # fixed width, so that batches concatenate
        pad = n_best - m
        score = torch.nn.functional.pad(score, (0, pad), value=NEG_INF)
        start_char = torch.nn.functional.pad(start_char, (0, pad), value=-1)
        end_char = torch.nn.functional.pad(end_char, (0, pad), value=-1)
    return {"start_char": start_char, "end_char": end_char, "score": score, "null_score": null_score}


def merge_windows(
    example_index: Tensor | Sequence[int], candidates: dict[str, Tensor], n_best: int = 20
) -> list[dict]:
    """Merge the windows' candidates (rows of `candidates`, in any order) into one result per example.

    Returns, sorted by example index, dicts with "example_index"; "start", "end", "score" of the best
    span (char offsets; start = end = 0 and score -inf when no window has a valid span); "probability",
    the probability the model assigns to this span among the example's n-best candidate spans (softmax
    of the scores of the `nbest` list); "null_score" (min over windows); "null_odds" = null_score - score
    (+inf without a span); "nbest": the `n_best` best spans over all windows, best first, as dicts
    {"start", "end", "score", "probability"}. Overlapping windows can propose the same span twice; both
    entries stay (each is a candidate of the model), as in the usual SQuAD post-processing.
    """
    score = candidates["score"].float()
    device = score.device
    examples = torch.as_tensor(example_index, dtype=torch.long).to(device).view(-1)
    n_features, width = score.shape
    if n_features == 0:
        return []
    if examples.numel() != n_features:
        raise ValueError(f"{examples.numel()} example indices for {n_features} windows")

    # Lay the windows out as a padded [E, W, width] grid: row = example, column = its w-th window.
    ids, row, counts = torch.unique(examples, return_inverse=True, return_counts=True)
    n_examples, n_windows = ids.numel(), int(counts.max())
    order = torch.argsort(row, stable=True)
    first = torch.cumsum(counts, 0) - counts
    col = torch.empty_like(order)
    col[order] = torch.arange(n_features, device=device) - first[row[order]]

    def grid(values: Tensor, fill: float) -> Tensor:
        out = values.new_full((n_examples, n_windows, width), fill)
        out[row, col] = values
        return out.view(n_examples, n_windows * width)

    k = min(n_best, n_windows * width)
    top, flat = grid(score, NEG_INF).topk(k, dim=1)
    starts = grid(candidates["start_char"].to(device), -1).gather(1, flat)
    ends = grid(candidates["end_char"].to(device), -1).gather(1, flat)
    probs = torch.softmax(top, dim=1).nan_to_num(0.0)  # a row of only -inf gives nan
    n_found = torch.isfinite(top).sum(dim=1)
    null = torch.full((n_examples,), math.inf, device=device).scatter_reduce(
        0, row, candidates["null_score"].float().to(device), "amin"
    )

    out = []
    rows = zip(
        ids.tolist(),
        n_found.tolist(),
        starts.tolist(),
        ends.tolist(),
        top.tolist(),
        probs.tolist(),
        strict=True,
    )
    for (ex, n, s, e, sc, p), null_score in zip(rows, null.tolist(), strict=True):
        nbest = [
            {"start": a, "end": b, "score": c, "probability": d}
            for a, b, c, d in zip(s[:n], e[:n], sc[:n], p[:n], strict=True)
        ]
        best = nbest[0] if nbest else {"start": 0, "end": 0, "score": NEG_INF, "probability": 0.0}
        out.append(
            {
                "example_index": ex,
                **best,
                "null_score": null_score,
                "null_odds": null_score - best["score"] if nbest else math.inf,
                "nbest": nbest,
            }
        )
    return out


def select_answers(
    merged: list[dict],
    contexts: Sequence[str],
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> list[dict]:
    """Pick each example's answer text; `contexts[i]` is the context of `merged[i]`.

    Returns copies of the merged dicts with three keys added:
    "best_non_null": context[start:end], the text of the best span ("" when there is none), kept for
    threshold tuning; "no_answer": True when the prediction is "no answer" (SQuAD 2.0 and
    null_odds > null_score_diff_threshold, or no valid span at all); "answer": "" when no_answer, else
    best_non_null. "start"/"end"/"score" always describe the best span, whatever the answer.
    """
    if len(merged) != len(contexts):
        raise ValueError(f"{len(contexts)} contexts for {len(merged)} examples")
    out = []
    for m, context in zip(merged, contexts, strict=True):
        has_span = m["score"] != NEG_INF
        text = context[m["start"] : m["end"]] if has_span else ""
        no_answer = not has_span or (version_2_with_negative and m["null_odds"] > null_score_diff_threshold)
        out.append({**m, "best_non_null": text, "no_answer": no_answer, "answer": "" if no_answer else text})
    return out
