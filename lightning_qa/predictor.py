"""`QAPredictor`: answer questions from Python, as transformers' removed `pipeline("question-answering")` did.

    from lightning_qa import QAPredictor

    qa = QAPredictor("checkpoints/version_0/hf_model")  # or a .ckpt from `lightning_qa fit`, or a hub name
    qa(question="Who opened the café?", context="Zoë opened the Café Lumière in 1887.")
    # {'score': ..., 'start': 0, 'end': 3, 'answer': 'Zoë'}  (answer == context[start:end])
    qa(question=["Who?", "When?"], context=["...", "..."], top_k=3)  # a list (of lists with top_k > 1)

The options are the old pipeline's, with its defaults (`top_k`, `doc_stride`, `max_answer_len`, `max_seq_len`,
`max_question_len`, `handle_impossible_answer`, `align_to_words`; `batch_size` = windows per forward pass,
see below); each can be given to the constructor (a default) or to a call (that call only). So are the answers: by
default (`decoding="pipeline"`) spans are ranked by the old pipeline's rule, reproduced in
`lightning_qa.decoding.pipeline_candidates` / `pipeline_answers` (per-window probabilities, answers with
the same text merged by adding their scores); `decoding="logits"` ranks them as validation and
`lightning_qa predict` do (start + end logit over all windows; `score` is the probability among the
n-best spans). `benchmarks/pipeline_parity.py` compares the answers with transformers 4.57's pipeline.

Differences from the old pipeline, all deliberate:
* `top_k` answers are distinct and come from every window; when the old pipeline's per-window pool
  (2 * top_k + 10 spans, top_k without `align_to_words`) yields fewer than `top_k` distinct answers, the
  pool grows until it does or no span is left (the old pipeline returned fewer answers then). Results
  equal the old pipeline's whenever it returned `top_k` answers.
* Return shapes are regular: a single question gives a dict with `top_k=1` and a list of dicts with
  `top_k > 1` (also when only one answer exists); a list of questions gives a list (also of length 1).
* Questions longer than `max_question_len` tokens (or than the window leaves room for next to
  `doc_stride` context tokens) are cut at a word boundary; the old pipeline ignored `max_question_len`
  with fast tokenizers and failed on questions that did not fit.
* Windows are sorted by length and batched with dynamic padding, so answers do not depend on
  `batch_size` beyond float rounding; it defaults to 8 windows on the CPU and 32 on a GPU (the old
  pipeline: 1). Logits are read in float32 (bf16/fp16 models included).

No-answer questions (SQuAD 2.0): `handle_impossible_answer=True` adds the answer "" (start = end = 0) with
the null score (pipeline rule: the smallest over windows of p_start(CLS) x p_end(CLS); logits rule: its
probability among the n-best spans and the null). A model trained with `--data.version_2_with_negative`
stores the null-score threshold tuned on validation (`lightning_qa.json` or the checkpoint:
`null_score_diff_threshold`, in start+end logit units); it is the default of `null_score_diff_threshold`
here and decides where the null answer ranks. Logits rule: "" beats a span when null_score - span score >
threshold, exactly validation's rule. Pipeline rule: "" beats a span when log(null score) - log(span
score) > threshold; in one window the softmax denominators cancel and this is the same logit difference,
so a one-window context whose best answer is a single span gets validation's decision; answers merged
from several spans (same text, sub-words aligned to one word) and several windows make it approximate. Threshold 0.0 is the old pipeline's behaviour. The null answer's
reported `score` is never shifted. `handle_impossible_answer` stays False by default, as in the old
pipeline: set it for SQuAD 2.0 models.

One call runs at a time per predictor (a lock; the fast tokenizer's truncation settings are state).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lightning_qa.decoding import (
    feature_candidates,
    logits_answers,
    merge_windows,
    pipeline_answers,
    pipeline_candidates,
    word_offsets,
)

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
SETTINGS_FILE = "lightning_qa.json"
DECODINGS = ("pipeline", "logits")
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "16": torch.float16,
}
# Options a call may override; their defaults are the constructor's arguments.
OPTIONS = (
    "decoding",
    "top_k",
    "doc_stride",
    "max_answer_len",
    "max_seq_len",
    "max_question_len",
    "handle_impossible_answer",
    "align_to_words",
    "batch_size",
    "n_best_size",
    "null_score_diff_threshold",
    "n_candidates",
)
EXAMPLES_PER_PASS = 4096  # bounds the memory of one tokenization + forward pass over a long list
NO_ANSWER = {"score": 0.0, "start": 0, "end": 0, "answer": ""}


class QAPredictor:
    """Extractive question answering with a Hugging Face model directory, a `lightning_qa fit` checkpoint
    or a hub name, with the old transformers pipeline's options, defaults and answers.

    Args:
        model_name_or_path: A model directory (e.g. `hf_model/` from `lightning_qa export`), a Lightning
            checkpoint (`.ckpt` written by `lightning_qa fit`: rebuilt offline from the config and tokenizer
            stored in it), or a hub name. With `model=`, where the tokenizer comes from (unless `tokenizer=`).
        model: Use this instead of loading one: any callable taking `input_ids`, `attention_mask` (and
            `token_type_ids` if its signature names it, or `input_names` says so) as [B, L] int64 tensors and
            returning an object with `.start_logits`/`.end_logits` (or a dict with those keys, or a
            (start, end) tuple) of shape [B, L] (e.g. an ONNX runtime session wrapper).
        tokenizer: A fast tokenizer to use instead of `model_name_or_path`'s.
        device: "cpu", "cuda", "cuda:1", a torch.device or a CUDA index; default CUDA when available (CPU
            for a `model=` callable that is not a torch module).
        dtype: Weights' dtype: "fp32" (default, as the old pipeline), "bf16", "fp16", a torch.dtype, or
            "auto" (as saved). Logits are always decoded in float32.
        input_names: The model inputs to pass (default: those its forward signature names).
        trust_remote_code: Allow models and tokenizers with custom code from the hub.
        decoding: "pipeline" (the old pipeline's ranking, default) or "logits" (validation's).
        top_k: Answers per question (distinct, from all windows).
        doc_stride: Tokens of overlap between the windows of a long context (default min(max_seq_len // 2,
            128)).
        max_answer_len: Longest answer, in tokens.
        max_seq_len: Tokens per window, question and special tokens included (default min(tokenizer's
            model_max_length, 384)).
        max_question_len: Questions longer than this many tokens are cut.
        handle_impossible_answer: Also rank the answer "" (no answer), see the module docstring.
        align_to_words: Widen answers to whole words (sub-word tokens never cut a word).
        batch_size: Windows per forward pass (default 32 on a GPU, 8 on the CPU, where bigger batches of
            long windows run slower per token).
        n_best_size: Logits rule: start and end candidates per window, and spans per example among which
            `score` is a probability (validation's `--model.n_best_size`; raised to top_k if smaller).
        null_score_diff_threshold: See the module docstring; default: the model's stored value, else 0.0.
        n_candidates: Pipeline rule: spans kept per window before merging (default the old pipeline's
            2 * top_k + 10 with align_to_words, else top_k).
        compile: Run the model through `torch.compile` with dynamic shapes, so one compilation serves
            every batch size and window length. The first call compiles (seconds to a minute); later ones
            run fused kernels, which pays most for small models on the CPU, whose eager forward is
            dominated by separate memory-bound ops (bias adds, GELU, layer norms). For servers and long
            jobs; a torch module only.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        *,
        model: Callable[..., Any] | None = None,
        tokenizer: Any = None,
        device: str | int | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        input_names: Sequence[str] | None = None,
        trust_remote_code: bool = False,
        decoding: str = "pipeline",
        top_k: int = 1,
        doc_stride: int | None = None,
        max_answer_len: int = 15,
        max_seq_len: int | None = None,
        max_question_len: int = 64,
        handle_impossible_answer: bool = False,
        align_to_words: bool = True,
        batch_size: int | None = None,
        n_best_size: int = 20,
        null_score_diff_threshold: float | None = None,
        n_candidates: int | None = None,
        compile: bool = False,
    ) -> None:
        from lightning_qa.data import load_tokenizer

        if model is None and model_name_or_path is None:
            raise ValueError("give model_name_or_path (a model directory, checkpoint or hub name) or model=")
        path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        self.settings: dict[str, Any] = {}
        tokenizer_source = path
        if path is not None and path.endswith(".ckpt") and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: checkpoint file not found")
        if path is not None and os.path.isfile(path):  # a Lightning checkpoint
            loaded, tokenizer_source, self.settings = _load_checkpoint(path, trust_remote_code, model is None)
        elif path is not None:
            loaded = None
            self.settings = _read_settings(path)
            if model is None:
                from transformers import AutoModelForQuestionAnswering

                loaded = AutoModelForQuestionAnswering.from_pretrained(
                    path,
                    dtype="auto" if dtype == "auto" else (_dtype(dtype) or torch.float32),
                    trust_remote_code=trust_remote_code,
                )
        else:
            loaded = None
        if model is None:
            model = loaded
        if tokenizer is None:
            if tokenizer_source is None:
                raise ValueError("model= needs model_name_or_path or tokenizer= for its tokenizer")
            tokenizer = load_tokenizer(tokenizer_source, trust_remote_code)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer is required (offset mapping)")
        self.tokenizer = tokenizer

        is_module = isinstance(model, torch.nn.Module)
        if device is None:
            device = (
                next(iter(model.parameters()), torch.empty(0)).device
                if is_module and loaded is None
                else ("cuda" if torch.cuda.is_available() and (is_module or loaded is not None) else "cpu")
            )
        self.device = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
        if is_module:
            model.eval()
            torch_dtype = _dtype(dtype) if dtype != "auto" else None
            model.to(device=self.device, dtype=torch_dtype) if torch_dtype else model.to(self.device)
            self.dtype = next(iter(model.parameters()), torch.empty(0)).dtype
        else:
            self.dtype = _dtype(dtype) if dtype not in (None, "auto") else None
        if compile and not is_module:
            raise ValueError("compile=True needs a torch module, not a model= callable")
        self.model = model
        self._run = torch.compile(model, dynamic=True) if compile else model
        self.input_names = list(input_names) if input_names is not None else _input_names(model, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.options: dict[str, Any] = {}
        self.set_options(
            decoding=decoding,
            top_k=top_k,
            doc_stride=doc_stride,
            max_answer_len=max_answer_len,
            max_seq_len=max_seq_len,
            max_question_len=max_question_len,
            handle_impossible_answer=handle_impossible_answer,
            align_to_words=align_to_words,
            batch_size=batch_size,
            n_best_size=n_best_size,
            null_score_diff_threshold=null_score_diff_threshold,
            n_candidates=n_candidates,
        )
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **kwargs: Any) -> QAPredictor:
        """A predictor for a Hugging Face model directory or hub name (same as the constructor)."""
        return cls(model_name_or_path, **kwargs)

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | os.PathLike, **kwargs: Any) -> QAPredictor:
        """A predictor for a checkpoint written by `lightning_qa fit` (no base model needed)."""
        if not os.path.isfile(ckpt_path):
            raise FileNotFoundError(f"{ckpt_path}: checkpoint file not found")
        return cls(ckpt_path, **kwargs)

    def set_options(self, **options: Any) -> None:
        """Change default options (those a call may also give)."""
        merged = {**self.options, **_check_options(options)}
        self._resolve(merged)  # fail now on an inconsistent combination
        self.options = merged

    # -- answering ----------------------------------------------------------------------------------------
    def __call__(
        self,
        *args: Any,
        question: str | Sequence[str] | None = None,
        context: str | Sequence[str] | None = None,
        **options: Any,
    ) -> dict | list:
        """Answer `question` in `context`: strings give one result, lists give a list of results (a list of
        questions with one context string asks them all about it). Also accepted, as by the old pipeline:
        `predictor("question", "context")`, `predictor({"question": ..., "context": ...})` and a list of
        such dicts. A result is {"score", "start", "end", "answer"} (answer == context[start:end]), or a list
        of up to `top_k` of them, best first, when top_k > 1. Keyword options override the defaults for this
        call (see the class docstring)."""
        questions, contexts, single = _normalize(args, question, context)
        results = self.predict(questions, contexts, **options)
        return results[0] if single else results

    def predict(self, questions: Sequence[str], contexts: Sequence[str], **options: Any) -> list:
        """One result per question (see `__call__`): always a list, even for one question."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
        for name, texts in (("question", questions), ("context", contexts)):
            for text in texts:
                if not isinstance(text, str) or not text:
                    raise ValueError(f"every {name} must be a non-empty string, got {text!r}")
        o = self._resolve({**self.options, **_check_options(options)})
        if not questions:
            return []
        with self._lock:
            ranked: list[dict] = []
            for lo in range(0, len(questions), EXAMPLES_PER_PASS):
                ranked += self._rank(
                    list(questions[lo : lo + EXAMPLES_PER_PASS]),
                    list(contexts[lo : lo + EXAMPLES_PER_PASS]),
                    o,
                )
        if o["top_k"] == 1:
            return [dict(r["answers"][0]) if r["answers"] else dict(NO_ANSWER) for r in ranked]
        return [[dict(a) for a in r["answers"]] for r in ranked]

    # -- internals ----------------------------------------------------------------------------------------
    def _resolve(self, o: dict[str, Any]) -> dict[str, Any]:
        """Effective options: the old pipeline's derived defaults, checked."""
        o = dict(o)
        if o["decoding"] not in DECODINGS:
            raise ValueError(f"decoding must be one of {DECODINGS}, not {o['decoding']!r}")
        if o["batch_size"] is None:
            o["batch_size"] = 32 if self.device.type == "cuda" else 8
        for key in ("top_k", "max_answer_len", "batch_size", "n_best_size", "max_question_len"):
            if int(o[key]) < 1:
                raise ValueError(f"{key} must be >= 1, got {o[key]}")
        if o["max_seq_len"] is None:
            o["max_seq_len"] = min(int(self.tokenizer.model_max_length), 384)
        if o["doc_stride"] is None:
            o["doc_stride"] = min(o["max_seq_len"] // 2, 128)
        if o["doc_stride"] > o["max_seq_len"]:
            raise ValueError(
                f"`doc_stride` ({o['doc_stride']}) is larger than `max_seq_len` ({o['max_seq_len']})"
            )
        if o["doc_stride"] < 0:
            raise ValueError(f"doc_stride must be >= 0, got {o['doc_stride']}")
        specials = self.tokenizer.num_special_tokens_to_add(pair=True)
        # the fast tokenizer needs doc_stride < the room left for context tokens
        o["question_cap"] = min(o["max_question_len"], o["max_seq_len"] - specials - o["doc_stride"] - 1)
        if o["question_cap"] < 1:
            raise ValueError(
                f"max_seq_len ({o['max_seq_len']}) leaves no room for a question next to doc_stride "
                f"({o['doc_stride']}) context tokens and {specials} special tokens"
            )
        if o["null_score_diff_threshold"] is None:
            o["null_score_diff_threshold"] = float(self.settings.get("null_score_diff_threshold") or 0.0)
        if o["n_candidates"] is None:
            o["n_candidates"] = 2 * o["top_k"] + 10 if o["align_to_words"] else o["top_k"]
        o["n_best_size"] = max(o["n_best_size"], o["top_k"])
        return o

    def _rank(self, questions: list[str], contexts: list[str], o: dict[str, Any]) -> list[dict]:
        """Ranked answers per question; a second pass with a bigger pool for those short of top_k."""
        pool = o["n_candidates"] if o["decoding"] == "pipeline" else o["n_best_size"]
        ranked = self._rank_pass(questions, contexts, o, pool)
        limit = o["max_seq_len"] * o["max_answer_len"]  # more spans than any window has
        needy = [i for i, r in enumerate(ranked) if r["n_spans"] < o["top_k"] and not r["exhausted"]]
        while needy and pool < limit:
            pool *= 4
            again = self._rank_pass([questions[i] for i in needy], [contexts[i] for i in needy], o, pool)
            for i, r in zip(needy, again, strict=True):
                ranked[i] = r
            needy = [
                i
                for i, r in zip(needy, again, strict=True)
                if r["n_spans"] < o["top_k"] and not r["exhausted"]
            ]
        return ranked

    def _rank_pass(
        self, questions: list[str], contexts: list[str], o: dict[str, Any], pool: int
    ) -> list[dict]:
        w = self._windows(questions, contexts, o)
        parts: list[dict[str, Tensor]] = []
        rows_done: list[np.ndarray] = []
        order = np.argsort(-w["lengths"], kind="stable")  # longest first: little padding per batch
        with torch.inference_mode():
            for lo in range(0, order.size, o["batch_size"]):
                rows = order[lo : lo + o["batch_size"]]
                batch = self._batch(w, rows)
                start, end = self._forward(batch)
                offsets = batch["offsets"]
                if o["decoding"] == "pipeline":
                    spans = word_offsets(offsets, batch["word_ids"]) if o["align_to_words"] else None
                    cands = pipeline_candidates(
                        start, end, offsets, batch["cls_index"], pool, o["max_answer_len"], spans
                    )
                else:
                    if o["align_to_words"]:  # word-aligned token offsets: spans widen to whole words
                        spans = word_offsets(offsets, batch["word_ids"])
                        offsets = torch.where(spans >= 0, spans, offsets)
                    cands = feature_candidates(
                        start, end, offsets, batch["cls_index"], pool, o["max_answer_len"]
                    )
                parts.append({k: v.cpu() for k, v in cands.items()})
                rows_done.append(rows)
        rows = np.concatenate(rows_done)
        cands = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        examples = w["example"][rows]
        if o["decoding"] == "pipeline":
            return pipeline_answers(
                examples,
                cands,
                contexts,
                o["top_k"],
                o["handle_impossible_answer"],
                o["null_score_diff_threshold"],
                window_index=rows,
            )
        merged = merge_windows(examples, cands, pool)
        return logits_answers(
            merged, contexts, o["top_k"], o["handle_impossible_answer"], o["null_score_diff_threshold"], pool
        )

    def _windows(self, questions: list[str], contexts: list[str], o: dict[str, Any]) -> dict[str, Any]:
        """Tokenize into windows as the old pipeline did; flat arrays (one entry per token of all windows)."""
        from lightning_qa.data import encode_windows

        tok = self.tokenizer
        context_id = 1 if tok.padding_side == "right" else 0

        # Questions are rarely too long: look at their length in the windows, and cut and encode again
        # only when one is (or when the tokenizer refuses a question that leaves no room for context).
        try:
            windows, example = encode_windows(tok, questions, contexts, o["max_seq_len"], o["doc_stride"])
            too_long = any(
                window.sequence_ids.count(1 - context_id) > o["question_cap"] for window in windows
            )
        except Exception:
            too_long = True
        if too_long:
            fitted = self._fit_questions(questions, o["question_cap"])
            windows, example = encode_windows(tok, fitted, contexts, o["max_seq_len"], o["doc_stride"])
        ids = [w.ids for w in windows]
        n_windows = len(ids)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=n_windows)
        total = int(lengths.sum())
        first = np.cumsum(lengths) - lengths
        flat_ids = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=total)
        flat_offsets = np.fromiter(
            chain.from_iterable(chain.from_iterable(window.offsets for window in windows)),
            dtype=np.int64,
            count=2 * total,
        ).reshape(total, 2)
        in_context = np.zeros(total, dtype=bool)
        cls_index = np.zeros(n_windows, dtype=np.int64)
        cls_id = tok.cls_token_id
        for i, window in enumerate(windows):
            seq = window.sequence_ids
            try:
                a = seq.index(context_id)
                b = len(seq) - seq[::-1].index(context_id)
            except ValueError:  # no context token in this window
                continue
            in_context[first[i] + a : first[i] + b] = True
            if cls_id is not None:
                try:
                    cls_index[i] = ids[i].index(cls_id)
                except ValueError:
                    pass
        flat_offsets[~in_context] = -1
        w = {
            "lengths": lengths,
            "first": first,
            "example": np.asarray(example, dtype=np.int64),
            "input_ids": flat_ids,
            "offsets": flat_offsets,
            "cls_index": cls_index,
        }
        if "token_type_ids" in self.input_names:
            w["token_type_ids"] = np.fromiter(
                chain.from_iterable(window.type_ids for window in windows), dtype=np.int64, count=total
            )
        if o["align_to_words"]:
            words = np.array(list(chain.from_iterable(window.word_ids for window in windows)), dtype=float)
            w["word_ids"] = np.nan_to_num(words, nan=-1.0).astype(np.int64)
        return w

    def _fit_questions(self, questions: list[str], cap: int) -> list[str]:
        """Cut questions longer than `cap` tokens after their last whole word that fits."""
        # no tokenizer produces more tokens than UTF-8 bytes + 1: shorter questions need no look
        long = [i for i, q in enumerate(questions) if len(q.encode("utf-8")) >= cap]
        if not long:
            return questions
        enc = self.tokenizer(
            [questions[i] for i in long], add_special_tokens=False, return_offsets_mapping=True
        )
        questions = list(questions)
        for j, i in enumerate(long):
            offsets = enc["offset_mapping"][j]
            if len(offsets) <= cap:
                continue
            words = enc.word_ids(j)
            keep = next((t for t in range(cap, 0, -1) if words[t] is None or words[t] != words[t - 1]), cap)
            questions[i] = questions[i][: offsets[keep - 1][1]]
        return questions

    def _batch(self, w: dict[str, Any], rows: np.ndarray) -> dict[str, Tensor]:
        """Windows `rows` padded on the right to the longest of them, as tensors on the device."""
        lengths = w["lengths"][rows]
        width = int(lengths.max())
        pos = np.arange(width)
        real = pos[None, :] < lengths[:, None]
        index = np.where(real, w["first"][rows][:, None] + pos[None, :], 0)
        batch = {
            "input_ids": np.where(real, w["input_ids"][index], self.pad_token_id),
            "attention_mask": real.astype(np.int64),
            "offsets": np.where(real[..., None], w["offsets"][index], -1),
            "cls_index": w["cls_index"][rows],
        }
        if "token_type_ids" in w:
            batch["token_type_ids"] = np.where(real, w["token_type_ids"][index], 0)
        if "word_ids" in w:
            batch["word_ids"] = np.where(real, w["word_ids"][index], -1)
        return {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in batch.items()}

    def _forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        out = self._run(**{k: batch[k] for k in self.input_names})
        if isinstance(out, dict) or hasattr(out, "keys"):
            start, end = out["start_logits"], out["end_logits"]
        elif hasattr(out, "start_logits"):
            start, end = out.start_logits, out.end_logits
        else:
            start, end = out[0], out[1]
        start, end = torch.as_tensor(start), torch.as_tensor(end)
        # float32 before anything else reads them (no numpy bf16), on the device for decoding
        return start.to(self.device, torch.float32), end.to(self.device, torch.float32)

    def __repr__(self) -> str:
        name = type(self.model).__name__
        return f"QAPredictor({name}, device={self.device}, dtype={self.dtype}, decoding={self.options['decoding']!r})"


