"""ONNX export of a QA model (torch's dynamo exporter) and an onnxruntime model for `QAPredictor`.

    lightning_qa export best.ckpt my-qa-model/ --onnx      # writes my-qa-model/model.onnx, checked
    QAPredictor("my-qa-model/", model=OnnxQAModel("my-qa-model/"))

The graph takes `input_ids`, `attention_mask` (and `token_type_ids` for models that use them), int64
tensors with dynamic batch and sequence dimensions, and returns `start_logits` and `end_logits`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import warnings
from typing import Any

import torch
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from lightning_qa.features import model_inputs

ONNX_FILE = "model.onnx"
INSTALL_HINT = 'pip install "lightning_qa[onnx]"'
OUTPUT_NAMES = ("start_logits", "end_logits")
# weights beyond this go to an external data file (a single protobuf cannot exceed 2 GiB)
EXTERNAL_DATA_BYTES = 1_500_000_000
SAMPLE_QUESTIONS = ("Who opened the café?", "When did it open, and where exactly?", "Why?")
SAMPLE_CONTEXTS = (
    "Zoë opened the Café Lumière in 1887.",
    "The café opened in 1887 on the south bank of the river, next to the old mill that Ann built.",
    "Because the town had nowhere to meet. " * 12,
)


class MissingExtraError(ImportError):
    """An optional dependency of the `onnx` extra is not installed."""


def require(*modules: str) -> None:
    """Import `modules` or raise one actionable line naming the extra to install."""
    for name in modules:
        try:
            __import__(name)
        except ImportError as e:
            raise MissingExtraError(
                f"ONNX support needs {name}, which is not installed: {INSTALL_HINT}"
            ) from e


class _Logits(torch.nn.Module):
    """The model as a function of plain tensors returning (start_logits, end_logits)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        out = self.model(**{k: v for k, v in inputs.items() if v is not None})
        return out.start_logits, out.end_logits


def sample_batches(tokenizer: Any, names: list[str], max_length: int = 128) -> list[dict[str, torch.Tensor]]:
    """Two padded batches of different shapes (to check that batch and sequence really are dynamic)."""
    batches = []
    for n in (2, 3):
        enc = tokenizer(
            list(SAMPLE_QUESTIONS[:n]),
            list(SAMPLE_CONTEXTS[:n]),
            truncation="only_second",
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        batches.append({k: enc[k].long() for k in names})
    return batches


def export_onnx(
    model: torch.nn.Module, tokenizer: Any, out_dir: str, opset: int | None = None
) -> dict[str, Any]:
    """Write `out_dir/model.onnx` and check it with onnxruntime against the PyTorch logits.

    Returns what goes into lightning_qa.json under "onnx": file, inputs, opset and `max_abs_diff`, the
    largest absolute difference of start/end logits between onnxruntime and PyTorch on sample batches.
    """
    require("onnx", "onnxscript", "onnxruntime")
    model = model.float().eval()
    names = model_inputs(model, tokenizer)
    batches = sample_batches(tokenizer, names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    path = os.path.join(out_dir, ONNX_FILE)
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    with _quiet():
        program = torch.onnx.export(
            _Logits(model),
            (),
            path,
            kwargs=batches[0],
            input_names=names,
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={n: {0: batch, 1: seq} for n in names},
            external_data=n_bytes > EXTERNAL_DATA_BYTES,
            verbose=False,
        )
    onnx_model = OnnxQAModel(path)
    diff = 0.0
    with torch.inference_mode():
        for b in batches:
            ref, got = model(**b), onnx_model(**b)
            for key in OUTPUT_NAMES:
                diff = max(diff, (getattr(ref, key) - getattr(got, key)).abs().max().item())
    return {
        "file": ONNX_FILE,
        "inputs": names,
        "outputs": list(OUTPUT_NAMES),
        "opset": _opset(program),
        "max_abs_diff": diff,
        "checked_shapes": [list(b["input_ids"].shape) for b in batches],
    }


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence the exporter's progress lines, deprecation warnings and "torchvision is not installed"."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _opset(program: Any) -> int | None:
    try:
        return int(program.model.opset_imports[""])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


class OnnxQAModel:
    """An exported `model.onnx` run by onnxruntime, callable like the PyTorch model.

    `OnnxQAModel(path)(input_ids=..., attention_mask=...[, token_type_ids=...])` returns an object with
    `start_logits`/`end_logits` float32 torch tensors, so `QAPredictor(model_dir, model=OnnxQAModel(model_dir))`
    answers with onnxruntime instead of PyTorch (tokenizer and decoding settings still come from model_dir).

    Args:
        path: `model.onnx`, or an exported model directory that holds one.
        providers: onnxruntime execution providers, default CPU only.
        num_threads: intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str, providers: list[str] | None = None, num_threads: int | None = None) -> None:
        require("onnxruntime")
        import onnxruntime as ort

        if os.path.isdir(path):
            path = os.path.join(path, ONNX_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path}: no ONNX model (export one with `lightning_qa export CKPT DIR --onnx`)"
            )
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        self.path = path
        self.session = ort.InferenceSession(path, options, providers=providers or ["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        # callers that read the signature (QAPredictor) then pass exactly the graph's inputs
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in self.input_names]
        )

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> QuestionAnsweringModelOutput:
        given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        if given["attention_mask"] is None:
            given["attention_mask"] = torch.ones_like(input_ids)
        if given["token_type_ids"] is None and "token_type_ids" in self.input_names:
            given["token_type_ids"] = torch.zeros_like(input_ids)
        feeds = {n: given[n].detach().to("cpu", torch.int64).numpy() for n in self.input_names}
        start, end = self.session.run(list(OUTPUT_NAMES), feeds)
        device = input_ids.device
        return QuestionAnsweringModelOutput(
            start_logits=torch.from_numpy(start).to(device), end_logits=torch.from_numpy(end).to(device)
        )
