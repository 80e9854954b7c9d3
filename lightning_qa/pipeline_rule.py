"""The old Hugging Face question-answering pipeline's rule for turning logits into answers.

transformers <= 4.x shipped `pipeline("question-answering")`; v5 removed it. Its ranking differs from the
SQuAD rule of `lightning_qa.decoding`, and many deployments depend on its answers and scores, so it is
reproduced here for `QAPredictor` (the default for models trained elsewhere) and `--model.decoding pipeline`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.functional import pad

from lightning_qa.decoding import NEG_INF

# The rule, as in transformers 4.57 `pipelines/question_answering.py` (`select_starts_ends`, `decode_spans`,
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