# -- helpers ------------------------------------------------------------------------------------------------
def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(DTYPES)}, 'auto' or a torch.dtype")
    return DTYPES[key]


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; options are {list(OPTIONS)}")
    return options


def _input_names(model: Any, tokenizer: Any) -> list[str]:
    """The inputs the model's forward names explicitly; else the tokenizer's model inputs."""
    target = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        params = {}
    named = [n for n in MODEL_INPUTS if n in params]
    if "input_ids" in named:
        return named
    from_tokenizer = [n for n in MODEL_INPUTS if n in getattr(tokenizer, "model_input_names", ())]
    return from_tokenizer or ["input_ids", "attention_mask"]


def _normalize(args: tuple, question: Any, context: Any) -> tuple[list[str], list[str], bool]:
    """The old pipeline's ways of passing questions -> (questions, contexts, single)."""
    if args:
        if question is not None or context is not None:
            raise TypeError("pass questions either positionally or as question=/context=, not both")
        if len(args) == 2 and all(isinstance(a, str) for a in args):
            question, context = args
        elif len(args) == 1 and isinstance(args[0], dict):
            return [_field(args[0], "question")], [_field(args[0], "context")], True
        elif (
            len(args) == 1
            and isinstance(args[0], (list, tuple))
            and all(isinstance(x, dict) for x in args[0])
        ):
            items = args[0]
            return [_field(x, "question") for x in items], [_field(x, "context") for x in items], False
        else:
            raise TypeError(
                "pass question=..., context=... (strings or lists), or {'question', 'context'} dicts"
            )
    if question is None or context is None:
        raise ValueError("both question and context are required")
    if isinstance(question, str) and isinstance(context, str):
        return [question], [context], True
    if isinstance(question, str):
        raise ValueError("one question string with a list of contexts: pass a list of questions")
    questions = list(question)
    contexts = [context] * len(questions) if isinstance(context, str) else list(context)
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    return questions, contexts, False


