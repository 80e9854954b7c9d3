"""`lightning_qa`: LightningCLI for fit/validate/test/predict, plus our own non-Trainer subcommands."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from typing import Any

import torch
import transformers
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichModelSummary
from lightning.pytorch.cli import ArgsType, LightningCLI

from lightning_qa import checkpoint as ckpt_io
from lightning_qa.callbacks import (
    EvaluationWriter,
    ExportBestModel,
    LastCheckpoint,
    PredictionWriter,
    TrainingCurves,
)
from lightning_qa.data import SquadDataModule
from lightning_qa.distill import check_tokenizers
from lightning_qa.errors import reported
from lightning_qa.io import DataError
from lightning_qa.model import NonFiniteLossError, QAModel
from lightning_qa.progress import LogProgress, QAProgressBar

RUN_ENV = "LIGHTNING_QA_RUN"
OWN_SUBCOMMANDS = {
    "evaluate": "lightning_qa.evaluate",
    "export": "lightning_qa.export",
    "serve": "lightning_qa.serve",
}

SUBCOMMANDS = {
    "fit": "Fine-tune a model (validating every epoch when validation data is set).",
    "validate": "Score a model or checkpoint on the validation set (SQuAD exact match / F1).",
    "test": "Score a model or checkpoint on the test set.",
    "predict": "Answer questions from a file or --data.question/--data.context; writes JSON Lines.",
    "evaluate": "Score a {id: answer} predictions file against a SQuAD dataset, like the official scripts.",
    "export": "Write a checkpoint as a Hugging Face model directory.",
    "serve": "Serve a model or checkpoint over HTTP: POST /predict (LitServe, dynamic batching).",
}


class QACLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.link_arguments("model.model_name_or_path", "data.model_name_or_path")
        parser.link_arguments("model.trust_remote_code", "data.trust_remote_code")
        parser.link_arguments("data.version_2_with_negative", "model.version_2_with_negative")
        parser.add_argument(
            "--predictions_file",
            type=str | None,
            default=None,
            help="predict: JSON Lines output (default <run dir>/predictions.jsonl); the same file again "
            "continues an interrupted run",
        )
        parser.add_argument(
            "--overwrite_predictions",
            type=bool,
            default=False,
            help="predict: start --predictions_file afresh (a complete one is otherwise kept, another run's refused)",
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
        """Take a checkpoint's settings (`checkpoint.settings`: tokenization and decoding as trained) as
        defaults for validate/test/predict.

        Lightning's own version lets the checkpoint's hyperparameters override explicit arguments; here a
        value the user set (command line or config file, i.e. different from the default) wins. `fit`
        resumes with the run's own config, as given.
        """
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else None
        ckpt = cfg.get("ckpt_path") if cfg else None
        if sub == "fit" or not ckpt or not os.path.isfile(ckpt):
            return
        stored = ckpt_io.settings(ckpt_io.load_checkpoint(ckpt), ckpt)
        defaults = self._subcommand_parsers[sub].get_defaults()
        keys = [("data", k) for k in ckpt_io.DATA_SETTINGS] + [("model", k) for k in ckpt_io.MODEL_SETTINGS]
        keys.append(("model", "null_score_diff_threshold"))
        for section, key in keys:
            if cfg[section][key] == defaults[section][key]:
                cfg[section][key] = stored[key]
        cfg.model.version_2_with_negative = cfg.data.version_2_with_negative

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand]
        if cfg.trainer.logger in (None, True):
            cfg.trainer.logger = run_loggers(cfg.trainer.default_root_dir)
        ckpt = cfg.get("ckpt_path")
        if self.subcommand != "fit" and ckpt and os.path.isfile(ckpt):
            # the checkpoint carries config + tokenizer: the base model need not exist any more
            model_dir = ckpt_io.materialize(ckpt)
            cfg.model.model_name_or_path = cfg.data.model_name_or_path = model_dir
            cfg.model.pretrained = False
        if self.subcommand == "predict":
            writer = PredictionWriter(cfg.get("predictions_file"), bool(cfg.get("overwrite_predictions")))
            self.trainer_defaults_callbacks = [writer]
            if cfg.get("return_predictions") is None:  # the writer streams answers to disk
                cfg.return_predictions = False

    def before_fit(self) -> None:
        """A teacher that tokenizes differently is refused before any work (tokenizing, the teacher pass)."""
        model = self.model
        if isinstance(model, QAModel) and model.distilling:
            check_tokenizers(model.tokenizer, model.hparams.model_name_or_path, model.hparams.teacher)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        extra: list[Callback] = [RichModelSummary(max_depth=2), TrainingCurves(), EvaluationWriter()]
        user = kwargs.get("callbacks") or self.config_init[self.subcommand].trainer.get("callbacks") or []
        wants_bar = kwargs.get(
            "enable_progress_bar", self.config_init[self.subcommand].trainer.get("enable_progress_bar")
        )
        if wants_bar is not False and not any(isinstance(c, ProgressBar) for c in user):
            # a bar redrawn in place shows nothing in a log file: plain lines there
            extra.append(QAProgressBar(leave=True) if sys.stdout.isatty() else LogProgress())
        extra += getattr(self, "trainer_defaults_callbacks", [])
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
    if argv[0] in OWN_SUBCOMMANDS:  # outside the Trainer: imported only when asked for
        importlib.import_module(OWN_SUBCOMMANDS[argv[0]]).main(argv[1:])
        return None
    torch.set_float32_matmul_precision("high")
    transformers.utils.logging.disable_progress_bar()
    logger = logging.getLogger("lightning_qa")
    if not logger.handlers:  # our warnings and notes (bad records, truncated questions, tokenization)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    with reported(
        (DataError, ValueError, OSError, MisconfigurationException, NonFiniteLossError), verbose=verbose
    ):
        QACLI(
            QAModel,
            SquadDataModule,
            args=args,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"default_root_dir": "checkpoints"},
            parser_kwargs={"prog": "lightning_qa"},
        )


if __name__ == "__main__":
    main()
