"""int8 inference: ONNX Runtime's dynamic quantization of our ONNX export, accepted only after an accuracy check.

    lightning_qa export best.ckpt qa-int8/ --quantize int8 [--check_file dev.json]
    QAPredictor("qa-int8/")                      # runs qa-int8/model_int8.onnx, no option needed
    QAPredictor("hf_model/", quantize="int8")    # quantized on the fly, unchecked

Why ONNX Runtime (`onnxruntime.quantization.quantize_dynamic`): it writes one standard file that loads
without PyTorch's quantized ops, it can quantize the embedding tables too (`Gather`), which most of a small
encoder's size is, and it is maintained; `torch.ao.quantization` warns that it is deprecated, and torchao
is fast on the CPU mostly under `torch.compile`. `benchmarks/quantization.py` measures the choice
(docs/benchmarks.md). Weights are int8 (per output channel by default), activations are quantized per batch
at run time: no calibration data.

The accuracy check scores the float32 model and each int8 option on the same questions with the official
SQuAD rules, int8 at several batch sizes (its activation scales are per batch) with the worst one judged.
Options follow `FALLBACK`, a fixed order that keeps more layers in float32 each time; the first whose F1 drop
is within `max_f1_drop` is accepted, and when none is the export is refused.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import shutil
import tempfile
from typing import Any

import torch

from lightning_qa.onnx_export import OnnxQAModel, export_onnx, require

QUANTIZE = ("int8",)
INT8_FILE = "model_int8.onnx"
DEFAULT_CHECK_SAMPLES = 1000
DEFAULT_MAX_F1_DROP = 1.0
# The fallback order: layer groups kept in float32, one more each try. The QA output layer from the start: its
# error goes straight into the logits, it is tiny (2 x hidden weights: no cost in size or speed), and with it in
# int8 the answers moved with the batch (activations get one scale per batch; measured on MiniLM-L6: F1 -8.9
# at batch 8, +0.4 at 16, docs/benchmarks.md). Then the feed-forward output projections (their inputs, the GELU
# outputs, are where BERT-like encoders' activation outliers are reported), then the embedding tables.
FALLBACK: tuple[tuple[str, ...], ...] = (
    ("qa_outputs",),
    ("qa_outputs", "ffn_outputs"),
    ("qa_outputs", "ffn_outputs", "embeddings"),
)
# Activation scales are per batch, so an int8 model's answers depend on which windows share a forward pass:
# the check scores int8 at each of these batch sizes (one request, QAPredictor's CPU default, predict's) and
# judges the worst. float32 answers do not depend on the batch; it is scored once.
CHECK_BATCH_SIZES = (1, 8, 32)
GROUPS = ("qa_outputs", "ffn_outputs", "embeddings")


class AccuracyCheckFailed(ValueError):
    """No int8 option kept the F1 within the allowed drop: the export is refused."""


def kept_modules(model: torch.nn.Module, groups: tuple[str, ...]) -> list[str]:
    """Names of the Linear modules of `groups` ("embeddings" is a graph op type, not a Linear).

    qa_outputs: the head (`model.qa_outputs` in every Hugging Face QA model). ffn_outputs: the Linears that
    read the model's widest activations (the feed-forward intermediate size), i.e. each block's down-projection
    (DistilBERT `ffn.lin2`, BERT `output.dense`), found by shape so any encoder works.
    """
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    widest = max((m.in_features for m in linears.values()), default=0)
    names = []
    if "qa_outputs" in groups:
        names += [n for n in linears if n.rsplit(".", 1)[-1] == "qa_outputs"]
    if "ffn_outputs" in groups:
        names += [n for n, m in linears.items() if m.in_features == widest and m.out_features < widest]
    return names


def _nodes_of(onnx_path: str, modules: list[str]) -> list[str]:
    """The graph nodes the exporter recorded as inside `modules` (its `pkg.torch.onnx.name_scopes`)."""
    import onnx

    wanted = {f"model.{m}" for m in modules}  # the exporter wraps the model as `model` (onnx_export._Logits)
    nodes = []
    for node in onnx.load(onnx_path, load_external_data=False).graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if scopes and wanted & set(ast.literal_eval(scopes)):
            nodes.append(node.name)
    return nodes


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_dynamic logs "Please consider to run pre-processing" on the root logger at every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx(
    fp32_path: str,
    out_path: str,
    model: torch.nn.Module,
    keep: tuple[str, ...] = (),
    per_channel: bool = True,
    reduce_range: bool = False,
) -> dict[str, Any]:
    """Write the int8 version of `fp32_path` (exported from `model`) with `keep` groups left in float32.

    Returns the settings used (what goes into `lightning_qa.json`)."""
    require("onnxruntime")
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    modules = kept_modules(model, keep)
    op_types = ["MatMul"] + ([] if "embeddings" in keep else ["Gather"])
    with _quiet_root_logger():
        quantize_dynamic(
            fp32_path,
            out_path,
            op_types_to_quantize=op_types,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_nodes_of(fp32_path, modules),
        )
    return {
        "library": f"onnxruntime {onnxruntime.__version__}",
        "method": "quantize_dynamic (int8 weights, activations quantized per batch at run time)",
        "op_types": op_types,
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "kept_float32": list(keep),
        "kept_modules": modules,
    }


def int8_model(
    model: torch.nn.Module,
    tokenizer: Any,
    keep: tuple[str, ...] = FALLBACK[0],
    per_channel: bool = True,
    reduce_range: bool = False,
    num_threads: int | None = None,
) -> OnnxQAModel:
    """`model` quantized in memory (for `QAPredictor(quantize="int8")` and `predict --model.quantize int8`):
    no accuracy check, which is `lightning_qa export --quantize int8`'s job. `model` is left in float32."""
    with tempfile.TemporaryDirectory(prefix="lightning_qa-int8-") as tmp:
        export_onnx(model, tokenizer, tmp)
        path = os.path.join(tmp, INT8_FILE)
        quantize_onnx(os.path.join(tmp, "model.onnx"), path, model, keep, per_channel, reduce_range)
        return OnnxQAModel(path, num_threads=num_threads)  # the session holds the graph: the files can go


