"""From a Lightning checkpoint to a plain Hugging Face model directory, offline and atomically."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from lightning_qa import checkpoint as ckpt_io
from lightning_qa.errors import fail, first_line, reported
from lightning_qa.model_card import CARD_FILE, model_card, run_config
from lightning_qa.quantize import DEFAULT_CHECK_SAMPLES, DEFAULT_MAX_F1_DROP, QUANTIZE

SETTINGS_FILE = ckpt_io.SETTINGS_FILE


def export_checkpoint(
    ckpt_path: str,
    out_dir: str,
    *,
    onnx: bool = False,
    repo_id: str | None = None,
    training: dict[str, Any] | None = None,
    quantize: str | None = None,
    check_file: str | None = None,
    check_samples: int = DEFAULT_CHECK_SAMPLES,
    max_f1_drop: float = DEFAULT_MAX_F1_DROP,
    per_channel: bool = True,
    reduce_range: bool = False,
) -> str:
    """Write `save_pretrained` model (safetensors) + tokenizer + the model's settings (`lightning_qa.json`,
    see `checkpoint.settings`) + a model card to `out_dir`, replacing it atomically.

    Args:
        ckpt_path: A checkpoint written by `lightning_qa fit`.
        out_dir: The model directory to write.
        onnx: Also write `model.onnx`, checked against the PyTorch logits (needs the `onnx` extra); ignored
            with `quantize` (the directory then holds the int8 model only).
        repo_id: The hub repository the folder is meant for (used in the model card's usage snippet).
        training: Run settings known to the caller (precision, max_epochs, max_steps, ...); by default
            read from the `config.yaml` that `lightning_qa fit` saves next to its checkpoints.
        quantize: "int8": write `model_int8.onnx` (ONNX Runtime dynamic quantization, see `quantize.py`)
            instead of the float32 weights, accepted only after the accuracy check below; the directory then
            loads as int8 in `QAPredictor`, `predict` and `serve` with no option.
        check_file: SQuAD JSON / JSON Lines with answers for the check (default: the run's validation file,
            when the checkpoint names one that exists here).
        check_samples: Questions of `check_file` scored (its first ones).
        max_f1_drop: Largest F1 loss (points) of int8 against float32 accepted; beyond it nothing is written
            and `AccuracyCheckFailed` says both F1 values.
        per_channel: int8 weights with one scale per output channel (more accurate) instead of per tensor.
        reduce_range: 7-bit weights, for CPUs without VNNI (AVX2 only), where 8-bit products can saturate.
    """
    if quantize not in (None, *QUANTIZE):
        raise ValueError(f"--quantize must be one of {list(QUANTIZE)}, not {quantize!r}")
    checkpoint = ckpt_io.load_checkpoint(ckpt_path)
    settings = ckpt_io.settings(checkpoint, ckpt_path)
    if quantize:
        check_file = check_file or _validation_file(checkpoint)
        if not check_file:
            raise ValueError(
                "--quantize int8 needs --check_file (SQuAD data with answers): the checkpoint names no local "
                "validation file to check the int8 model's accuracy on"
            )
        if not os.path.isfile(check_file):
            raise FileNotFoundError(f"{check_file}: check file not found")
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = ckpt_io.new_directory(parent, ".hf_model-")
    try:
        ckpt_io.write_config_and_tokenizer(checkpoint, tmp, ckpt_path)
        model = ckpt_io.build_model(checkpoint, tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        if onnx and not quantize:
            from lightning_qa.onnx_export import export_onnx
            from lightning_qa.tokenization import load_tokenizer

            settings["onnx"] = export_onnx(model, load_tokenizer(tmp), tmp)
        ckpt_io.write_settings(tmp, settings)
        if quantize:
            from lightning_qa.quantize import quantize_checked
            from lightning_qa.tokenization import load_tokenizer

            settings["quantization"] = quantize_checked(
                model,
                load_tokenizer(tmp),
                tmp,
                check_file,
                check_samples,
                max_f1_drop,
                per_channel,
                reduce_range,
            )
            os.remove(os.path.join(tmp, "model.safetensors"))  # the directory is the int8 model
            ckpt_io.write_settings(tmp, settings)
        if training is None:
            training = run_config(ckpt_path)
        card = model_card(
            checkpoint,
            name=repo_id or out_dir,
            training=training,
            onnx=onnx,
            quantization=settings.get("quantization"),
        )
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            f.write(card)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ckpt_io.swap_in(tmp, out_dir)
    return out_dir


def _validation_file(checkpoint: dict[str, Any]) -> str | None:
    """The run's validation file, when the checkpoint names one that exists on this machine."""
    path = checkpoint.get("datamodule_hyper_parameters", {}).get("validation_file")
    return path if path and os.path.isfile(path) else None


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
        help="Also write model.onnx (dynamic batch and sequence), checked against the PyTorch logits (with "
        "--quantize int8 the directory holds the int8 model_int8.onnx only)",
    )
    parser.add_argument(
        "--quantize",
        type=str | None,
        default=None,
        help="int8: write model_int8.onnx (ONNX Runtime dynamic quantization) instead of the float32 weights, "
        "accepted only if its F1 on --check_file is within --max_f1_drop of float32's",
    )
    parser.add_argument(
        "--check_file",
        type=str | None,
        default=None,
        help="SQuAD JSON/JSONL with answers for the int8 accuracy check (default: the run's validation file)",
    )
    parser.add_argument(
        "--check_samples", type=int, default=DEFAULT_CHECK_SAMPLES, help="Questions of --check_file scored"
    )
    parser.add_argument(
        "--max_f1_drop",
        type=float,
        default=DEFAULT_MAX_F1_DROP,
        help="Largest F1 loss (points) of int8 against float32 accepted; beyond it the export is refused",
    )
    parser.add_argument(
        "--per_channel", type=bool, default=True, help="int8 weights with one scale per output channel"
    )
    parser.add_argument(
        "--reduce_range", type=bool, default=False, help="7-bit weights, for CPUs without VNNI (AVX2 only)"
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
    with reported((MissingExtraError, ValueError, OSError)):
        out = export_checkpoint(
            cfg.ckpt,
            cfg.output_dir,
            onnx=cfg.onnx,
            repo_id=cfg.push_to_hub,
            quantize=cfg.quantize,
            check_file=cfg.check_file,
            check_samples=cfg.check_samples,
            max_f1_drop=cfg.max_f1_drop,
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
        )
    print(f"Exported {cfg.ckpt} to {out}")
    with open(os.path.join(out, SETTINGS_FILE), encoding="utf-8") as f:
        stored = json.load(f)
    onnx_info, quantization = stored.get("onnx"), stored.get("quantization")
    if quantization:
        check = quantization["check"]
        print(
            f"int8: {os.path.join(out, quantization['file'])} ({quantization['bytes'] / 1e6:.1f} MB, float32 "
            f"ONNX {quantization['fp32_onnx_bytes'] / 1e6:.1f} MB); F1 fp32 {check['fp32']['f1']:.2f}, int8 "
            f"{check['int8']['f1']:.2f} on {check['questions']} questions of {check['file']}; kept in float32: "
            f"{', '.join(quantization['kept_float32']) or 'nothing'}"
        )
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
            fail(f"exported to {out}, but pushing to {cfg.push_to_hub} failed: {first_line(e)}")
        print(f"Pushed {out} to {url}")
    return out
