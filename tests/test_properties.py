"""Properties over random contexts (accents, CJK, emoji, tabs, runs of spaces, newlines, no-break spaces):
labels decode back to the answer, and decoded predictions are exact, trimmed substrings of the context at
token boundaries.  Run: pytest tests/test_properties.py"""

import pytest
import torch
from helpers import check_labels, select_answers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_qa.decoding import feature_candidates, merge_windows
from lightning_qa.features import collate, prepare_features

# Characters the uncased WordPiece tokenizer keeps (composed accents are stripped but keep their offsets;
# an emoji makes its whole word one [UNK]). Word-final characters it deletes (combining accents,
# variation selectors) are a separate case, see test_word_final_characters_the_tokenizer_drops.
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + "éèêëüñçøåÉÖÅ"
CJK = "東京大学北海道日本語中文"
EMOJI = "😀🎉🚀🌍"
PUNCT = ".,;:!?'\"()-"
SEPARATORS = [" ", "  ", "   ", "\t", "\n", " \n ", "\n\n", "\u00a0", "\u3000"]
QUESTIONS = ["Who?", "Qui a ouvert le café ?", "東京はどこ？", "What 🎉 was it?", "  where\tis\n it?"]
MAX_SEQ, STRIDE = 64, 24  # room for ~40 context tokens: several windows, any answer fits in one
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

words = st.text(alphabet=LETTERS + CJK + EMOJI + PUNCT, min_size=1, max_size=5)


@st.composite
def examples(draw) -> dict:
    """A context of random words and separators, with a random answer of 1 to 3 whole words."""
    parts = draw(st.lists(st.tuples(words, st.sampled_from(SEPARATORS)), min_size=1, max_size=60))
    context, spans = draw(st.sampled_from(["", " ", "\n"])), []
    for word, sep in parts:
        spans.append((len(context), len(context) + len(word)))
        context += word + sep
    first = draw(st.integers(0, len(spans) - 1))
    last = draw(st.integers(first, min(first + 2, len(spans) - 1)))
    start, end = spans[first][0], spans[last][1]
    return {
        "id": f"ex{draw(st.integers(0, 10**6))}",
        "question": draw(st.sampled_from(QUESTIONS)),
        "context": context,
        "answers": {"text": [context[start:end]], "answer_start": [start]},
    }


@SETTINGS
@given(example=examples())
def test_labels_decode_to_the_answer_or_cls(bert_tokenizer, example):
    counts = check_labels([example], bert_tokenizer, MAX_SEQ, STRIDE)
    assert counts["covering"] == 0  # whole-word answers: the labelled tokens give back the exact text
    assert counts["exact"] >= 1  # an answer of at most 15 tokens is wholly inside some window


@SETTINGS
@given(batch=st.lists(examples(), min_size=1, max_size=3), seed=st.integers(0, 2**31 - 1))
def test_decoded_predictions_are_trimmed_substrings_at_token_boundaries(bert_tokenizer, batch, seed):
    cols = {k: [e[k] for e in batch] for k in ("id", "question", "context", "answers")}
    feats = prepare_features(cols, bert_tokenizer, MAX_SEQ, STRIDE, 16, for_eval=True)
    rows = [{k: feats[k][i] for k in feats} for i in range(len(feats["input_ids"]))]
    padded = collate(rows, bert_tokenizer.pad_token_id)
    gen = torch.Generator().manual_seed(seed)
    start_logits, end_logits = (torch.randn(padded["input_ids"].shape, generator=gen) * 5 for _ in range(2))
    cands = feature_candidates(start_logits, end_logits, padded["offsets"], padded["cls_index"], 5, 8)
    merged = merge_windows(padded["example_index"], cands, 5)
    picked = select_answers(merged, [batch[m["example_index"]]["context"] for m in merged])
    assert [p["example_index"] for p in picked] == list(range(len(batch)))
    for p in picked:
        context = batch[p["example_index"]]["context"]
        windows = [r["offsets"] for r in rows if r["example_index"] == p["example_index"]]
        token_starts = {o[0] for w in windows for o in w if o[0] >= 0}
        token_ends = {o[1] for w in windows for o in w if o[0] >= 0}
        if p["score"] == float("-inf"):  # no pair of the n-best starts and ends forms a valid span
            assert (p["answer"], p["nbest"], p["no_answer"]) == ("", [], True)
            continue
        assert p["answer"] == context[p["start"] : p["end"]] and p["nbest"][0]["start"] == p["start"]
        for span in p["nbest"]:
            text = context[span["start"] : span["end"]]
            assert text and text == text.strip(), (context, span)
            assert span["start"] in token_starts and span["end"] in token_ends


WORD_FINAL_DROPPED = [
    ("x cafe\u0301 y", "cafe\u0301"),  # a decomposed accent (NFD text)
    ("I \u2764\ufe0f it", "\u2764\ufe0f"),  # an emoji with its variation selector
    ("the mill at cafe\u0301", "cafe\u0301"),  # ... ending the context
]


@pytest.mark.parametrize("context, answer", WORD_FINAL_DROPPED)
def test_word_final_characters_the_tokenizer_drops(bert_tokenizer, context, answer):
    example = {
        "id": "x",
        "question": "Which?",
        "context": context,
        "answers": {"text": [answer], "answer_start": [context.index(answer)]},
    }
    feats = prepare_features({k: [v] for k, v in example.items()}, bert_tokenizer, 64, 16, 16, for_eval=True)
    s, e, offsets = feats["start_positions"][0], feats["end_positions"][0], feats["offsets"][0]
    assert s != feats["cls_index"][0]
    assert answer.startswith(context[offsets[s][0] : offsets[e][1]])  # the covered word, no more
