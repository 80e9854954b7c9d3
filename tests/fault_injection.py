"""Callbacks that break a run on purpose, for the resume and non-finite-loss tests (used through
`--trainer.callbacks+=fault_injection.X` with tests/ on PYTHONPATH)."""

import os
import signal

import torch
from lightning.pytorch import Callback


class KillAtEpoch(Callback):
    """SIGKILL this very process when `epoch` starts (once: a marker file remembers it happened)."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, marker

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonAtEpoch(Callback):
    """Fill the QA head with NaN when `epoch` starts, so every later loss is NaN."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.model.qa_outputs.weight.fill_(float("nan"))


class KillAtStep(Callback):
    """SIGKILL this very process when optimizer step `step` is about to run (once, like `KillAtEpoch`)."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


class KillAtPredictBatch(Callback):
    """SIGKILL this very process when predict batch `batch` is about to run (once, like `KillAtEpoch`)."""

    def __init__(self, batch: int, marker: str) -> None:
        self.batch, self.marker = batch, marker

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == self.batch and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
