"""From a Lightning checkpoint to a plain Hugging Face model directory, offline and atomically."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_qa.model import CKPT_KEY

SETTINGS_FILE = "lightning_qa.json"
CARD_FILE = "README.md"


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a checkpoint without executing pickled code (`weights_only`), memory-mapped when possible."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # old zip layouts cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def _meta(checkpoint: dict[str, Any], path: str) -> dict[str, Any]:
    meta = checkpoint.get(CKPT_KEY)
    if meta is None:
        raise ValueError(
            f"{path}: not a lightning_qa checkpoint (no model config and tokenizer stored in it)"
        )
    return meta


def write_config_and_tokenizer(checkpoint: dict[str, Any], out_dir: str, path: str = "checkpoint") -> None:
    """Write the stored model config and tokenizer files (no weights) into `out_dir`."""
    meta = _meta(checkpoint, path)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(meta["hf_config"], f, indent=2)
    for name, content in meta["tokenizer_files"].items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(content)


def materialize(ckpt_path: str, cache_dir: str | None = None) -> str:
    """A directory with the checkpoint's model config and tokenizer, so the model can be rebuilt
    (`pretrained=False`) without the original base model; the weights then come from the checkpoint."""
    stat = os.stat(ckpt_path)
    key = hashlib.sha256(
        f"{os.path.abspath(ckpt_path)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "lightning_qa", "checkpoints")
    out = os.path.join(cache_dir, key)
    if not os.path.exists(os.path.join(out, "config.json")):
        tmp = tempfile.mkdtemp(dir=os.path.dirname(out) if os.path.isdir(os.path.dirname(out)) else None)
        write_config_and_tokenizer(load_checkpoint(ckpt_path), tmp, ckpt_path)
        os.makedirs(cache_dir, exist_ok=True)
        _swap_in(tmp, out)
    return out


def _swap_in(tmp: str, out: str) -> None:
    """Replace `out` by the finished `tmp` directory, so readers never see a half-written one."""
    old = None
    if os.path.exists(out):
        old = f"{out}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def export_checkpoint(
    ckpt_path: str,
    out_dir: str,
    *,
    onnx: bool = False,
    repo_id: str | None = None,
    training: dict[str, Any] | None = None,
) -> str:
    """Write `save_pretrained` model (safetensors) + tokenizer + our decoding settings + a model card to
    `out_dir`, replacing it atomically.

    Args:
        ckpt_path: A checkpoint written by `lightning_qa fit`.
        out_dir: The model directory to write.
        onnx: Also write `model.onnx`, checked against the PyTorch logits (needs the `onnx` extra).
        repo_id: The hub repository the folder is meant for (used in the model card's usage snippet).
        training: Run settings known to the caller (precision, max_epochs, max_steps, ...); by default
            read from the `config.yaml` that `lightning_qa fit` saves next to its checkpoints.
    """
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    checkpoint = load_checkpoint(ckpt_path)
    meta = _meta(checkpoint, ckpt_path)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".hf_model-", dir=parent)
    try:
        write_config_and_tokenizer(checkpoint, tmp, ckpt_path)
        model = AutoModelForQuestionAnswering.from_config(AutoConfig.from_pretrained(tmp))
        state = {
            k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")
        }
        model.load_state_dict(state, strict=True)
        model.save_pretrained(tmp, safe_serialization=True)
        hparams = checkpoint.get("hyper_parameters", {})
        settings = {
            "null_score_diff_threshold": meta.get("null_score_diff_threshold", 0.0),
            "tuned_null_threshold": meta.get("tuned_null_threshold"),
            "version_2_with_negative": hparams.get("version_2_with_negative", False),
            "n_best_size": hparams.get("n_best_size", 20),
            "max_answer_length": hparams.get("max_answer_length", 30),
            "metrics": meta.get("metrics", {}),
        }
        data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
        for key in ("max_seq_length", "doc_stride", "max_question_length"):
            if key in data_hparams:
                settings[key] = data_hparams[key]
        if onnx:
            from lightning_qa.onnx_export import export_onnx

            settings["onnx"] = export_onnx(model, AutoTokenizer.from_pretrained(tmp), tmp)
        with open(os.path.join(tmp, SETTINGS_FILE), "w", encoding="utf-8") as f:
            json.dump(settings, f, indent=2)
        if training is None:
            training = run_config(ckpt_path)
        card = model_card(checkpoint, name=repo_id or out_dir, training=training, onnx=onnx)
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            f.write(card)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap_in(tmp, out_dir)
    return out_dir


# -- model card ---------------------------------------------------------------------------------------
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


def model_card(
    checkpoint: dict[str, Any], name: str, training: dict[str, Any] | None = None, onnx: bool = False
) -> str:
    """A Hugging Face model card (README.md): front matter, training data and settings, validation
    metrics and usage with `QAPredictor` and plain transformers."""
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
        + (["onnx"] if onnx else []),
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


# -- hub ----------------------------------------------------------------------------------------------
def push_to_hub(folder: str, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """Create `repo_id` on the Hugging Face hub if needed and upload `folder` to it; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload lightning_qa model",
    )
    return f"https://huggingface.co/{repo_id}"