def load_int8(path: str, settings: dict[str, Any], num_threads: int | None = None) -> OnnxQAModel:
    """The int8 model of an export (`settings["quantization"]["file"]`), a local directory or a hub repo."""
    name = settings["quantization"]["file"]
    file = os.path.join(path, name)
    if not os.path.isdir(path):
        from transformers.utils.hub import cached_file

        file = cached_file(path, name)
    return OnnxQAModel(file, num_threads=num_threads)


# -- the accuracy check -------------------------------------------------------------------------------------
def check_examples(path: str, n: int, version_2: bool) -> list[dict]:
    """The first `n` questions (with answers) of a SQuAD JSON / JSON Lines file."""
    from lightning_qa.io import read_examples

    if n < 1:
        raise ValueError(f"--check_samples must be >= 1, got {n}")
    return read_examples(path, allow_unanswerable=version_2)[:n]


def score(
    predictor: Any, examples: list[dict], version_2: bool, batch_size: int | None = None
) -> dict[str, float]:
    """Official SQuAD exact match and F1 of `predictor`'s best answers (its stored settings and rule)."""
    from lightning_qa.metrics import squad_v1, squad_v2

    options = {"batch_size": batch_size} if batch_size else {}
    answers = predictor.predict(
        [e["question"] for e in examples], [e["context"] for e in examples], top_k=1, **options
    )
    predictions = {e["id"]: a["answer"] for e, a in zip(examples, answers, strict=True)}
    golds = {e["id"]: list(e["answers"]["text"]) or [""] for e in examples}
    scores = squad_v2(golds, predictions) if version_2 else squad_v1(golds, predictions)
    return {
        "exact_match": round(float(scores.get("exact_match", scores.get("exact"))), 3),
        "f1": round(float(scores["f1"]), 3),
    }


def quantize_checked(
    model: torch.nn.Module,
    tokenizer: Any,
    model_dir: str,
    check_file: str,
    check_samples: int = DEFAULT_CHECK_SAMPLES,
    max_f1_drop: float = DEFAULT_MAX_F1_DROP,
    per_channel: bool = True,
    reduce_range: bool = False,
    check_batch_sizes: tuple[int, ...] = CHECK_BATCH_SIZES,
) -> dict[str, Any]:
    """Write `model_dir/model_int8.onnx`: the first `FALLBACK` option whose worst F1 on `check_file` over
    `check_batch_sizes` is at most `max_f1_drop` below the float32 model's. Raises `AccuracyCheckFailed` (one line, both F1 values) when
    none is. `model_dir` holds the model's tokenizer and settings; returns what the export records."""
    from lightning_qa.predictor import QAPredictor

    require("onnx", "onnxscript", "onnxruntime")
    predictor = QAPredictor(model_dir, model=model.float().eval(), tokenizer=tokenizer, device="cpu")
    version_2 = bool(predictor.options["handle_impossible_answer"])
    examples = check_examples(check_file, check_samples, version_2)
    fp32 = score(predictor, examples, version_2)
    tried = []
    with tempfile.TemporaryDirectory(prefix="lightning_qa-int8-") as tmp:
        export_onnx(model, tokenizer, tmp)
        fp32_path = os.path.join(tmp, "model.onnx")
        for keep in FALLBACK:
            path = os.path.join(tmp, f"int8-{len(tried)}.onnx")
            used = quantize_onnx(fp32_path, path, model, keep, per_channel, reduce_range)
            int8_predictor = QAPredictor(model_dir, model=OnnxQAModel(path), tokenizer=tokenizer)
            by_batch = {str(b): score(int8_predictor, examples, version_2, b) for b in check_batch_sizes}
            int8 = min(by_batch.values(), key=lambda s: s["f1"])  # the worst batch size is judged
            drop = round(fp32["f1"] - int8["f1"], 3)
            tried.append(
                {
                    "kept_float32": list(keep),
                    **int8,
                    "f1_drop": drop,
                    "by_batch_size": by_batch,
                    "bytes": os.path.getsize(path),
                }
            )
            if drop <= max_f1_drop:
                shutil.move(path, os.path.join(model_dir, INT8_FILE))
                return {
                    "dtype": "int8",
                    "file": INT8_FILE,
                    **used,
                    "bytes": tried[-1]["bytes"],
                    "fp32_onnx_bytes": os.path.getsize(fp32_path),
                    "check": {
                        "file": os.path.basename(check_file),
                        "file_bytes": os.path.getsize(check_file),
                        "questions": len(examples),
                        "max_f1_drop": max_f1_drop,
                        "fp32": fp32,
                        "int8": int8,
                        "int8_by_batch_size": by_batch,
                        "f1_drop": drop,
                    },
                    "tried": tried,
                }
    best = max(tried, key=lambda t: t["f1"])
    raise AccuracyCheckFailed(
        f"int8 refused: F1 fp32 {fp32['f1']:.2f}, int8 {best['f1']:.2f} (best of {len(tried)} options, worst "
        f"of batch sizes {', '.join(map(str, check_batch_sizes))}; "
        f"drop {fp32['f1'] - best['f1']:.2f} > --max_f1_drop {max_f1_drop:g}) on {len(examples)} questions "
        f"of {os.path.basename(check_file)}; nothing written"
    )
