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
) -> list[dict]:
    """Merge the windows' candidates (rows of `candidates`, in any order) into one result per example.

    Returns, sorted by example index, dicts with "example_index"; "start", "end", "score" of the best
    span (char offsets; start = end = 0 and score -inf when no window has a valid span); "probability",
    the probability the model assigns to this span among the example's n-best candidate spans (softmax
    of the scores of the `nbest` list); "null_score" (min over windows); "null_odds" = null_score - score
    (+inf without a span); "nbest": the `n_best` best spans over all windows, best first, as dicts
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
        if keep_nbest:
            result["nbest"] = flat_nbest[i * k : i * k + n]
        out.append(result)
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


# -- the old Hugging Face question-answering pipeline's rule ------------------------------------------------
#
# transformers <= 4.x shipped `pipeline("question-answering")`; v5 removed it. Its ranking differs from the
# SQuAD rule above, and many deployments depend on its answers and scores, so it is reproduced here
# (transformers 4.57 `pipelines/question_answering.py`: `select_starts_ends`, `decode_spans`,
# `QuestionAnsweringPipeline.postprocess` / `get_indices` / `get_answer`):
#
# * per window, softmax of the start and of the end logits over the context tokens AND the CLS token (the
#   pipeline always leaves CLS unmasked, `handle_impossible_answer` or not; every other token gets -10000
#   before the softmax, i.e. probability 0);
# * the null score of a window is p_start(CLS) x p_end(CLS); the example's is the smallest over its
#   windows (`min_null_score`); CLS probabilities are then zeroed;
# * a span (i, j) of context tokens with 0 <= j - i < max_answer_len scores p_start(i) x p_end(j) (the
#   `decode_spans` triu/tril band); each window keeps its best `n` spans (`top_k`, over-fetched to
#   2 * top_k + 10 when aligning to words, because aligned spans collapse into one answer);
# * `align_to_words` widens a token span to whole words of the window: from the first character of the
#   start token's word to the last character of the end token's word (`Encoding.word_to_chars`, limited to
#   the tokens of the word inside that window); a token without a word falls back to raw token offsets;
# * windows are visited in order, spans best first; an answer whose text equals an earlier one ignoring case
#   adds its score to it (keeping the earlier one's start/end), so overlapping windows and sub-word spans
#   that align to the same words reinforce each other;
# * answers are sorted by score (stable: earlier first on ties), the null answer ("", start = end = 0,
#   score min_null_score) appended last before sorting when `handle_impossible_answer`, cut to `top_k`.
#
# Deliberate differences, all outside the answers the old pipeline could rank first: it filtered its per-window
# top-n by "desired" tokens only after taking it (`np.isin` against the `nonzero()` tuple, which also let
# position 0 through), so windows with fewer than n valid spans padded their list with zero-score junk
# (reversed spans, spans over max_answer_len, spans starting at CLS); here a window offers only valid spans.
# `null_score` is read at `cls_index` (the pipeline read position 0, the same place for right-padding
# tokenizers).


def word_offsets(offsets: Tensor, word_ids: Tensor) -> Tensor:
    """The character span, within its window, of the word of every context token (`align_to_words`).

    Args:
        offsets: [F, L, 2] character span of each context token, [-1, -1] for every other position.
        word_ids: [F, L] word index of each token (`Encoding.word_ids`, any numbering that is constant over
            a word's tokens and changes between neighbouring words), negative for tokens without a word.

    Returns:
        long [F, L, 2]: (start of the word's first token in this window, end of its last token in this
        window) for context tokens with a word, [-1, -1] elsewhere. This is `Encoding.word_to_chars` of the
        token's word in the window, as the old pipeline's `get_indices` used it.
    """
    offsets = offsets.long()
    word_ids = word_ids.to(offsets.device).long()
    n_features, length = word_ids.shape
    has_word = (offsets[..., 0] >= 0) & (word_ids >= 0)
    w = word_ids.masked_fill(~has_word, -1)
    pos = torch.arange(length, device=offsets.device).expand(n_features, length)
    same_as_prev = torch.zeros_like(has_word)
    same_as_prev[:, 1:] = has_word[:, 1:] & has_word[:, :-1] & (w[:, 1:] == w[:, :-1])
    same_as_next = torch.zeros_like(has_word)
    same_as_next[:, :-1] = same_as_prev[:, 1:]
    first = pos.masked_fill(same_as_prev, 0).cummax(dim=1).values  # first token of the word's run
    last_rev = (length - 1 - pos).masked_fill(same_as_next, 0).flip(1).cummax(dim=1).values.flip(1)
    last = length - 1 - last_rev  # last token of the word's run
    out = torch.stack([offsets[..., 0].gather(1, first), offsets[..., 1].gather(1, last)], dim=-1)
    return out.masked_fill_(~has_word[..., None], -1)


def context_word_ids(tokenizer, contexts: Sequence[str], offsets: Tensor) -> Tensor:
    """Word index of every context token of windows whose token offsets are known but not their words
    (features from `data.prepare_features`): tokenize each distinct context alone and look the word up
    by the token's first character. Returns long [F, L], -1 where there is no word (or no context token).

    A context's tokens are the same alone or in a question/context pair, so `word_offsets` of these ids
    equals `word_offsets` of the windows' own `Encoding.word_ids`.
    """
    unique = list(dict.fromkeys(contexts))
    enc = tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True)
    char_word = {}
    for i, context in enumerate(unique):
        words = np.full(len(context) + 1, -1, dtype=np.int64)
        for w, (a, b) in zip(enc.word_ids(i), enc["offset_mapping"][i], strict=True):
            if w is not None and b > a:
                words[a:b] = w
        char_word[context] = words
    starts = offsets[..., 0].detach().cpu().numpy()
    out = np.full(starts.shape, -1, dtype=np.int64)
    for f, context in enumerate(contexts):
        words = char_word[context]
        row = starts[f]
        ok = (row >= 0) & (row < len(words))
        out[f, ok] = words[row[ok]]
    return torch.from_numpy(out).to(offsets.device)


def pipeline_candidates(
    start_logits: Tensor,
    end_logits: Tensor,
    offsets: Tensor,
    cls_index: Tensor,
    n: int,
    max_answer_len: int = 15,
    word_spans: Tensor | None = None,
) -> dict[str, Tensor]:
    """The `n` best spans of every window by the old pipeline's score (see above), as character offsets.

    Args:
        start_logits, end_logits: [F, L] logits (any float dtype; scored in float32).
        offsets: [F, L, 2] character span of each context token, [-1, -1] for every other position
            (question, special tokens, padding).
        cls_index: [F] position of the CLS token (kept in the softmax; its probabilities give the null score).
        n: Spans kept per window (the pipeline's `top_k`, or `2 * top_k + 10` with `align_to_words`).
        max_answer_len: Longest span, in tokens.
        word_spans: [F, L, 2] from `word_offsets` to align spans to words; None keeps raw token offsets.

    Returns:
        {"start_char": long [F, n], "end_char": long [F, n], "score": float32 [F, n] (p_start x p_end, best
        first; -inf and chars -1 past the window's last valid span), "null_score": float32 [F]
        (p_start(CLS) x p_end(CLS))}, on the logits' device.
    """
    if n < 1 or max_answer_len < 1:
        raise ValueError(f"n ({n}) and max_answer_len ({max_answer_len}) must be >= 1")
    device = start_logits.device
    offsets = offsets.to(device)
    cls_index = cls_index.to(device=device, dtype=torch.long).view(-1, 1)
    n_features, length = start_logits.shape
    context = offsets[..., 0] >= 0
    in_softmax = context.scatter(1, cls_index, True)
    p_start = start_logits.float().masked_fill(~in_softmax, -10000.0).softmax(dim=-1)
    p_end = end_logits.float().masked_fill(~in_softmax, -10000.0).softmax(dim=-1)
    null_score = (p_start.gather(1, cls_index) * p_end.gather(1, cls_index)).squeeze(1)

    # The band of valid spans: start i, end i + d for d < max_answer_len, both context tokens.
    band = min(max_answer_len, length)
    p_end_band = pad(p_end, (0, band - 1)).unfold(1, band, 1)  # [F, L, band]: p_end[i + d]
    end_in_context = pad(context.to(torch.uint8), (0, band - 1)).unfold(1, band, 1).bool()
    score = p_start[:, :, None] * p_end_band
    score = score.masked_fill_(~(context[:, :, None] & end_in_context), NEG_INF).view(n_features, -1)
    k = min(n, length * band)
    top, flat = score.topk(k, dim=1)  # best first
    start_tok = flat // band
    end_tok = (start_tok + flat % band).clamp_(max=length - 1)  # past the end only for -inf entries
    start_char = offsets[..., 0].gather(1, start_tok)
    end_char = offsets[..., 1].gather(1, end_tok)
    if word_spans is not None:
        word_spans = word_spans.to(device)
        word_start = word_spans[..., 0].gather(1, start_tok)
        word_end = word_spans[..., 1].gather(1, end_tok)
        aligned = (word_start >= 0) & (word_end >= 0)  # else the pipeline kept raw offsets for both ends
        start_char = torch.where(aligned, word_start, start_char)
        end_char = torch.where(aligned, word_end, end_char)
    missing = top == NEG_INF
    start_char = start_char.masked_fill(missing, -1).long()
    end_char = end_char.masked_fill(missing, -1).long()
    if k < n:  # fixed width, so that batches concatenate
        top = pad(top, (0, n - k), value=NEG_INF)
        start_char = pad(start_char, (0, n - k), value=-1)
        end_char = pad(end_char, (0, n - k), value=-1)
    return {"start_char": start_char, "end_char": end_char, "score": top, "null_score": null_score}


def _group_windows(example_index, window_index, n_rows: int) -> list[tuple[int, list[int]]]:
    """[(example, [rows of its windows in window order]), ...] sorted by example."""
    examples = np.asarray(
        example_index.detach().cpu().numpy() if isinstance(example_index, Tensor) else example_index,
        dtype=np.int64,
    ).reshape(-1)
    if window_index is None:
        windows = np.arange(n_rows)
    elif isinstance(window_index, Tensor):
        windows = window_index.detach().cpu().numpy().reshape(-1)
    else:
        windows = np.asarray(window_index).reshape(-1)
    if examples.size != n_rows or windows.size != n_rows:
        raise ValueError(f"{examples.size} example and {windows.size} window indices for {n_rows} windows")
    order = np.lexsort((windows, examples))
    sorted_examples = examples[order]
    cuts = np.flatnonzero(np.diff(sorted_examples)) + 1
    return [
        (int(group_examples[0]), rows.tolist())
        for rows, group_examples in zip(np.split(order, cuts), np.split(sorted_examples, cuts), strict=True)
        if rows.size
    ]


def pipeline_answers(
    example_index: Tensor | Sequence[int],
    candidates: dict[str, Tensor],
    contexts: Sequence[str] | dict[int, str],
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    null_score_diff_threshold: float = 0.0,
    window_index: Tensor | Sequence[int] | None = None,
) -> list[dict]:
    """Merge `pipeline_candidates` rows into each example's ranked answers, as the old pipeline did.

    Args:
        example_index: [F] example of each row of `candidates`.
        candidates: Output of `pipeline_candidates` (rows concatenated in any order).
        contexts: `contexts[example]` is the text the character offsets point into.
        top_k: Answers returned per example.
        handle_impossible_answer: Add the null answer {"answer": "", "start": 0, "end": 0} with the
            example's null score (the smallest over its windows).
        null_score_diff_threshold: The null answer ranks as if its score were null x exp(-threshold): it
            beats a span when log(null) - log(span score) > threshold, the logits rule's "null_odds >
            threshold" (exactly so for a one-window context whose best answer text occurs once). 0.0 is
            the old pipeline. Its reported "score" stays the null score.
        window_index: [F] order of the windows within an example (the pipeline visits them in order, which
            decides the start/end kept for merged answers and the order of ties); None: row order.

    Returns:
        Sorted by example: {"example_index", "answers": [{"score", "start", "end", "answer"}, ...] (best
        first, at most top_k), "null_score", "n_spans" (distinct span answers before the top_k cut),
        "exhausted" (True when no window of the example had more valid spans than it returned)}.
    """
    score = candidates["score"].detach().float().cpu()
    n_rows = score.shape[0]
    if n_rows == 0:
        return []
    groups = _group_windows(example_index, window_index, n_rows)
    exhausted = (score[:, -1] == NEG_INF).tolist()
    score = score.tolist()
    start_char = candidates["start_char"].detach().cpu().tolist()
    end_char = candidates["end_char"].detach().cpu().tolist()
    null_scores = candidates["null_score"].detach().float().cpu().tolist()
    null_factor = math.exp(min(max(-null_score_diff_threshold, -700.0), 700.0))  # no float overflow
    out = []
    for ex, rows in groups:
        context = contexts[ex]
        merged: dict[str, dict] = {}  # lower-cased text -> the first answer with that text
        min_null = 1000000.0  # the pipeline's start value: large and positive
        for row in rows:
            min_null = min(min_null, null_scores[row])
            for s, e, sc in zip(start_char[row], end_char[row], score[row], strict=True):
                if sc == NEG_INF:
                    break
                text = context[s:e]
                key = text.lower()
                answer = merged.get(key)
                if answer is None:
                    merged[key] = {"score": sc, "start": s, "end": e, "answer": text}
                else:
                    answer["score"] += sc
        ranked = sorted(merged.values(), key=lambda a: a["score"], reverse=True)
        n_spans = len(ranked)
        if handle_impossible_answer:
            null_rank = min_null * null_factor
            place = sum(1 for a in ranked if a["score"] >= null_rank)  # stable: ties keep spans first
            ranked.insert(place, {"score": min_null, "start": 0, "end": 0, "answer": ""})
        out.append(
            {
                "example_index": ex,
                "answers": ranked[:top_k],
                "null_score": min_null,
                "n_spans": n_spans,
                "exhausted": all(exhausted[r] for r in rows),
            }
        )
    return out


def logits_answers(
    merged: list[dict],
    contexts: Sequence[str] | dict[int, str],
    top_k: int = 1,
    handle_impossible_answer: bool = False,
    null_score_diff_threshold: float = 0.0,
    n_best: int | None = None,
) -> list[dict]:
    """Ranked answers of each example by the SQuAD logits rule, from `merge_windows(..., keep_nbest=True)`.

    Spans rank by start + end logit; the same character span proposed by two windows counts once (its best
    entry). "score" is the span's probability among the example's n-best spans (softmax of their logit
    sums), plus the null answer when `handle_impossible_answer` (as `lightning_qa predict` scores SQuAD 2.0
    answers). The null answer ({"answer": "", "start": 0, "end": 0}) ranks above a span when null_score -
    span score > `null_score_diff_threshold`, the rule validation applies to the best span.

    Returns, in the order of `merged`: {"example_index", "answers": [{"score", "start", "end", "answer"},
    ...] (best first, at most top_k), "null_score", "n_spans" (distinct spans), "exhausted" (False when the
    n-best list holds `n_best` entries, so that more spans may exist; None without `n_best`)}.
    """
    out = []
    for m in merged:
        context = contexts[m["example_index"]]
        nbest = m["nbest"]
        if handle_impossible_answer:
            logits = [c["score"] for c in nbest] + [m["null_score"]]
            top = max(logits)
            weights = [math.exp(x - top) for x in logits]
            total = sum(weights)
            probs = [w / total for w in weights]
        else:
            probs = [c["probability"] for c in nbest]
        ranked, seen = [], set()
        for c, p in zip(nbest, probs, strict=False):
            if (c["start"], c["end"]) in seen:
                continue
            seen.add((c["start"], c["end"]))
            text = context[c["start"] : c["end"]]
            ranked.append(({"score": p, "start": c["start"], "end": c["end"], "answer": text}, c["score"]))
        n_spans = len(ranked)
        answers = [a for a, _ in ranked]
        if handle_impossible_answer:
            null_rank = m["null_score"] - null_score_diff_threshold
            place = sum(1 for _, logit in ranked if logit >= null_rank)
            answers.insert(place, {"score": probs[-1], "start": 0, "end": 0, "answer": ""})
        out.append(
            {
                "example_index": m["example_index"],
                "answers": answers[:top_k],
                "null_score": m["null_score"],
                "n_spans": n_spans,
                "exhausted": None if n_best is None else len(nbest) < n_best,
            }
        )
    return out
