"""What a run leaves on disk, as Lightning callbacks: evaluation and prediction files, `last.ckpt`, the
export of the best checkpoint and the training curves. The LightningModule computes; these write."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_qa.answers import best, decode_outputs
from lightning_qa.evaluate import EVALUATION_FILE
from lightning_qa.export import export_checkpoint, push_to_hub
from lightning_qa.model import QAModel
from lightning_qa.model_card import run_config
from lightning_qa.plots import plot_training_curves
from lightning_qa.prediction_file import Layout, PartWriter, finish, plan, read_meta, write_meta
from lightning_qa.quantize import DEFAULT_CHECK_SAMPLES, DEFAULT_MAX_F1_DROP


class EvaluationWriter(Callback):
    """After each validation and test: `predictions.json` ({id: answer}; with SQuAD 2.0 `null_odds.json`;
    with `--model.write_nbest` `nbest_predictions.json`), the official formats, so anyone can re-score a
    run; and `evaluation.json` with the metrics and the no-answer threshold applied, which `lightning_qa
    evaluate` finds beside `null_odds.json`.

    It also decides what a run learns from an evaluation: a SQuAD 2.0 no-answer threshold is tuned only on
    a complete validation (not on the sanity check, nor when `limit_val_batches` cut it short).
    """

    def on_validation_end(self, trainer: Trainer, pl_module: QAModel) -> None:
        self._evaluated(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: QAModel) -> None:
        self._evaluated(trainer, pl_module, "test")

    def _evaluated(self, trainer: Trainer, pl_module: QAModel, prefix: str) -> None:
        results = pl_module.last_results
        if not results:
            return
        if trainer.sanity_checking:
            rank_zero_info(f"Sanity check: decoded and scored {len(results)} example(s) (not logged).")
            return
        partial = _partial(trainer, prefix)
        if partial:
            rank_zero_info(
                f"{prefix}: scored only the {len(results)} example(s) seen (batches were limited)."
            )
        v2 = pl_module.hparams.version_2_with_negative
        applied = pl_module.null_threshold
        if v2 and prefix == "val" and not partial and "best_f1_thresh" in pl_module.last_metrics:
            pl_module.tuned_null_threshold = pl_module.last_metrics["best_f1_thresh"]
        run_dir = trainer.log_dir  # a collective (broadcast): every rank must ask
        if not trainer.is_global_zero or not run_dir:
            return
        os.makedirs(run_dir, exist_ok=True)
        _write_json(os.path.join(run_dir, "predictions.json"), {r["id"]: best(r)["answer"] for r in results})
        if v2:
            _write_json(os.path.join(run_dir, "null_odds.json"), {r["id"]: r["null_odds"] for r in results})
        if pl_module.hparams.write_nbest:
            _write_json(
                os.path.join(run_dir, "nbest_predictions.json"), {r["id"]: r["nbest"] for r in results}
            )
        summary = {
            "split": "validation" if prefix == "val" else "test",
            "examples": len(results),
            "complete": not partial,
            "null_score_diff_threshold": applied if v2 else None,
            "metrics": pl_module.last_metrics,
        }
        _write_json(os.path.join(run_dir, EVALUATION_FILE), summary)


def _partial(trainer: Trainer, prefix: str) -> bool:
    """Whether `limit_val_batches` / `limit_test_batches` left batches out (an int 1 means one batch)."""
    loaders = trainer.val_dataloaders if prefix == "val" else trainer.test_dataloaders
    counts = trainer.num_val_batches if prefix == "val" else trainer.num_test_batches
    loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
    return any(n < len(loader) for n, loader in zip(counts, loaders, strict=False))


RECORD = ("answer", "score", "start", "end")  # after "id", in this order


class PredictionWriter(Callback):
    """Write one JSON record per question, chunk by chunk as they are answered, in input order; resume a
    killed run; under DDP each rank writes its part and rank 0 merges them (see `prediction_file`).

    Records: {"id", "answer", "score", "start", "end"}; `start`/`end` are character offsets into the
    context (answer == context[start:end]; 0, 0 for "no answer") and `score` is the answer's probability
    among the example's n-best spans (plus the null answer for SQuAD 2.0), or the old pipeline's score
    with `--model.decoding pipeline`: what `QAPredictor` returns for the same model and settings.
    Nothing is kept past its chunk: memory does not grow with the number of questions.
    """

    def __init__(self, output_file: str | None = None, overwrite: bool = False) -> None:
        self.output_file, self.overwrite = output_file, overwrite
        self.outputs: dict[int, list[dict[str, Any]]] = {}  # step outputs of the chunks in flight
        self.part: PartWriter | None = None
        self.single: dict | None = None

    def setup(self, trainer: Trainer, pl_module: QAModel, stage: str) -> None:
        if stage != "predict":
            return
        dm = trainer.datamodule
        run_dir = trainer.log_dir  # a collective (broadcast): every rank must ask
        self.path = os.path.abspath(self.output_file or os.path.join(run_dir or ".", "predictions.jsonl"))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.layout = Layout(dm.n_predict, dm.hparams.predict_chunk_size, trainer.world_size)
        self.fingerprint = _fingerprint(trainer, pl_module, dm)
        todo = plan(self.path, self.fingerprint, self.layout, trainer.global_rank, self.overwrite)
        self.complete = not todo and read_meta(self.path) is not None and not self.overwrite
        trainer.strategy.barrier("lightning_qa_predict_plan")  # every rank read the meta before it changes
        if trainer.is_global_zero and not self.complete:
            write_meta(self.path, self.fingerprint, self.layout, complete=False)
        dm.predict_todo = todo
        self.part = PartWriter(self.path, self.layout, trainer.global_rank, todo)
        if self.complete:
            rank_zero_info(f"{self.path} is complete ({dm.n_predict} answers): nothing to do")

    def on_predict_batch_end(
        self, trainer, pl_module, prediction, batch, batch_idx, dataloader_idx=0
    ) -> None:
        chunk = batch["chunk"]
        self.outputs.setdefault(chunk, []).append(prediction)
        if batch["chunk_done"]:
            results = decode_outputs(self.outputs.pop(chunk), pl_module.predict_rule)
            records = []
            for r in results:
                answer = best(r)
                records.append({"id": r["id"], **{k: answer[k] for k in RECORD}})
            self.part.add(chunk, records)

    def on_predict_end(self, trainer: Trainer, pl_module: QAModel) -> None:
        self.part.close()
        trainer.strategy.barrier("lightning_qa_predict_parts")
        if trainer.is_global_zero and not self.complete:
            finish(self.path, self.fingerprint, self.layout)
            rank_zero_info(f"Wrote {self.layout.n_records} prediction(s) to {self.path}")
        trainer.strategy.barrier("lightning_qa_predict_done")
        if trainer.is_global_zero and self.layout.n_records == 1:  # one question asked: show its answer
            with open(self.path, encoding="utf-8") as f:
                print(f.readline().rstrip("\n"))


def _fingerprint(trainer: Trainer, pl_module: QAModel, dm: Any) -> dict[str, Any]:
    """What makes an output: the model (its checkpoint file, or its name), the answer rule and window
    settings, the batching (windows per batch, padding: they round the scores) and the input."""
    hp = dm.hparams
    source = hp.predict_file
    return {
        "model": _signature(trainer.ckpt_path) if trainer.ckpt_path else pl_module.hparams.model_name_or_path,
        "precision": str(trainer.precision),
        "rule": {k: v for k, v in pl_module.predict_rule.__dict__.items()},
        "windows": [hp.max_seq_length, hp.doc_stride, hp.max_question_length],
        "batching": [hp.eval_batch_size, hp.pad_to_multiple_of],
        "input": _signature(source) if source else [hp.question, hp.context],
    }


def _signature(path: str) -> list:
    stat = os.stat(path)
    return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt` of the run: written at every epoch end (Lightning 2.6 writes `save_last` only along with a
    new best) and, with `every_n_train_steps`, also every N optimizer steps, so a long epoch interrupted
    resumes at the exact batch (`ResumableLoader`). Lightning's triggers are exclusive; this one wants both.

    Args:
        every_n_train_steps: also write last.ckpt every N optimizer steps (0: only at epoch ends).
    """

    def __init__(self, every_n_train_steps: int = 0) -> None:
        super().__init__(
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            every_n_train_steps=every_n_train_steps or None,
        )
        self._every_n_epochs = 1


