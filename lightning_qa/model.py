"""QAModel: a Hugging Face `AutoModelForQuestionAnswering` trained and evaluated with Lightning.

Evaluation needs nothing from the data module: every batch carries its windows' offsets, example ids,
contexts and gold answers, and each example's windows arrive on one device (`ExampleShardSampler`). The
module computes answers and metrics; writing them to files is the callbacks' job (`callbacks.py`).
"""

from __future__ import annotations

import os
import random
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import MeanMetric
from transformers import AutoConfig, AutoModelForQuestionAnswering, get_linear_schedule_with_warmup

from lightning_qa import metrics
from lightning_qa.answers import AnswerRule, decode_outputs, window_candidates
from lightning_qa.checkpoint import CKPT_KEY, read_settings, tokenizer_files
from lightning_qa.distill import check_tokenizers, distill_loss
from lightning_qa.features import TEACHER_LOGITS, model_inputs
from lightning_qa.hardware import warn_if_slow_bf16
from lightning_qa.tokenization import load_tokenizer


class QAModel(LightningModule):
    """Extractive question answering: start/end logits over the context tokens.

    Args:
        model_name_or_path: Hugging Face hub name or local directory of the encoder (and its tokenizer).
        pretrained: Load the weights of `model_name_or_path`; False builds the architecture with fresh
            weights (the CLI uses this when a checkpoint provides the weights).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay, applied to all weights but biases and normalization weights.
        warmup_ratio: Fraction of the training steps with a linear warm-up (ignored if warmup_steps > 0).
        warmup_steps: Number of linear warm-up steps.
        adam_epsilon: AdamW epsilon.
        n_best_size: Start and end candidates per window considered when decoding.
        max_answer_length: Longest answer, in tokens.
        version_2_with_negative: SQuAD 2.0: the answer may be "" (linked to the data module's setting).
        null_score_diff_threshold: Answer "" when null score - best span score exceeds this (SQuAD 2.0).
            None: the threshold tuned on the last complete validation (stored in the checkpoint), else 0.0.
        write_nbest: Also write `nbest_predictions.json` (top answers with text, score, probability and
            character offsets) next to `predictions.json`.
        compile: Compile the encoder's forward with torch.compile.
        nonfinite_loss: On a NaN/inf training loss: "stop" the run (checkpoints so far are kept), "skip"
            the batch, or "ignore" (saves the per-step check, one host-device sync).
        trust_remote_code: Allow models with custom code from the hub.
        decoding: How `predict` ranks answers: "logits" (start + end logit over all windows, the rule
            validation scores) or "pipeline" (the old transformers question-answering pipeline's: per-window
            probabilities, answers with the same text merged, whole words; `score` is then the pipeline's).
            Validation and test always use "logits". Stored with the model: what `QAPredictor` and `serve`
            use for it by default.
        keep_layers: Keep only these encoder layers (e.g. [0, 2, 4]) when building from pretrained weights,
            as DistilBERT was initialised from BERT; the smaller config is what checkpoints and exports
            record. Ignored when the model is rebuilt from a checkpoint (`pretrained` False).
        teacher: A fine-tuned QA model to distill from during `fit` (an `hf_model/` directory, a .ckpt of
            ours or a hub name) with the student's tokenizer. Its logits are computed once before training
            and cached beside the features; it is never part of this module or its checkpoints.
        distill_temperature: Softmax temperature of the distillation term.
        distill_alpha: Weight of the distillation term; the hard-label term gets 1 - alpha (0: no teacher).
        quantize: "int8": `predict`, `validate` and `test` run an int8 version of the model with onnxruntime
            on the CPU (made when the stage starts, from the checkpoint's weights; not accuracy-checked:
            `lightning_qa export --quantize int8` writes a checked one). An int8 export given as
            `model_name_or_path` runs as int8 without this option (and cannot be fine-tuned).
    """

    def __init__(
        self,
        model_name_or_path: str = "distilbert/distilbert-base-uncased",
        pretrained: bool = True,
        learning_rate: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        warmup_steps: int = 0,
        adam_epsilon: float = 1e-8,
        n_best_size: int = 20,
        max_answer_length: int = 30,
        version_2_with_negative: bool = False,
        null_score_diff_threshold: float | None = None,
        write_nbest: bool = False,
        nonfinite_loss: Literal["stop", "skip", "ignore"] = "stop",
        compile: bool = False,
        trust_remote_code: bool = False,
        decoding: Literal["logits", "pipeline"] = "logits",
        keep_layers: list[int] | None = None,
        teacher: str | None = None,
        distill_temperature: float = 2.0,
        distill_alpha: float = 0.5,
        quantize: Literal["int8"] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        AnswerRule(decoding, n_best_size=n_best_size, max_answer_length=max_answer_length)  # checks them now
        if not 0.0 <= distill_alpha <= 1.0 or distill_temperature <= 0:
            raise ValueError(
                f"distill_alpha must be in [0, 1] and distill_temperature > 0, not {distill_alpha} and {distill_temperature}"
            )
        self._int8: Any = None  # the int8 model predict/validate/test run instead of self.model
        stored = read_settings(model_name_or_path) if os.path.isdir(model_name_or_path) else {}
        if stored.get("quantization"):  # an int8 export: no float32 weights to load
            from lightning_qa.quantize import load_int8

            self.model = self._int8 = load_int8(model_name_or_path, stored)
        elif pretrained:
            self.model = AutoModelForQuestionAnswering.from_pretrained(
                model_name_or_path, trust_remote_code=trust_remote_code
            )
            if keep_layers is not None:
                keep_encoder_layers(self.model, keep_layers)
        else:
            config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForQuestionAnswering.from_config(
                config, trust_remote_code=trust_remote_code
            )
        if self._int8 is None:  # from_pretrained returns eval mode; Lightning keeps module modes as found
            self.model.train()
        if compile:
            self.model.compile()  # in place: the state dict keeps its plain keys
        self.tokenizer = load_tokenizer(model_name_or_path, trust_remote_code)  # stored in checkpoints
        self.input_names = model_inputs(self.model, self.tokenizer)
        self._outputs: list[dict[str, Any]] = []
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.last_metrics: dict[str, float] = {}
        self.last_results: list[dict] = []  # the last evaluation's examples, for the callbacks to write
        self.tuned_null_threshold: float | None = None  # best_f1_thresh of the last complete v2 validation

    def forward(self, batch: dict[str, Any]) -> Any:
        """Logits, and the loss when the batch has labels (see `qa_loss`)."""
        run = self.model if self._int8 is None or self.training else self._int8
        out = run(**{k: batch[k] for k in self.input_names if k in batch})
        if "start_positions" in batch:
            out.loss = qa_loss(
                out.start_logits,
                out.end_logits,
                batch["start_positions"],
                batch["end_positions"],
                batch["attention_mask"],
            )
        return out

    @property
    def distilling(self) -> bool:
        return self.hparams.teacher is not None and self.hparams.distill_alpha > 0

    def setup(self, stage: str) -> None:
        """Before `fit` trains: the teacher's logits of every training window, once (`distill.py`)."""
        if stage == "fit" and self._int8 is not None:
            raise ValueError(
                f"{self.hparams.model_name_or_path} is an int8 export: it cannot be fine-tuned (fine-tune the "
                "float32 model, then export it with --quantize int8)"
            )
        if stage != "fit" or not self.distilling:
            return  # alpha 0: no teacher touched, nothing drawn, plain fine-tuning
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "add_teacher_logits"):
            raise ValueError(
                "--model.teacher needs lightning_qa's SquadDataModule (it caches the teacher's logits)"
            )
        check_tokenizers(self.tokenizer, self.hparams.model_name_or_path, self.hparams.teacher)
        datamodule.add_teacher_logits(self.hparams.teacher)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        out = self(batch)
        loss = out.loss
        size = batch["input_ids"].shape[0]
        if self.distilling and TEACHER_LOGITS[0] in batch:
            kl = distill_loss(
                out.start_logits,
                out.end_logits,
                batch[TEACHER_LOGITS[0]],
                batch[TEACHER_LOGITS[1]],
                batch["attention_mask"],
                self.hparams.distill_temperature,
            )
            alpha = self.hparams.distill_alpha
            self.log("train/ce_loss", loss, batch_size=size, sync_dist=True)
            self.log("train/kl_loss", kl, batch_size=size, sync_dist=True)
            loss = alpha * kl + (1 - alpha) * loss
        if self.hparams.nonfinite_loss != "ignore" and self._any_rank_nonfinite(loss):
            if self.hparams.nonfinite_loss == "skip":
                rank_zero_warn(f"non-finite training loss at step {self.global_step}: batch skipped")
                return None  # no backward, no optimizer step, on every rank alike
            raise NonFiniteLossError(
                f"non-finite training loss at step {self.global_step}: run stopped before the weights were "
                "touched; the last good checkpoint is kept (set --model.nonfinite_loss skip to skip such batches)"
            )
        # synced: one scalar all-reduce, so the logged curve is the global batch's, on any number of devices
        self.log("train/loss", loss, prog_bar=True, batch_size=size, sync_dist=True)
        return loss

    def _any_rank_nonfinite(self, loss: torch.Tensor) -> bool:
        """One decision for all ranks: a rank that stopped or skipped alone would deadlock the others."""
        bad = not bool(torch.isfinite(loss))
        return (
            self.trainer.strategy.reduce_boolean_decision(bad, all=False)
            if self.trainer.world_size > 1
            else bad
        )

    # -- evaluation ----------------------------------------------------------------------------------
    @property
    def null_threshold(self) -> float:
        """The user's threshold if given, else the one tuned on validation, else 0.0."""
        if self.hparams.null_score_diff_threshold is not None:
            return self.hparams.null_score_diff_threshold
        return self.tuned_null_threshold if self.tuned_null_threshold is not None else 0.0

    @property
    def eval_rule(self) -> AnswerRule:
        """Validation's and test's rule: SQuAD logits over raw token spans."""
        hp = self.hparams
        return AnswerRule(
            "logits",
            n_best_size=hp.n_best_size,
            max_answer_length=hp.max_answer_length,
            handle_impossible_answer=hp.version_2_with_negative,
            null_score_diff_threshold=self.null_threshold,
            keep_nbest=hp.write_nbest,
        )

    @property
    def predict_rule(self) -> AnswerRule:
        """`predict`'s rule: `decoding` (the pipeline rule aligns answers to whole words, as it did)."""
        hp = self.hparams
        return AnswerRule(
            hp.decoding,
            n_best_size=hp.n_best_size,
            max_answer_length=hp.max_answer_length,
            align_to_words=hp.decoding == "pipeline",
            handle_impossible_answer=hp.version_2_with_negative,
            null_score_diff_threshold=self.null_threshold,
        )

    def _step_output(self, batch: dict[str, Any], out: Any, rule: AnswerRule) -> dict[str, Any]:
        """A batch reduced to its windows' best spans on the device; only these (small) are kept."""
        cands = window_candidates(batch, out.start_logits, out.end_logits, rule)
        return {
            **{k: v.cpu() for k, v in cands.items()},
            "example_index": batch["example_index"].cpu(),
            "feature_index": batch["feature_index"].cpu(),
            **{k: batch[k] for k in ("example_id", "context", "answer_texts")},
        }

    def _eval_step(self, batch: dict[str, Any], prefix: str) -> None:
        out = self(batch)
        if getattr(out, "loss", None) is not None:
            # a metric object syncs sums and counts, so the mean is over all windows whatever the sharding
            loss_metric = self.val_loss if prefix == "val" else self.test_loss
            loss_metric.update(out.loss.detach().float(), weight=batch["input_ids"].shape[0])
            self.log(f"{prefix}/loss", loss_metric, on_step=False, on_epoch=True)
        self._outputs.append(self._step_output(batch, out, self.eval_rule))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def _score(self, prefix: str) -> None:
        """Decode this rank's examples, gather every rank's, score them once, log the same on every rank."""
        self.last_results = gather_results(decode_outputs(self._outputs, self.eval_rule))
        self._outputs = []
        if not self.last_results:
            return
        self.last_metrics = metrics.answer_metrics(self.last_results, self.hparams.version_2_with_negative)
        for k, v in self.last_metrics.items():
            self.log(
                f"{prefix}/{k}", v, prog_bar=k in ("exact_match", "f1"), sync_dist=False, rank_zero_only=False
            )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._step_output(batch, self(batch), self.predict_rule)

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        groups = param_groups(self.model, self.hparams.weight_decay)
        # fused AdamW is fastest, but Lightning's mixed precision refuses to clip gradients with it
        fused = not self.trainer.gradient_clip_val
        optimizer = torch.optim.AdamW(
            groups, lr=self.hparams.learning_rate, eps=self.hparams.adam_epsilon, fused=fused or None
        )
        total = self.trainer.estimated_stepping_batches
        warmup = self.hparams.warmup_steps or int(self.hparams.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _use_int8(self) -> None:
        """`--model.quantize int8`: quantize the weights as loaded (a checkpoint's are loaded by now)."""
        if self.hparams.quantize and self._int8 is None:
            from lightning_qa.quantize import int8_model

            self._int8 = int8_model(self.model, self.tokenizer)

    def on_predict_start(self) -> None:
        self._use_int8()

    def on_test_start(self) -> None:
        self._use_int8()

    def on_validation_start(self) -> None:
        if self.trainer.state.fn == "validate":  # not fit's validation: training goes on in float32
            self._use_int8()

    def on_fit_start(self) -> None:
        if str(self.trainer.precision).startswith("bf16"):
            warn_if_slow_bf16(torch.bfloat16, self.device)
        if str(self.trainer.precision) in ("bf16-true", "16-true"):
            rank_zero_warn(
                f"precision={self.trainer.precision} keeps weights in half precision: AdamW updates of about "
                f"lr={self.hparams.learning_rate} x weight are below half a bf16 step for typical weights and are "
                "mostly lost. Prefer bf16-mixed (fp32 master weights) for fine-tuning."
            )

    # -- self-contained checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the model config and tokenizer files, so a checkpoint alone rebuilds the model offline
        (`checkpoint.py` reads them back, with the hyperparameters, as the model's settings)."""
        checkpoint[CKPT_KEY] = {
            "hf_config": self.model.config.to_dict(),
            "tokenizer_files": tokenizer_files(self.tokenizer),
            "null_score_diff_threshold": self.null_threshold,
            "tuned_null_threshold": self.tuned_null_threshold,
            "metrics": self.last_metrics,
            "rng": rng_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(CKPT_KEY, {})
        self.tuned_null_threshold = meta.get("tuned_null_threshold")
        self.last_metrics = meta.get("metrics", {})
        if "rng" in meta and self._trainer is not None and self.trainer.state.fn == "fit":
            set_rng_states(meta["rng"])  # a resumed run draws the same dropout masks as an uninterrupted one


class NonFiniteLossError(RuntimeError):
    pass


def keep_encoder_layers(model: torch.nn.Module, keep: list[int]) -> None:
    """Keep only encoder layers `keep` (increasing indices), in place, and record it in the config.

    The layer list is the one `ModuleList` named `layer`/`layers` with `num_hidden_layers` entries: BERT,
    RoBERTa, ELECTRA (`encoder.layer`), DistilBERT (`transformer.layer`) and their kin.
    """
    n = model.config.num_hidden_layers
    if not keep or any(not 0 <= i < n for i in keep) or list(keep) != sorted(set(keep)):
        raise ValueError(
            f"keep_layers {list(keep)}: give increasing, distinct indices of the model's {n} encoder layers (0 to {n - 1})"
        )
    found = [
        name
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.ModuleList)
        and len(m) == n
        and name.rsplit(".", 1)[-1] in ("layer", "layers")
    ]
    if len(found) != 1:
        raise ValueError(f"keep_layers: cannot find the encoder layers of {type(model).__name__}")
    parent_name, _, attr = found[0].rpartition(".")
    parent = model.get_submodule(parent_name)
    layers = getattr(parent, attr)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    model.config.num_hidden_layers = len(keep)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay for every parameter but biases and normalization weights.

    Decided by parameter name and owning module, as transformers' Trainer does, never by shape: under
    FSDP (`use_orig_params=True`) every parameter is a flat 1-D shard, and a shape rule would silently
    drop weight decay everywhere.
    """
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()  # LayerNorm, RMSNorm, T5LayerNorm, ...
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                (no_decay if is_norm or name == "bias" else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def rng_states() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as plain types and tensors (loadable with weights_only)."""
    np_state = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in states["python"]))
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def qa_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Mean of start and end cross-entropy over the real tokens of each window, in float32.

    Transformers' built-in QA loss also spreads probability over padding positions, so with dynamic
    padding a window's loss would depend on the batch it lands in (and differ between 1 and N devices).
    """
    pad = attention_mask == 0
    start = start_logits.float().masked_fill(pad, torch.finfo(torch.float32).min)
    end = end_logits.float().masked_fill(pad, torch.finfo(torch.float32).min)
    return (F.cross_entropy(start, start_positions) + F.cross_entropy(end, end_positions)) / 2


def gather_results(items: list[dict]) -> list[dict]:
    """All ranks' decoded examples, each once, identical on every rank; a no-op on one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    everything: list[list | None] = [None] * dist.get_world_size()
    dist.all_gather_object(everything, items)
    seen, out = set(), []
    for part in everything:
        for item in part or []:
            if item["id"] not in seen:
                seen.add(item["id"])
                out.append(item)
    return out
