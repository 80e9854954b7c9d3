"""QAModel: a Hugging Face `AutoModelForQuestionAnswering` trained and evaluated with Lightning.

Evaluation needs nothing from the data module: every batch carries its windows' offsets, example ids,
contexts and gold answers, and each example's windows arrive on one device (`ExampleShardSampler`).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import random
import tempfile
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torchmetrics import MeanMetric
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

from lightning_qa import metrics
from lightning_qa.decoding import (
    context_word_ids,
    feature_candidates,
    merge_windows,
    pipeline_answers,
    pipeline_candidates,
    select_answers,
    word_offsets,
)

CKPT_KEY = "lightning_qa"
PIPELINE_SPANS_PER_WINDOW = 2 * 1 + 10  # the old pipeline's pool for top_k=1 with align_to_words
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


class QAModel(LightningModule):
    """Extractive question answering: start/end logits over the context tokens.

    Args:
        model_name_or_path: Hugging Face hub name or local directory of the encoder (and its tokenizer).
        pretrained: Load the weights of `model_name_or_path`; False builds the architecture with fresh
            weights (the CLI uses this when a checkpoint provides the weights).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay, applied to all weights but biases and LayerNorm weights.
        warmup_ratio: Fraction of the training steps with a linear warm-up (ignored if warmup_steps > 0).
        warmup_steps: Number of linear warm-up steps.
        adam_epsilon: AdamW epsilon.
        n_best_size: Start and end candidates per window considered when decoding.
        max_answer_length: Longest answer, in tokens.
        version_2_with_negative: SQuAD 2.0: the answer may be "" (linked to the data module's setting).
        null_score_diff_threshold: Answer "" when null score - best span score exceeds this (SQuAD 2.0).
            None: the threshold tuned on the last validation (stored in the checkpoint), else 0.0.
        write_nbest: Also write `nbest_predictions.json` (top answers with text, score, probability and
            character offsets) next to `predictions.json`.
        compile: Compile the encoder's forward with torch.compile.
        nonfinite_loss: On a NaN/inf training loss: "stop" the run (checkpoints so far are kept), "skip"
            the batch, or "ignore" (saves the per-step check, one host-device sync).
        trust_remote_code: Allow models with custom code from the hub.
        decoding: How `predict` ranks answers: "logits" (start + end logit over all windows, the rule
            validation scores) or "pipeline" (the old transformers question-answering pipeline's: per-window
            probabilities, answers with the same text merged, whole words; see `lightning_qa.predictor`;
            `score` is then the pipeline's). Validation and test always use "logits".
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
    ) -> None:
        super().__init__()
        if decoding not in ("logits", "pipeline"):
            raise ValueError(f"decoding must be 'logits' or 'pipeline', not {decoding!r}")
        self.save_hyperparameters()
        if pretrained:
            self.model = AutoModelForQuestionAnswering.from_pretrained(
                model_name_or_path, trust_remote_code=trust_remote_code
            )
        else:
            config = AutoConfig.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code)
            self.model = AutoModelForQuestionAnswering.from_config(
                config, trust_remote_code=trust_remote_code
            )
        self.model.train()  # from_pretrained returns eval mode; Lightning keeps module modes as found
        self.tokenizer = AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        accepted = inspect.signature(self.model.forward).parameters
        self.input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in accepted]
        # kept outside the module tree so the state dict keeps plain keys
        object.__setattr__(self, "_compiled", torch.compile(self.model) if compile else None)
        self._outputs: list[dict[str, Any]] = []
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.last_metrics: dict[str, float] = {}
        self.tuned_null_threshold: float | None = None  # best_f1_thresh of the last SQuAD 2.0 validation

    def forward(self, batch: dict[str, Any]) -> Any:
        """Logits, and the loss when the batch has labels (see `qa_loss`)."""
        inputs = {k: batch[k] for k in self.input_names if k in batch}
        out = (self.model if self._compiled is None else self._compiled)(**inputs)
        if "start_positions" in batch:
            out.loss = qa_loss(
                out.start_logits,
                out.end_logits,
                batch["start_positions"],
                batch["end_positions"],
                batch["attention_mask"],
            )
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        loss = self(batch).loss
        if self.hparams.nonfinite_loss != "ignore" and self._any_rank_nonfinite(loss):
            if self.hparams.nonfinite_loss == "skip":
                rank_zero_warn(f"non-finite training loss at step {self.global_step}: batch skipped")
                return None  # no backward, no optimizer step, on every rank alike
            raise NonFiniteLossError(
                f"non-finite training loss at step {self.global_step}: run stopped before the weights were "
                "touched; the last good checkpoint is kept (set --model.nonfinite_loss skip to skip such batches)"
            )
        # synced: one scalar all-reduce, so the logged curve is the global batch's, on any number of devices
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0], sync_dist=True)
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
    def _eval_step(self, batch: dict[str, Any], prefix: str) -> None:
        out = self(batch)
        if getattr(out, "loss", None) is not None:
            # a metric object syncs sums and counts, so the mean is over all windows whatever the sharding
            loss_metric = self.val_loss if prefix == "val" else self.test_loss
            loss_metric.update(out.loss.detach().float(), weight=batch["input_ids"].shape[0])
            self.log(f"{prefix}/loss", loss_metric, on_step=False, on_epoch=True)
        self._outputs.append(self._candidates(batch, out.start_logits, out.end_logits))

    def _candidates(
        self, batch: dict[str, Any], start_logits: torch.Tensor, end_logits: torch.Tensor
    ) -> dict[str, Any]:
        """Reduce a batch's logits to its windows' n-best spans on the device; keep only those (small)."""
        cands = feature_candidates(
            start_logits,
            end_logits,
            batch["offsets"],
            batch["cls_index"],
            self.hparams.n_best_size,
            self.hparams.max_answer_length,
        )
        return {
            **{k: v.cpu() for k, v in cands.items()},
            "example_index": batch["example_index"].cpu(),
            "example_id": batch["example_id"],
            "context": batch["context"],
            "answer_texts": batch["answer_texts"],
        }

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start
    on_predict_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        self._score("test")

    def decode(self, outputs: list[dict[str, Any]]) -> list[dict]:
        """Per-example answers from collected step outputs (this rank's examples only)."""
        if not outputs:
            return []
        if outputs[0].get("decoding") == "pipeline":
            return self._decode_pipeline(outputs)
        cands = {
            k: torch.cat([o[k] for o in outputs]) for k in ("start_char", "end_char", "score", "null_score")
        }
        example_index = torch.cat([o["example_index"] for o in outputs])
        # n-best lists cost most of the decoding time: build them only where they are used
        v2_predict = (
            self.hparams.version_2_with_negative and self._trainer is not None and self.trainer.predicting
        )
        keep_nbest = self.hparams.write_nbest or v2_predict
        merged = merge_windows(example_index, cands, self.hparams.n_best_size, keep_nbest=keep_nbest)
        info: dict[int, tuple] = {}
        for o in outputs:
            for i, ex in enumerate(o["example_index"].tolist()):
                info.setdefault(ex, (o["example_id"][i], o["context"][i], o["answer_texts"][i]))
        contexts = [info[m["example_index"]][1] for m in merged]
        answers = select_answers(merged, contexts, self.hparams.version_2_with_negative, self.null_threshold)
        for a in answers:
            a["id"], context, a["gold"] = info[a["example_index"]]
            if self.hparams.write_nbest:
                a["nbest"] = [{"text": context[c["start"] : c["end"]], **c} for c in a["nbest"]]
        return answers

    @property
    def null_threshold(self) -> float:
        """The user's threshold if given, else the one tuned on validation, else 0.0."""
        if self.hparams.null_score_diff_threshold is not None:
            return self.hparams.null_score_diff_threshold
        return self.tuned_null_threshold if self.tuned_null_threshold is not None else 0.0

    def _score(self, prefix: str) -> None:
        answers = gather_objects(self.decode(self._outputs))
        self._outputs = []
        partial = self.trainer.sanity_checking or _limited(self.trainer, prefix)
        if not answers:
            return
        golds = {a["id"]: a["gold"] for a in answers}
        predictions = {a["id"]: a["answer"] for a in answers}
        if self.hparams.version_2_with_negative:
            scores = metrics.squad_v2(golds, predictions)
            scores.update(
                metrics.best_thresholds(
                    golds,
                    {a["id"]: a["best_non_null"] for a in answers},
                    {a["id"]: a["null_odds"] for a in answers},
                )
            )
            scores["exact_match"] = scores["exact"]
        else:
            scores = metrics.squad_v1(golds, predictions)
        scores = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
        scores["examples"] = float(len(answers))
        self.last_metrics = scores
        if (
            self.hparams.version_2_with_negative
            and prefix == "val"
            and not partial
            and "best_f1_thresh" in scores
        ):
            self.tuned_null_threshold = scores["best_f1_thresh"]
        if self.trainer.sanity_checking:
            rank_zero_info(f"Sanity check: decoded and scored {len(answers)} example(s) (not logged).")
            return
        for k, v in scores.items():
            self.log(
                f"{prefix}/{k}", v, prog_bar=k in ("exact_match", "f1"), sync_dist=False, rank_zero_only=False
            )
        if partial:
            rank_zero_info(
                f"{prefix}: scored only the {len(answers)} example(s) seen (batches were limited)."
            )
        run_dir = self.trainer.log_dir  # a collective (broadcast): every rank must ask
        if self.trainer.is_global_zero and run_dir:
            write_predictions(
                answers, run_dir, self.hparams.version_2_with_negative, self.hparams.write_nbest
            )

    # -- prediction ----------------------------------------------------------------------------------
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out = self(batch)
        if self.hparams.get("decoding", "logits") == "pipeline":
            return self._pipeline_candidates(batch, out.start_logits, out.end_logits)
        return self._candidates(batch, out.start_logits, out.end_logits)

    def _pipeline_candidates(
        self, batch: dict[str, Any], start_logits: torch.Tensor, end_logits: torch.Tensor
    ) -> dict[str, Any]:
        """`--model.decoding pipeline`: each window's best spans by the old pipeline's rule, aligned to words
        (its defaults: top_k 1, so 2 * 1 + 10 spans per window)."""
        words = context_word_ids(self.tokenizer, batch["context"], batch["offsets"])
        cands = pipeline_candidates(
            start_logits,
            end_logits,
            batch["offsets"],
            batch["cls_index"],
            PIPELINE_SPANS_PER_WINDOW,
            self.hparams.max_answer_length,
            word_offsets(batch["offsets"], words),
        )
        return {
            **{k: v.cpu() for k, v in cands.items()},
            "decoding": "pipeline",
            "example_index": batch["example_index"].cpu(),
            "feature_index": batch["feature_index"].cpu(),
            "example_id": batch["example_id"],
            "context": batch["context"],
            "answer_texts": batch["answer_texts"],
        }

    def _decode_pipeline(self, outputs: list[dict[str, Any]]) -> list[dict]:
        """Answers by the old pipeline's rule; "pipeline_score" is the score `lightning_qa predict` writes."""
        cands = {
            k: torch.cat([o[k] for o in outputs]) for k in ("start_char", "end_char", "score", "null_score")
        }
        info: dict[int, tuple] = {}
        for o in outputs:
            for i, ex in enumerate(o["example_index"].tolist()):
                info.setdefault(ex, (o["example_id"][i], o["context"][i], o["answer_texts"][i]))
        ranked = pipeline_answers(
            torch.cat([o["example_index"] for o in outputs]),
            cands,
            {ex: v[1] for ex, v in info.items()},
            top_k=1,
            handle_impossible_answer=self.hparams.version_2_with_negative,
            null_score_diff_threshold=self.null_threshold,
            window_index=torch.cat([o["feature_index"] for o in outputs]),
        )
        answers = []
        for r in ranked:
            best = r["answers"][0] if r["answers"] else {"score": 0.0, "start": 0, "end": 0, "answer": ""}
            example_id, _, gold = info[r["example_index"]]
            no_answer = not r["answers"] or (best["answer"] == "" and best["start"] == best["end"] == 0)
            answers.append(
                {
                    "example_index": r["example_index"],
                    "id": example_id,
                    "gold": gold,
                    "answer": best["answer"],
                    "start": best["start"],
                    "end": best["end"],
                    "no_answer": no_answer,
                    "pipeline_score": best["score"],
                    "null_score": r["null_score"],
                }
            )
        return answers

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (no_decay if name.endswith(NO_DECAY) or param.ndim < 2 else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        # fused AdamW is fastest, but Lightning's mixed precision refuses to clip gradients with it
        fused = not self.trainer.gradient_clip_val
        optimizer = torch.optim.AdamW(
            groups, lr=self.hparams.learning_rate, eps=self.hparams.adam_epsilon, fused=fused or None
        )
        total = self.trainer.estimated_stepping_batches
        warmup = self.hparams.warmup_steps or int(self.hparams.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_fit_start(self) -> None:
        if str(self.trainer.precision) in ("bf16-true", "16-true"):
            rank_zero_warn(
                f"precision={self.trainer.precision} keeps weights in half precision: AdamW updates of about "
                f"lr={self.hparams.learning_rate} x weight are below half a bf16 step for typical weights and are "
                "mostly lost. Prefer bf16-mixed (fp32 master weights) for fine-tuning."
            )

    # -- self-contained checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the model config and tokenizer files, so a checkpoint alone rebuilds the model offline."""
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


def answer_probability(answer: dict, version_2: bool) -> float:
    """Probability of the returned answer: softmax of start+end logits over the example's n-best spans,
    and for SQuAD 2.0 over those spans plus the null answer (so a "" answer gets the null's share).
    Answers decoded with `--model.decoding pipeline` carry the old pipeline's score instead."""
    if "pipeline_score" in answer:
        return answer["pipeline_score"]
    if not version_2:
        return answer["probability"]
    scores = [c["score"] for c in answer["nbest"]] + [answer["null_score"]]
    top = max(scores)
    total = sum(math.exp(x - top) for x in scores)
    chosen = answer["null_score"] if answer["no_answer"] else answer["score"]
    return math.exp(chosen - top) / total if chosen != float("-inf") else 0.0


def _limited(trainer: Any, prefix: str) -> bool:
    limit = trainer.limit_val_batches if prefix == "val" else trainer.limit_test_batches
    return limit is not None and limit != 1.0


def gather_objects(items: list) -> list:
    """All ranks' lists concatenated (identical on every rank); a no-op on one process."""
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


def write_predictions(answers: list[dict], run_dir: str, version_2: bool, nbest: bool = False) -> None:
    """The official formats: {id: answer} (and {id: null odds} for v2), so anyone can re-score a run."""
    os.makedirs(run_dir, exist_ok=True)
    _write_json(os.path.join(run_dir, "predictions.json"), {a["id"]: a["answer"] for a in answers})
    if version_2:
        _write_json(os.path.join(run_dir, "null_odds.json"), {a["id"]: a["null_odds"] for a in answers})
    if nbest:
        _write_json(os.path.join(run_dir, "nbest_predictions.json"), {a["id"]: a["nbest"] for a in answers})


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def tokenizer_files(tokenizer: Any) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {
            name: open(os.path.join(tmp, name), "rb").read()
            for name in os.listdir(tmp)
            if os.path.isfile(os.path.join(tmp, name))
        }
