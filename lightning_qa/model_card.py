"""The model card (`README.md`) of an exported model: what it was trained on, how, how well, how to use it.

Everything comes from the checkpoint (its hyperparameters and metadata) and the run's `config.yaml`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from lightning_qa.checkpoint import CKPT_KEY, SETTINGS_FILE

CARD_FILE = "README.md"

TRAINER_KEYS = ("precision", "max_epochs", "max_steps", "accumulate_grad_batches", "devices", "num_nodes")


def run_config(ckpt_path: str) -> dict[str, Any]:
    """Trainer settings from the `config.yaml` that `lightning_qa fit` saves beside its checkpoints."""
    import yaml

    path = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "config.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return {}
    trainer = config.get("trainer") or {}
    out = {k: trainer[k] for k in TRAINER_KEYS if trainer.get(k) is not None}
    if "precision" not in out and "trainer" in config:
        out["precision"] = "32-true"  # Lightning's default
    if config.get("seed_everything") is not None:
        out["seed"] = config["seed_everything"]
    return out


def _is_hub_name(name: str | None) -> bool:
    """'org/model' or 'model', as opposed to a local path (which means nothing to readers of the card)."""
    return bool(name) and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None and not os.path.exists(name)


def _number(value: Any, digits: int = 2) -> str:
    """Metrics with `digits` decimals, settings as written (2e-05, 0.01), whole floats as integers."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else f"{value:g}"
    return str(value)


def _warmup(hp: dict[str, Any]) -> str:
    if hp.get("warmup_steps"):
        return f"{hp['warmup_steps']} steps, linear"
    if hp.get("warmup_ratio"):
        return f"{hp['warmup_ratio']:.0%} of the steps, linear"
    return "none"


def _teacher(hp: dict[str, Any]) -> str | None:
    """The teacher a model was distilled from, with T and alpha (a local path by its last part)."""
    teacher = hp.get("teacher")
    if not teacher or not hp.get("distill_alpha"):
        return None
    name = teacher if _is_hub_name(teacher) else os.path.basename(os.path.normpath(teacher))
    return f"`{name}` (T {hp.get('distill_temperature')}, alpha {hp.get('distill_alpha')})"


