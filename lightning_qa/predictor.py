"""`QAPredictor`: answer questions from Python, as transformers' removed `pipeline("question-answering")` did.

    from lightning_qa import QAPredictor

    qa = QAPredictor("checkpoints/version_0/hf_model")  # or a .ckpt from `lightning_qa fit`, or a hub name
    qa(question="Who opened the café?", context="Zoë opened the Café Lumière in 1887.")
    # {'score': ..., 'start': 0, 'end': 3, 'answer': 'Zoë'}  (answer == context[start:end])
    qa(question=["Who?", "When?"], context=["...", "..."], top_k=3)  # a list (of lists with top_k > 1)

The options are the old pipeline's (`top_k`, `doc_stride`, `max_answer_len`, `max_seq_len`,
`max_question_len`, `handle_impossible_answer`, `align_to_words`; `batch_size` = windows per forward pass,
see below); each can be given to the constructor (a default) or to a call (that call only).

Defaults come with the model. A model trained by lightning_qa (its `hf_model/` or `.ckpt`) stores the
settings it was trained and validated with (`lightning_qa.json`, see `lightning_qa.checkpoint`): windows
(`max_seq_length`, `doc_stride`, `max_question_length`), the answer rule (`decoding="logits"`, no word
alignment, `n_best_size`, `max_answer_length`), SQuAD 2.0 (`handle_impossible_answer`) and the tuned
no-answer threshold, so it answers here exactly as `lightning_qa predict` and validation do. Any other
model (a hub model, a directory without `lightning_qa.json`) gets the old pipeline's defaults and ranking
(`decoding="pipeline"`: per-window probabilities, answers with the same text merged by adding their
scores, whole words, `max_answer_len=15`), so `QAPredictor` stays a drop-in for
`pipeline("question-answering", model=...)`; `decoding="pipeline"` forces that rule for any model.
`benchmarks/pipeline_parity.py` and `tests/test_pipeline_parity.py` compare the answers with transformers
4.57's pipeline.

Differences from the old pipeline, all deliberate:
* `top_k` answers are distinct and come from every window; when the old pipeline's per-window pool
  (2 * top_k + 10 spans, top_k without `align_to_words`) yields fewer than `top_k` distinct answers, the
  pool grows until it does or no span is left (the old pipeline returned fewer answers then). Results
  equal the old pipeline's whenever it returned `top_k` answers.
* Return shapes are regular: a single question gives a dict with `top_k=1` and a list of dicts with
  `top_k > 1` (also when only one answer exists); a list of questions gives a list (also of length 1).
* Questions are left-stripped, and those longer than `max_question_len` tokens (or than the window
  leaves room for next to `doc_stride` + 1 context tokens) are cut after a whole word, as in training
  (`tokenization.cut_questions`); the old pipeline ignored `max_question_len` with fast tokenizers and
  failed on questions that did not fit.
* Token offsets that include surrounding spaces (Metaspace, byte-level BPE) are trimmed, so an answer
  never starts or ends with a space.
* Windows are sorted by length and batched with dynamic padding, so answers do not depend on
  `batch_size` beyond float rounding; it defaults to 8 windows on the CPU and 32 on a GPU (the old
  pipeline: 1). Logits are read in float32 (bf16/fp16 models included).

No-answer questions (SQuAD 2.0): `handle_impossible_answer=True` adds the answer "" (start = end = 0) with
the null score (pipeline rule: the smallest over windows of p_start(CLS) x p_end(CLS); logits rule: its
probability among the n-best spans and the null). `null_score_diff_threshold` (in start+end logit units;
default: the model's stored tuned threshold, else 0.0) decides where the null answer ranks. Logits rule:
"" beats a span when null_score - span score > threshold, exactly validation's rule. Pipeline rule: ""
beats a span when log(null score) - log(span score) > threshold; in one window the softmax denominators
cancel and this is the same logit difference, so a one-window context whose best answer is a single span
gets validation's decision; answers merged from several spans (same text, sub-words aligned to one word)
and several windows make it approximate. Threshold 0.0 is the old pipeline's behaviour. The null answer's
reported `score` is never shifted.

One call runs at a time per predictor (a lock; the fast tokenizer's truncation settings are state).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from torch import Tensor

from lightning_qa import checkpoint as ckpt_io
from lightning_qa.answers import AnswerRule, best, rank, window_candidates
from lightning_qa.features import chunk_batches, model_inputs
from lightning_qa.hardware import warn_if_slow_bf16
from lightning_qa.tokenization import load_tokenizer, question_budget

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
# Options a call may override: the stored setting each defaults to for a model trained by lightning_qa
# (None: none), and its default for any other model (the old pipeline's; None: derived in `_resolve`).
OPTIONS: dict[str, tuple[str | None, Any]] = {
    "decoding": ("decoding", "pipeline"),
    "top_k": (None, 1),
    "doc_stride": ("doc_stride", None),
    "max_answer_len": ("max_answer_length", 15),
    "max_seq_len": ("max_seq_length", None),
    "max_question_len": ("max_question_length", 64),
    "handle_impossible_answer": ("version_2_with_negative", False),
    "align_to_words": (None, None),  # None: the rule's own (pipeline: whole words; logits: raw spans)
    "batch_size": (None, None),
    "n_best_size": ("n_best_size", 20),
    "null_score_diff_threshold": ("null_score_diff_threshold", 0.0),
    "n_candidates": (None, None),
}


class QAPredictor:
    """Extractive question answering with a Hugging Face model directory, a `lightning_qa fit` checkpoint
    or a hub name, with the old transformers pipeline's options and, for models trained elsewhere, its
    defaults and answers.

    Args:
        model_name_or_path: A model directory (e.g. `hf_model/` from `lightning_qa export`), a Lightning
            checkpoint (`.ckpt` written by `lightning_qa fit`: rebuilt offline from the config and tokenizer
            stored in it), or a hub name. With `model=`, where the tokenizer and settings come from.
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
        compile: Run the model through `torch.compile` with dynamic shapes, so one compilation serves
            every batch size and window length. The first call compiles (seconds to a minute); later ones
            run fused kernels, which pays most for small models on the CPU. For servers and long jobs; a
            torch module only.
        quantize: "int8": run an int8 version of the model with onnxruntime on the CPU (ONNX Runtime
            dynamic quantization, made on the fly and not accuracy-checked; `lightning_qa export --quantize
            int8` writes a checked one, which loads as int8 with no option). Needs the `onnx` extra.
        options: The answering options (`OPTIONS`), each defaulting to the model's stored setting, else
            the old pipeline's: `decoding` ("logits" or "pipeline"), `top_k`, `doc_stride`,
            `max_answer_len`, `max_seq_len` (default min(tokenizer's model_max_length, 384)),
            `max_question_len`, `handle_impossible_answer`, `align_to_words` (default: True with the
            pipeline rule, as the old pipeline; False with the logits rule, as validation), `batch_size` (windows per
            forward pass: 32 on a GPU, 8 on the CPU, where bigger batches of long windows run slower per
            token), `n_best_size` (logits rule: candidates per window and spans among which `score` is a
            probability), `null_score_diff_threshold`, `n_candidates` (pipeline rule: spans kept per
            window, default 2 * top_k + 10 with align_to_words, else top_k).
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
        compile: bool = False,
        quantize: str | None = None,
        **options: Any,
    ) -> None:
        if model is None and model_name_or_path is None:
            raise ValueError("give model_name_or_path (a model directory, checkpoint or hub name) or model=")
        path = None if model_name_or_path is None else os.fspath(model_name_or_path)
        self.settings: dict[str, Any] = {}  # what the model was trained with ({} for other models)
        tokenizer_source = path
        loaded = None
        if path is not None and path.endswith(".ckpt") and not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: checkpoint file not found")
        if path is not None and os.path.isfile(path):  # a Lightning checkpoint
            checkpoint = ckpt_io.load_checkpoint(path)
            self.settings = ckpt_io.settings(checkpoint, path)
            tokenizer_source = ckpt_io.materialize(path)
            if model is None:
                loaded = ckpt_io.build_model(checkpoint, tokenizer_source, trust_remote_code)
        elif path is not None:
            self.settings = ckpt_io.read_settings(path)
            if model is None and self.settings.get("quantization"):  # an int8 export: nothing else to load
                from lightning_qa.quantize import load_int8

                model = load_int8(path, self.settings)
            elif model is None:
                from transformers import AutoModelForQuestionAnswering

                loaded = AutoModelForQuestionAnswering.from_pretrained(
                    path,
                    dtype="auto" if dtype == "auto" else (_dtype(dtype) or torch.float32),
                    trust_remote_code=trust_remote_code,
                )
        model = loaded if model is None else model
        if tokenizer is None:
            if tokenizer_source is None:
                raise ValueError("model= needs model_name_or_path or tokenizer= for its tokenizer")
            tokenizer = load_tokenizer(tokenizer_source, trust_remote_code)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("a fast tokenizer is required (offset mapping)")
        self.tokenizer = tokenizer
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', not {quantize!r}")
        if quantize and isinstance(model, torch.nn.Module):
            if compile or dtype not in (None, "auto", "fp32", "float32", torch.float32):
                raise ValueError("quantize='int8' runs in onnxruntime: it takes no dtype or compile")
            from lightning_qa.quantize import int8_model

            model, loaded = int8_model(model.float(), tokenizer), None
        elif quantize and not self.settings.get("quantization"):
            raise ValueError("quantize='int8' needs a torch model (or an int8 export), not a model= callable")

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
            warn_if_slow_bf16(self.dtype, self.device)
        else:
            self.dtype = _dtype(dtype) if dtype not in (None, "auto") else None
        if compile and not is_module:
            raise ValueError("compile=True needs a torch module, not a model= callable")
        self.model = model
        self._run = torch.compile(model, dynamic=True) if compile else model
        self.input_names = list(input_names) if input_names is not None else model_inputs(model, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        stored = self.settings
        self.options = {
            name: stored.get(key, default) if key and stored else default
            for name, (key, default) in OPTIONS.items()
        }
        self.set_options(**{k: v for k, v in options.items() if v is not None})
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
        return list(self.stream(zip(questions, contexts, strict=True), **options))

    def stream(
        self, records: Iterable[dict | tuple[str, str]], chunk_size: int = 256, **options: Any
    ) -> Iterator[dict | list]:
        """Answer an iterable of questions lazily, in order, in bounded memory: `chunk_size` questions are
        read, tokenized, sorted by window length and answered together (`batch_size` stays the windows
        per forward pass), then yielded; a generator over a file of millions of questions works.

        Records are {"question", "context"} dicts (other keys ignored) or (question, context) pairs; each
        result is what `__call__` gives for one question. Keyword options apply to every question.
        """
        o = self._resolve({**self.options, **_check_options(options)})
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        records = iter(records)
        while chunk := list(islice(records, chunk_size)):
            questions, contexts = zip(*(_pair(r) for r in chunk), strict=True)
            with self._lock:
                ranked = self._rank(list(questions), list(contexts), o)
            for r in ranked:
                yield best(r) if o["top_k"] == 1 else [dict(a) for a in r["answers"]]

    # -- internals ----------------------------------------------------------------------------------------
    def _resolve(self, o: dict[str, Any]) -> dict[str, Any]:
        """Effective options: the derived defaults filled in, checked, and the answer rule they make."""
        o = dict(o)
        if o["batch_size"] is None:
            o["batch_size"] = 32 if self.device.type == "cuda" else 8
        for key in ("top_k", "max_answer_len", "batch_size", "n_best_size", "max_question_len"):
            if int(o[key]) < 1:
                raise ValueError(f"{key} must be >= 1, got {o[key]}")
        if o["max_seq_len"] is None:
            o["max_seq_len"] = min(int(self.tokenizer.model_max_length), 384)
        if o["doc_stride"] is None:
            o["doc_stride"] = min(o["max_seq_len"] // 2, 128)
        question_budget(self.tokenizer, o["max_seq_len"], o["doc_stride"], o["max_question_len"])
        if o["align_to_words"] is None:
            o["align_to_words"] = o["decoding"] == "pipeline"
        o["rule"] = AnswerRule(
            o["decoding"],
            top_k=o["top_k"],
            n_best_size=max(o["n_best_size"], o["top_k"]),
            max_answer_length=o["max_answer_len"],
            align_to_words=o["align_to_words"],
            handle_impossible_answer=o["handle_impossible_answer"],
            null_score_diff_threshold=float(o["null_score_diff_threshold"] or 0.0),
            n_candidates=o["n_candidates"],
        )
        return o

    def _rank(self, questions: list[str], contexts: list[str], o: dict[str, Any]) -> list[dict]:
        """Ranked answers per question; a second pass with a bigger pool for those short of top_k."""
        pool = o["rule"].pool
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
        """The chunk's windows batched as `lightning_qa predict` batches them (`features.chunk_batches`),
        reduced and ranked by `answers`."""
        rule = o["rule"]
        examples = {"id": [str(i) for i in range(len(questions))], "question": questions, "context": contexts}
        batches = chunk_batches(
            examples,
            self.tokenizer,
            max_seq_length=o["max_seq_len"],
            doc_stride=o["doc_stride"],
            max_question_length=o["max_question_len"],
            batch_size=o["batch_size"],
            word_ids=rule.align_to_words,
        )
        outputs = []
        with torch.inference_mode():
            for batch in batches:
                inputs = {
                    k: batch[k].to(self.device)
                    for k in (*self.input_names, "offsets", "cls_index", "word_ids")
                    if k in batch
                }
                start, end = self._forward(inputs)
                cands = window_candidates(inputs, start, end, rule, pool)
                outputs.append(
                    {
                        **{k: v.cpu() for k, v in cands.items()},
                        **{k: batch[k] for k in ("example_index", "feature_index")},
                    }
                )
        cands = {
            k: torch.cat([p[k] for p in outputs]) for k in ("start_char", "end_char", "score", "null_score")
        }
        example_index = torch.cat([p["example_index"] for p in outputs])
        return rank(
            example_index, torch.cat([p["feature_index"] for p in outputs]), cands, contexts, rule, pool
        )

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


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown}; options are {list(OPTIONS)}")
    return options


# -- helpers ------------------------------------------------------------------------------------------------
def _dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {sorted(DTYPES)}, 'auto' or a torch.dtype")
    return DTYPES[key]


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


def _pair(record: dict | tuple[str, str]) -> tuple[str, str]:
    """A streamed record's (question, context), checked as a list's are."""
    question, context = (
        (_field(record, "question"), _field(record, "context")) if isinstance(record, dict) else record
    )
    for name, text in (("question", question), ("context", context)):
        if not isinstance(text, str) or not text:
            raise ValueError(f"every {name} must be a non-empty string, got {text!r}")
    return question, context


def _field(item: dict, key: str) -> str:
    if key not in item:
        raise KeyError(f"each input needs 'question' and 'context' keys, missing {key!r}")
    return item[key]
