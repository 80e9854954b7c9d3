"""`lightning_qa`: LightningCLI for fit/validate/test/predict, plus our own non-Trainer subcommands."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from typing import Any

import torch
import transformers
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    ModelCheckpoint,
    RichModelSummary,
    RichProgressBar,
)
from lightning.pytorch.cli import ArgsType, LightningCLI
from lightning.pytorch.utilities import rank_zero_info

from lightning_qa.data import SquadDataModule
from lightning_qa.export import ExportBestModel, load_checkpoint, materialize
from lightning_qa.io import DataError
from lightning_qa.model import NonFiniteLossError, QAModel, answer_probability, gather_objects
from lightning_qa.plots import TrainingCurves

RUN_ENV = "LIGHTNING_QA_RUN"
# settings a checkpoint supplies unless the user sets them: decoding, and tokenization as trained
CKPT_MODEL_KEYS = ("n_best_size", "max_answer_length", "null_score_diff_threshold")
CKPT_DATA_KEYS = ("version_2_with_negative", "max_seq_length", "doc_stride", "max_question_length")

SUBCOMMANDS = {
    "fit": "Fine-tune a model (validating every epoch when validation data is set).",
    "validate": "Score a model or checkpoint on the validation set (SQuAD exact match / F1).",
    "test": "Score a model or checkpoint on the test set.",
    "predict": "Answer questions from a file or --data.question/--data.context; writes JSON Lines.",
    "evaluate": "Score a {id: answer} predictions file against a SQuAD dataset, like the official scripts.",
    "export": "Write a checkpoint as a Hugging Face model directory.",
    "serve": "Serve a model or checkpoint over HTTP: POST /predict (LitServe, dynamic batching).",
}


class PredictionWriter(BasePredictionWriter):
    """Decode every example once all its windows are in, and write one JSON record per example.

    Records: {"id", "answer", "score", "start", "end"}; `start`/`end` are character offsets into the
    context (answer == context[start:end]; 0, 0 for "no answer") and `score` is the probability of the
    answer among the example's n-best candidate spans, plus the null answer for SQuAD 2.0 (softmax of
    start+end logits over those).
    """

    def __init__(self, output_file: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_file = output_file
        self.outputs: list[dict[str, Any]] = []

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.outputs = []

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self.outputs.append(prediction)

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: QAModel) -> None:
        answers = gather_objects(pl_module.decode(self.outputs))
        self.outputs = []
        run_dir = trainer.log_dir  # a collective (broadcast): every rank must ask
        if not trainer.is_global_zero:
            return
        answers.sort(key=lambda a: a["example_index"])
        v2 = pl_module.hparams.version_2_with_negative
        records = [
            {
                "id": a["id"],
                "answer": a["answer"],
                "score": answer_probability(a, v2),
                "start": 0 if a["no_answer"] else a["start"],
                "end": 0 if a["no_answer"] else a["end"],
            }
            for a in answers
        ]
        path = self.output_file or os.path.join(run_dir or ".", "predictions.jsonl")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(f"{path}.tmp", "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(f"{path}.tmp", path)
        rank_zero_info(f"Wrote {len(records)} prediction(s) to {path}")
        self.single = records[0] if len(records) == 1 else None

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and getattr(self, "single", None):
            print(json.dumps(self.single, ensure_ascii=False))  # one question asked: show its answer


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


class QACLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("model.model_name_or_path", "data.model_name_or_path")
        parser.link_arguments("model.trust_remote_code", "data.trust_remote_code")
        parser.link_arguments("data.version_2_with_negative", "model.version_2_with_negative")
        parser.add_argument(
            "--predictions_file",
            type=str | None,
            default=None,
            help="predict: JSON Lines output (default <run dir>/predictions.jsonl)",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(
            LastCheckpoint, "last_checkpoint"
        )  # --last_checkpoint.every_n_train_steps
        parser.add_lightning_class_args(ExportBestModel, "export")  # --export.push_to_hub, --export.onnx
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/f1",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best",
                "checkpoint.save_last": False,  # last.ckpt comes from its own callback, every epoch
                "checkpoint.save_top_k": 1,
                "checkpoint.auto_insert_metric_name": False,
            }
        )

    def _parse_ckpt_path(self) -> None:
        """Take a checkpoint's model and tokenization settings as defaults for validate/test/predict.

        Lightning's own version lets the checkpoint's hyperparameters override explicit arguments; here a
        value the user set (command line or config file, i.e. different from the default) wins. `fit`
        resumes with the run's own config, as given.
        """
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else None
        ckpt = cfg.get("ckpt_path") if cfg else None
        if sub == "fit" or not ckpt or not os.path.isfile(ckpt):
            return
        checkpoint = load_checkpoint(ckpt)
        defaults = self._subcommand_parsers[sub].get_defaults()
        sections = (
            ("model", checkpoint.get("hyper_parameters", {}), CKPT_MODEL_KEYS),
            ("data", checkpoint.get("datamodule_hyper_parameters", {}), CKPT_DATA_KEYS),
        )
        for section, stored, keys in sections:
            for key in keys:
                if key in stored and cfg[section][key] == defaults[section][key]:
                    cfg[section][key] = stored[key]
        cfg.model.version_2_with_negative = cfg.data.version_2_with_negative

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand]
        if cfg.trainer.logger in (None, True):
            cfg.trainer.logger = run_loggers(cfg.trainer.default_root_dir)
        ckpt = cfg.get("ckpt_path")
        if self.subcommand != "fit" and ckpt and os.path.isfile(ckpt):
            # the checkpoint carries config + tokenizer: the base model need not exist any more
            model_dir = materialize(ckpt)
            cfg.model.model_name_or_path = cfg.data.model_name_or_path = model_dir
            cfg.model.pretrained = False
        if self.subcommand == "predict":
            self.trainer_defaults_callbacks = [PredictionWriter(cfg.get("predictions_file"))]

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        extra: list[Callback] = [RichModelSummary(max_depth=2), TrainingCurves()]
        if (
            kwargs.get(
                "enable_progress_bar", self.config_init[self.subcommand].trainer.get("enable_progress_bar")
            )
            is not False
        ):
            extra.append(RichProgressBar(leave=True))
        extra += getattr(self, "trainer_defaults_callbacks", [])
        user = kwargs.get("callbacks") or self.config_init[self.subcommand].trainer.get("callbacks") or []
        kwargs["callbacks"] = list(user) + extra
        trainer = super().instantiate_trainer(**kwargs)
        if (
            self.subcommand == "fit"
            and not (trainer.limit_val_batches and self.datamodule._configured("validation"))
        ):  # nothing to rank checkpoints by: no best.ckpt (export takes last.ckpt), no "val/f1 missing" warning
            trainer.callbacks = [
                c for c in trainer.callbacks if not (isinstance(c, ModelCheckpoint) and c.monitor)
            ]
        for cb in trainer.checkpoint_callbacks:
            if cb.dirpath is None and trainer.log_dir:
                cb.dirpath = trainer.log_dir  # checkpoints/<run>/best.ckpt, last.ckpt
        return trainer

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        if config.get("enable_checkpointing") is False:  # then no checkpoint callbacks at all
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
            config["callbacks"] = [
                c for c in config.get("callbacks") or [] if not isinstance(c, ModelCheckpoint)
            ]
        return super()._instantiate_trainer(config, callbacks)


def run_loggers(root: str) -> list[Namespace]:
    """CSV (and TensorBoard, when installed) logs in one run directory `root/version_N`. Written into
    the saved config.yaml, so `fit -c <run>/config.yaml --ckpt_path last` resumes in the same directory."""
    args = Namespace(save_dir=root, name="", version=run_name(root))
    loggers = [Namespace(class_path="lightning.pytorch.loggers.CSVLogger", init_args=args)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(
            Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=args.clone())
        )
    return loggers


def run_name(root: str) -> str:
    """Next free `version_N` under `root`, shared with DDP child processes through the environment."""
    if os.environ.get(RUN_ENV) and os.environ.get("LOCAL_RANK", "0") != "0":
        return os.environ[RUN_ENV]  # a DDP child started by Lightning: same run as its launcher
    n = 0
    while os.path.exists(os.path.join(root, f"version_{n}")):
        n += 1
    os.environ[RUN_ENV] = name = f"version_{n}"
    return name


def print_help() -> None:
    print("usage: lightning_qa {" + ",".join(SUBCOMMANDS) + "} ...\n")
    print("Fine-tune, evaluate and serve extractive question answering models (SQuAD).\n\nsubcommands:")
    for name, text in SUBCOMMANDS.items():
        print(f"  {name:<10} {text}")
    print("\nRun `lightning_qa SUBCOMMAND --help` for the options of one subcommand.")


def main(args: ArgsType = None) -> None:
    """Entry point: dispatch non-Trainer subcommands, run LightningCLI for the rest, and turn bad input
    into one clear error line (exit status 2) instead of a traceback (`--verbose` keeps it)."""
    argv = list(sys.argv[1:] if args is None else args)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    if args is None and not verbose:
        args = None  # let LightningCLI read sys.argv itself
    else:
        args = argv
    if not argv or argv[0] in ("-h", "--help"):
        print_help()
        return None
    if argv[0] == "evaluate":
        from lightning_qa.evaluate import main as evaluate_main

        evaluate_main(argv[1:])
        return None
    if argv[0] == "export":
        from lightning_qa.export import main as export_main

        export_main(argv[1:])
        return None
    if argv[0] == "serve":
        from lightning_qa.serve import main as serve_main

        serve_main(argv[1:])
        return None
    torch.set_float32_matmul_precision("high")
    transformers.utils.logging.disable_progress_bar()
    logger = logging.getLogger("lightning_qa")
    if not logger.handlers:  # our warnings and notes (bad records, truncated questions, tokenization)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        QACLI(
            QAModel,
            SquadDataModule,
            args=args,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"default_root_dir": "checkpoints"},
            parser_kwargs={"prog": "lightning_qa"},
        )
    except (DataError, ValueError, OSError, MisconfigurationException, NonFiniteLossError) as e:
        if verbose:
            raise
        lines = (
            e.lines()
            if isinstance(e, DataError)
            else [str(e).splitlines()[0] if str(e) else type(e).__name__]
        )
        if "DeepSpeed installed" in lines[0]:
            lines = [
                'DeepSpeed is not installed: pip install "lightning_qa[deepspeed]" (or pip install deepspeed)'
            ]
        for line in lines:
            print(f"lightning_qa: error: {line}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