def model_card(
    checkpoint: dict[str, Any],
    name: str,
    training: dict[str, Any] | None = None,
    onnx: bool = False,
    quantization: dict[str, Any] | None = None,
) -> str:
    """A Hugging Face model card (README.md): front matter, training data and settings, validation
    metrics and usage with `QAPredictor` and plain transformers (int8 exports: the accuracy check instead
    of the transformers snippet, which needs the float32 weights)."""
    import yaml

    meta = checkpoint.get(CKPT_KEY, {})
    hp = checkpoint.get("hyper_parameters", {})
    data = checkpoint.get("datamodule_hyper_parameters", {})
    training = training or {}
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    v2 = bool(hp.get("version_2_with_negative") or data.get("version_2_with_negative"))
    base = hp.get("model_name_or_path")
    dataset = data.get("dataset_name")
    model_type = (meta.get("hf_config") or {}).get("model_type", "transformer")

    front: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "question-answering",
        "tags": ["question-answering", "extractive-qa", "lightning_qa", "pytorch-lightning"]
        + (["squad_v2"] if v2 else ["squad"])
        + (["onnx"] if onnx or quantization else [])
        + (["int8"] if quantization else []),
    }
    if _is_hub_name(base):
        front["base_model"] = base
    if _is_hub_name(dataset):
        front["datasets"] = [dataset]
    if metrics:
        front["metrics"] = [m for m in ("exact_match", "f1") if m in metrics]
    if metrics and _is_hub_name(dataset):
        front["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "question-answering", "name": "Extractive Question Answering"},
                        "dataset": {"type": dataset, "name": dataset, "split": "validation"},
                        "metrics": [
                            {"type": m, "value": round(float(metrics[m]), 2), "name": m}
                            for m in ("exact_match", "f1")
                            if m in metrics
                        ],
                    }
                ],
            }
        ]

    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += [f"# {os.path.basename(os.path.normpath(name))}", ""]
    origin = f"`{base}`" if _is_hub_name(base) else "a local model"
    lines += [
        f"An extractive question-answering model ({model_type}, fine-tuned from {origin} with "
        "lightning_qa and PyTorch Lightning): given a question and a context, it "
        "points at the span of the context that answers the question"
        + (", or answers nothing when the context holds no answer (SQuAD 2.0)." if v2 else "."),
        "",
        "## Training data",
        "",
    ]
    if dataset:
        config_name = data.get("dataset_config_name")
        lines.append(
            f"- Hugging Face dataset `{dataset}`" + (f" (config `{config_name}`)" if config_name else "")
        )
    for key, label in (("train_file", "Training file"), ("validation_file", "Validation file")):
        if data.get(key):
            lines.append(f"- {label}: `{os.path.basename(str(data[key]))}`")
    if data.get("validation_split"):
        lines.append(f"- Validation: {data['validation_split']:.0%} of the training articles held out")
    for key, label in (("max_train_samples", "training"), ("max_eval_samples", "validation")):
        if data.get(key):
            lines.append(f"- Limited to the first {data[key]} {label} examples")
    lines.append(f"- Format: SQuAD {'2.0 (unanswerable questions included)' if v2 else 'v1.1'}")

    settings = [
        ("Learning rate", hp.get("learning_rate")),
        ("Weight decay", hp.get("weight_decay")),
        ("Warm-up", _warmup(hp)),
        ("Batch size (per device)", data.get("train_batch_size")),
        ("Gradient accumulation", training.get("accumulate_grad_batches")),
        ("Devices", training.get("world_size") or training.get("devices")),
        ("Nodes", training.get("num_nodes") if training.get("num_nodes", 1) != 1 else None),
        ("Max epochs", training.get("max_epochs")),
        ("Max steps", training.get("max_steps") if training.get("max_steps", -1) != -1 else None),
        ("Epoch of this checkpoint", checkpoint["epoch"] + 1 if "epoch" in checkpoint else None),
        ("Optimizer steps of this checkpoint", checkpoint.get("global_step")),
        ("Precision", training.get("precision")),
        ("max_seq_length", data.get("max_seq_length")),
        ("doc_stride", data.get("doc_stride")),
        ("max_question_length", data.get("max_question_length")),
        ("Seed", training.get("seed")),
        ("Encoder layers kept from the base model", hp.get("keep_layers")),
        ("Distilled from", _teacher(hp)),
    ]
    lines += ["", "## Training settings", "", "| Setting | Value |", "|---|---|"]
    lines += [f"| {k} | {_number(v, digits=0)} |" for k, v in settings if v not in (None, "auto")]

    lines += ["", "## Validation metrics", ""]
    if metrics:
        lines += ["| Metric | Value |", "|---|---|"] + [f"| {k} | {_number(v)} |" for k, v in metrics.items()]
        lines += ["", "Exact match and F1 as the official SQuAD evaluation script computes them."]
    else:
        lines.append("No validation metrics were recorded for this checkpoint.")
    if v2:
        threshold = meta.get("null_score_diff_threshold", 0.0)
        tuned = meta.get("tuned_null_threshold")
        lines += [
            "",
            f"No-answer threshold: {_number(float(threshold))}"
            + (f" (tuned on validation: {_number(float(tuned))})" if tuned is not None else "")
            + f"; stored in `{SETTINGS_FILE}` with the other decoding settings.",
        ]

    max_len = data.get("max_seq_length", 384)
    lines += [
        "",
        "## Usage",
        "",
        "With lightning_qa (`pip install lightning_qa`): long contexts in overlapping windows, the decoding "
        f"settings of `{SETTINGS_FILE}`"
        + (", the no-answer threshold" if v2 else "")
        + ", character offsets into the context:",
        "",
        "```python",
        "from lightning_qa.predictor import QAPredictor",
        "",
        f"qa = QAPredictor({json.dumps(name)})",
        'print(qa(question="Who opened the café?", context="Zoë opened the Café Lumière in 1887."))',
        "```",
    ]
    if quantization:
        lines += ["", *_int8_section(quantization)]
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "With plain transformers (one window, best start and end; no long-context or no-answer handling):",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModelForQuestionAnswering, AutoTokenizer",
        "",
        f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(name)})",
        f"model = AutoModelForQuestionAnswering.from_pretrained({json.dumps(name)})",
        'question, context = "Who opened the café?", "Zoë opened the Café Lumière in 1887."',
        'inputs = tokenizer(question, context, truncation="only_second", max_length='
        f'{max_len}, return_tensors="pt")',
        "with torch.no_grad():",
        "    out = model(**inputs)",
        "context_mask = torch.tensor([s != 1 for s in inputs.sequence_ids(0)])  # only context tokens",
        'start_logits = out.start_logits[0].masked_fill(context_mask, -float("inf"))',
        'end_logits = out.end_logits[0].masked_fill(context_mask, -float("inf"))',
        "start = int(start_logits.argmax())",
        "end = start + int(end_logits[start:].argmax())",
        "print(tokenizer.decode(inputs.input_ids[0, start : end + 1]))",
        "```",
    ]
    if onnx:
        lines += [
            "",
            'With onnxruntime (`pip install "lightning_qa[onnx]"`; `model.onnx` takes '
            "int64 `input_ids`/`attention_mask` with dynamic batch and sequence, returns start/end logits):",
            "",
            "```python",
            "from lightning_qa.onnx_export import OnnxQAModel",
            "from lightning_qa.predictor import QAPredictor",
            "",
            f"qa = QAPredictor({json.dumps(name)}, model=OnnxQAModel({json.dumps(name)}))",
            "```",
        ]
    return "\n".join(lines) + "\n"