class ExportBestModel(Callback):
    """At the end of `fit`, export the best checkpoint (else the last) to `<run dir>/hf_model`.

    Args:
        push_to_hub: Also upload the exported folder to this Hugging Face hub repository ("user/name"),
            created if needed (needs a login: `hf auth login` or HF_TOKEN). A failed upload is reported and
            leaves the local export in place.
        onnx: Also export `model.onnx`, checked against the PyTorch logits (needs the `onnx` extra).
        quantize: "int8": also export `<run dir>/hf_model_int8`, accepted only after the accuracy check of
            `lightning_qa export --quantize int8` on `check_file` (default: the run's validation file); a
            refused int8 model is a warning, the float32 export stays.
        check_file: SQuAD data with answers for the int8 check (default: `--data.validation_file`).
        check_samples: Questions of the check file scored.
        max_f1_drop: Largest F1 loss (points) of int8 against float32 accepted.
    """

    def __init__(
        self,
        push_to_hub: str | None = None,
        onnx: bool = False,
        quantize: Literal["int8"] | None = None,
        check_file: str | None = None,
        check_samples: int = DEFAULT_CHECK_SAMPLES,
        max_f1_drop: float = DEFAULT_MAX_F1_DROP,
    ) -> None:
        if onnx or quantize:  # fail at start-up, not after training
            from lightning_qa.onnx_export import require

            require("onnx", "onnxscript", "onnxruntime")
        self.push_to_hub = push_to_hub
        self.onnx = onnx
        self.quantize, self.check_file = quantize, check_file
        self.check_samples, self.max_f1_drop = check_samples, max_f1_drop

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
            if self.quantize:
                self._export_int8(ckpt, training)
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

    def _export_int8(self, ckpt: str, training: dict[str, Any]) -> None:
        out = os.path.join(os.path.dirname(ckpt), "hf_model_int8")
        try:
            export_checkpoint(
                ckpt,
                out,
                training=training,
                quantize=self.quantize,
                check_file=self.check_file,
                check_samples=self.check_samples,
                max_f1_drop=self.max_f1_drop,
            )
        except ValueError as e:  # refused by the accuracy check, or nothing to check on: the run stands
            rank_zero_warn(f"No int8 export: {e}")
            return
        rank_zero_info(f"Exported {os.path.basename(ckpt)} as int8 (accuracy-checked) to {out}")


class TrainingCurves(Callback):
    """Write `<run dir>/training_curves.png` when fit ends (needs matplotlib: the `plot` extra)."""

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        run_dir = trainer.log_dir
        csv_path = os.path.join(run_dir or "", "metrics.csv")
        if not trainer.is_global_zero or not run_dir:
            return
        for logger in trainer.loggers:
            logger.save()  # flush metrics.csv before reading it
        if os.path.isfile(csv_path) and plot_training_curves(
            csv_path, os.path.join(run_dir, "training_curves.png")
        ):
            rank_zero_info(f"Training curves: {os.path.join(run_dir, 'training_curves.png')}")


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