class ExportBestModel(Callback):
    """At the end of `fit`, export the best checkpoint (else the last) to `<run dir>/hf_model`.

    Args:
        push_to_hub: Also upload the exported folder to this Hugging Face hub repository ("user/name"),
            created if needed (needs a login: `hf auth login` or HF_TOKEN). A failed upload is reported and
            leaves the local export in place.
        onnx: Also export `model.onnx`, checked against the PyTorch logits (needs the `onnx` extra).
    """

    def __init__(self, push_to_hub: str | None = None, onnx: bool = False) -> None:
        if onnx:  # fail at start-up, not after training
            from lightning_qa.onnx_export import require

            require("onnx", "onnxscript", "onnxruntime")
        self.push_to_hub = push_to_hub
        self.onnx = onnx

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        paths = [cb.best_model_path for cb in trainer.checkpoint_callbacks if cb.monitor]  # best by val/f1
        paths += [
            cb.last_model_path or cb.best_model_path for cb in trainer.checkpoint_callbacks
        ]  # else latest
        ckpt = next((p for p in paths if p), None)
        if trainer.is_global_zero and ckpt and os.path.isfile(ckpt):
            training = {
                "precision": str(trainer.precision),
                "max_epochs": trainer.max_epochs,
                "max_steps": trainer.max_steps,
                "accumulate_grad_batches": trainer.accumulate_grad_batches,
                "world_size": trainer.world_size,
                **{k: v for k, v in run_config(ckpt).items() if k == "seed"},
            }
            out = export_checkpoint(
                ckpt,
                os.path.join(os.path.dirname(ckpt), "hf_model"),
                onnx=self.onnx,
                repo_id=self.push_to_hub,
                training=training,
            )
            rank_zero_info(f"Exported {os.path.basename(ckpt)} in Hugging Face format to {out}")
            if self.push_to_hub:
                try:
                    url = push_to_hub(out, self.push_to_hub)
                    rank_zero_info(f"Pushed {out} to {url}")
                except Exception as e:  # the run's result is safe on disk: report, do not fail the run
                    rank_zero_warn(
                        f"Pushing {out} to the hub repository {self.push_to_hub} failed: {e}. Retry with "
                        f"`lightning_qa export {ckpt} {out} --push_to_hub {self.push_to_hub}`."
                    )
        trainer.strategy.barrier("lightning_qa_export")


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def _fail(message: str) -> None:
    print(f"lightning_qa: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(args: list[str] | None = None) -> str:
    """`lightning_qa export CKPT OUTPUT_DIR`: a checkpoint as a Hugging Face model directory."""
    import transformers
    from jsonargparse import ArgumentParser

    from lightning_qa.onnx_export import MissingExtraError

    transformers.utils.logging.disable_progress_bar()

    parser = ArgumentParser(
        prog="lightning_qa export",
        description="Write a checkpoint as a Hugging Face model directory (safetensors, tokenizer, decoding "
        "settings in lightning_qa.json, model card README.md).",
    )
    parser.add_argument("ckpt", type=str, help="Lightning checkpoint (.ckpt) written by lightning_qa fit")
    parser.add_argument("output_dir", type=str, help="Directory to write (replaced atomically if it exists)")
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="Also write model.onnx (dynamic batch and sequence), checked against the PyTorch logits",
    )
    parser.add_argument(
        "--push_to_hub",
        type=str | None,
        default=None,
        help="Upload the directory to this Hugging Face hub repository (user/name; created if needed)",
    )
    parser.add_argument("--private", action="store_true", help="Create the hub repository as private")
    cfg = parser.parse_args(args)
    if not os.path.isfile(cfg.ckpt):
        parser.error(f"{cfg.ckpt}: checkpoint file not found")
    try:
        out = export_checkpoint(cfg.ckpt, cfg.output_dir, onnx=cfg.onnx, repo_id=cfg.push_to_hub)
    except (MissingExtraError, ValueError, OSError) as e:
        _fail(_first_line(e))
    print(f"Exported {cfg.ckpt} to {out}")
    with open(os.path.join(out, SETTINGS_FILE), encoding="utf-8") as f:
        onnx_info = json.load(f).get("onnx")
    if onnx_info:
        print(
            f"ONNX: {os.path.join(out, onnx_info['file'])} (opset {onnx_info['opset']}); max abs difference "
            f"from PyTorch logits on {len(onnx_info['checked_shapes'])} sample batches: "
            f"{onnx_info['max_abs_diff']:.3g}"
        )
    if cfg.push_to_hub:
        try:
            url = push_to_hub(out, cfg.push_to_hub, private=cfg.private or None)
        except Exception as e:  # no login, no network, no permission: one line, the export stays
            _fail(f"exported to {out}, but pushing to {cfg.push_to_hub} failed: {_first_line(e)}")
        print(f"Pushed {out} to {url}")
    return out