def _int8_section(q: dict[str, Any]) -> list[str]:
    """What an int8 export is, how it was made and the accuracy check that accepted it."""
    check = q["check"]
    lines = [
        "## int8 (accuracy-checked)",
        "",
        f"`{q['file']}` holds the int8 model ({q['bytes'] / 1e6:.1f} MB; float32 ONNX "
        f"{q['fp32_onnx_bytes'] / 1e6:.1f} MB), made by {q['library']} `{q['method']}`; "
        f'`QAPredictor` runs it with onnxruntime (`pip install "lightning_qa[onnx]"`). There are no float32 '
        "weights in this directory.",
        "",
        "| Setting | Value |",
        "|---|---|",
        f"| Quantized op types | {', '.join(q['op_types'])} |",
        f"| Per-channel weights | {q['per_channel']} |",
        f"| Reduced range (7-bit) | {q['reduce_range']} |",
        f"| Kept in float32 | {', '.join(q['kept_float32']) or 'nothing'} |",
        "",
        f"Accuracy check: {check['questions']} questions of `{check['file']}` ({check['file_bytes']:,} bytes), "
        f"official SQuAD scores, limit {check['max_f1_drop']:g} F1 point(s) of drop:",
        "",
        "| Model | Exact match | F1 |",
        "|---|---|---|",
        f"| float32 | {check['fp32']['exact_match']:.2f} | {check['fp32']['f1']:.2f} |",
        f"| int8 | {check['int8']['exact_match']:.2f} | {check['int8']['f1']:.2f} |",
    ]
    by_batch = check.get("int8_by_batch_size", {})  # exports before the per-batch check have none
    lines += [
        f"| int8, batch {b} windows | {s['exact_match']:.2f} | {s['f1']:.2f} |" for b, s in by_batch.items()
    ]
    if by_batch:
        lines += [
            "",
            "int8 activations are quantized per batch, so its answers depend on which windows share a forward "
            "pass: the check scores each batch size above and judges the worst (the `int8` row).",
        ]
    lines += [
        "",
        "Options tried, in the fixed fallback order (accepted: the last):",
        "",
        "| Kept in float32 | F1 | F1 drop | Size MB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {', '.join(t['kept_float32']) or 'nothing'} | {t['f1']:.2f} | {t['f1_drop']:.2f} | "
        f"{t['bytes'] / 1e6:.1f} |"
        for t in q["tried"]
    ]
    return lines
