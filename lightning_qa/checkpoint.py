"""The one reader and writer of what travels with a model: checkpoint metadata and `lightning_qa.json`.

A checkpoint of `lightning_qa fit` carries, besides Lightning's own content, the Hugging Face config and
tokenizer files (so it rebuilds offline) and the no-answer threshold; the model's and the data module's
hyperparameters are Lightning's. `settings` turns that into the settings that shape features and answers;
an export writes the same dict as `lightning_qa.json`, which `read_settings` reads back. `validate`,
`test`, `predict`, `QAPredictor` and `serve` all start from these, unless the caller overrides one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import torch

CKPT_KEY = "lightning_qa"
SETTINGS_FILE = "lightning_qa.json"
# every setting that shapes features or answers, with its default for checkpoints that predate it
SETTINGS = {
    "max_seq_length": 384,
    "doc_stride": 128,
    "max_question_length": 64,
    "n_best_size": 20,
    "max_answer_length": 30,
    "decoding": "logits",
    "align_to_words": False,
    "version_2_with_negative": False,
    "null_score_diff_threshold": 0.0,
}
DATA_SETTINGS = ("max_seq_length", "doc_stride", "max_question_length", "version_2_with_negative")
MODEL_SETTINGS = ("n_best_size", "max_answer_length", "decoding")


class NotOurCheckpoint(ValueError):
    pass


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a checkpoint without executing pickled code (`weights_only`), memory-mapped when possible."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # old zip layouts cannot be memory-mapped
        return torch.load(path, map_location="cpu", weights_only=True)


def metadata(checkpoint: dict[str, Any], path: str = "checkpoint") -> dict[str, Any]:
    """What `QAModel.on_save_checkpoint` stored: config, tokenizer files, threshold, metrics."""
    if CKPT_KEY not in checkpoint:
        raise NotOurCheckpoint(
            f"{path}: not a lightning_qa checkpoint (no model config and tokenizer stored in it)"
        )
    return checkpoint[CKPT_KEY]


def settings(checkpoint: dict[str, Any], path: str = "checkpoint") -> dict[str, Any]:
    """The settings of a checkpoint (see `SETTINGS`), plus "tuned_null_threshold" and "metrics".

    The answer rule is the one the model was validated with: the logits rule on raw token spans, unless
    it was trained with `--model.decoding pipeline` (then the old pipeline's, aligned to words).
    """
    meta = metadata(checkpoint, path)
    model = checkpoint.get("hyper_parameters", {})
    data = checkpoint.get("datamodule_hyper_parameters", {})
    out = dict(SETTINGS)
    out.update({k: data[k] for k in DATA_SETTINGS if k in data})
    out.update({k: model[k] for k in MODEL_SETTINGS if k in model})
    out["align_to_words"] = out["decoding"] == "pipeline"
    out["null_score_diff_threshold"] = float(meta.get("null_score_diff_threshold") or 0.0)
    out["tuned_null_threshold"] = meta.get("tuned_null_threshold")
    out["metrics"] = meta.get("metrics", {})
    return out


def write_settings(out_dir: str, values: dict[str, Any]) -> None:
    with open(os.path.join(out_dir, SETTINGS_FILE), "w", encoding="utf-8") as f:
        json.dump(values, f, indent=2)


def read_settings(path: str) -> dict[str, Any]:
    """`lightning_qa.json` of a model directory (or of a hub repository, when it can be had), else {}:
    a model from elsewhere has no stored settings."""
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
        stored = json.load(f)
    if "decoding" not in stored:  # exports that predate the stored rule were validated with the logits rule
        stored.setdefault("decoding", "logits")
        stored.setdefault("align_to_words", False)
    return stored


def model_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The Hugging Face model's weights (the LightningModule keeps it as `self.model`)."""
    return {
        k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")
    }


def build_model(checkpoint: dict[str, Any], model_dir: str, trust_remote_code: bool = False) -> Any:
    """The Hugging Face QA model of a checkpoint: architecture from `model_dir` (`materialize`), weights
    from the checkpoint."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForQuestionAnswering.from_config(config, trust_remote_code=trust_remote_code)
    model.load_state_dict(model_state(checkpoint), strict=True)
    return model


def write_config_and_tokenizer(checkpoint: dict[str, Any], out_dir: str, path: str = "checkpoint") -> None:
    """Write the stored model config and tokenizer files (no weights) into `out_dir`."""
    meta = metadata(checkpoint, path)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(meta["hf_config"], f, indent=2)
    for name, content in meta["tokenizer_files"].items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(content)


def tokenizer_files(tokenizer: Any) -> dict[str, bytes]:
    """The tokenizer's saved files, to store in a checkpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {
            name: open(os.path.join(tmp, name), "rb").read()
            for name in os.listdir(tmp)
            if os.path.isfile(os.path.join(tmp, name))
        }


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
        os.makedirs(cache_dir, exist_ok=True)
        tmp = new_directory(cache_dir, ".ckpt-")
        try:
            write_config_and_tokenizer(load_checkpoint(ckpt_path), tmp, ckpt_path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        swap_in(tmp, out)
    return out


def new_directory(parent: str, prefix: str) -> str:
    """A fresh directory in `parent` with the permissions the user's umask gives any new directory
    (`tempfile.mkdtemp` makes it 0700, which other users and containers cannot read)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
    return path


def swap_in(tmp: str, out: str) -> None:
    """Replace `out` by the finished `tmp` directory, so readers never see a half-written one."""
    old = None
    if os.path.exists(out):
        old = f"{out}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)
