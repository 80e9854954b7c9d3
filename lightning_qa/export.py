"""From a Lightning checkpoint to a plain Hugging Face model directory, offline and atomically."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

from lightning_qa.model import CKPT_KEY

SETTINGS_FILE = "lightning_qa.json"


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


def export_checkpoint(ckpt_path: str, out_dir: str) -> str:
    """Write `save_pretrained` model (safetensors) + tokenizer + our decoding settings to `out_dir`."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    checkpoint = load_checkpoint(ckpt_path)
    meta = _meta(checkpoint, ckpt_path)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".hf_model-", dir=parent)
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
        "version_2_with_negative": hparams.get("version_2_with_negative", False),
        "n_best_size": hparams.get("n_best_size", 20),
        "max_answer_length": hparams.get("max_answer_length", 30),
        "metrics": meta.get("metrics", {}),
    }
    data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
    for key in ("max_seq_length", "doc_stride", "max_question_length"):
        if key in data_hparams:
            settings[key] = data_hparams[key]
    with open(os.path.join(tmp, SETTINGS_FILE), "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=2)
    _swap_in(tmp, out_dir)
    return out_dir


class ExportBestModel(Callback):
    """At the end of `fit`, export the best checkpoint (else the last) to `<run dir>/hf_model`."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        cb = trainer.checkpoint_callback
        ckpt = cb and (cb.best_model_path or cb.last_model_path)
        if trainer.is_global_zero and ckpt and os.path.isfile(ckpt):
            out = export_checkpoint(ckpt, os.path.join(os.path.dirname(ckpt), "hf_model"))
            rank_zero_info(f"Exported {os.path.basename(ckpt)} in Hugging Face format to {out}")
        trainer.strategy.barrier("lightning_qa_export")


def main(args: list[str] | None = None) -> str:
    """`lightning_qa export CKPT OUTPUT_DIR`: a checkpoint as a Hugging Face model directory."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(
        prog="lightning_qa export", description="Write a checkpoint as a Hugging Face model directory."
    )
    parser.add_argument("ckpt", type=str, help="Lightning checkpoint (.ckpt) written by lightning_qa fit")
    parser.add_argument("output_dir", type=str, help="Directory to write (replaced atomically if it exists)")
    cfg = parser.parse_args(args)
    if not os.path.isfile(cfg.ckpt):
        parser.error(f"{cfg.ckpt}: checkpoint file not found")
    out = export_checkpoint(cfg.ckpt, cfg.output_dir)
    print(f"Exported {cfg.ckpt} to {out}")
    return out