def _field(item: dict, key: str) -> str:
    if key not in item:
        raise KeyError(f"each input needs 'question' and 'context' keys, missing {key!r}")
    return item[key]


def _read_settings(path: str) -> dict[str, Any]:
    """`lightning_qa.json` of a model directory (or hub repo, when cached), else {}."""
    if os.path.isdir(path):
        file = os.path.join(path, SETTINGS_FILE)
        if not os.path.isfile(file):
            return {}
    else:
        try:
            from transformers.utils.hub import cached_file

            file = cached_file(path, SETTINGS_FILE, _raise_exceptions_for_missing_entries=False)
        except Exception:  # offline, or no such file: the settings are optional
            return {}
        if not file:
            return {}
    with open(file, encoding="utf-8") as f:
        return json.load(f)


def _load_checkpoint(path: str, trust_remote_code: bool, build: bool) -> tuple[Any, str, dict[str, Any]]:
    """(model with the checkpoint's weights or None, directory with its config + tokenizer, settings)."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    from lightning_qa.export import load_checkpoint, materialize
    from lightning_qa.model import CKPT_KEY

    checkpoint = load_checkpoint(path)
    if CKPT_KEY not in checkpoint:
        raise ValueError(
            f"{path}: not a lightning_qa checkpoint (no model config and tokenizer stored in it)"
        )
    model_dir = materialize(path)
    meta = checkpoint[CKPT_KEY]
    hparams = checkpoint.get("hyper_parameters", {})
    settings = {
        "null_score_diff_threshold": meta.get("null_score_diff_threshold", 0.0),
        "version_2_with_negative": hparams.get("version_2_with_negative", False),
        "n_best_size": hparams.get("n_best_size", 20),
        "max_answer_length": hparams.get("max_answer_length", 30),
        "metrics": meta.get("metrics", {}),
    }
    data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
    settings.update(
        {
            k: data_hparams[k]
            for k in ("max_seq_length", "doc_stride", "max_question_length")
            if k in data_hparams
        }
    )
    model = None
    if build:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
        model = AutoModelForQuestionAnswering.from_config(config, trust_remote_code=trust_remote_code)
        state = {
            k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")
        }
        model.load_state_dict(state, strict=True)
    return model, model_dir, settings
