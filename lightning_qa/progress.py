"""Progress: the rich bar on a terminal, plain lines where output goes to a file (SLURM, nohup, CI).

A bar redrawn in place writes nothing a log file can show until it ends; a long run there looked dead for
an hour. `LogProgress` prints one line at a steady interval instead, with what an operator reads a log for.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.utilities import rank_zero_info


class QAProgressBar(RichProgressBar):
    """Lightning's rich bar, with an epoch total only when there is one (under `max_steps` Lightning sets
    `max_epochs` to -1 and its bar reads "Epoch 0/-2")."""

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        description = f"Epoch {current_epoch}" + (f"/{total - 1}" if total is not None and total > 0 else "")
        return f"{description:{len(self.validation_description)}}"


class LogProgress(ProgressBar):
    """Plain progress lines, every `interval` seconds and at the end of each epoch and of `predict`:

        train: epoch 0, step 133/240 (55%), 2.13 samples/s, elapsed 49:43, ETA 42:42, loss 3.214
        predict: 12000/200000 questions (6%), 85.3 questions/s, elapsed 2:21, ETA 36:50

    Steps are optimizer steps of the whole run (`estimated_stepping_batches`: epochs or `max_steps`);
    samples and questions count every process (rank 0 prints, from its share).

    Args:
        interval: Seconds between lines.
    """

    def __init__(self, interval: float = 30.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._start = self._last = 0.0
        self._count = 0  # samples (training) or questions (predict) done, this process
        self._chunks: dict[int, set[int]] = {}  # predict: examples seen per chunk in flight

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _begin(self) -> None:
        self._start = self._last = time.monotonic()
        self._count = 0

    def _due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def _print(self, line: str) -> None:
        self._last = time.monotonic()
        if self._enabled:
            rank_zero_info(line)

    # -- fit ---------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._count += len(batch["input_ids"])
        if self._due():
            self._print(self._train_line(trainer))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print(self._train_line(trainer))

    def _train_line(self, trainer: Trainer) -> str:
        done, total = trainer.global_step, trainer.estimated_stepping_batches
        elapsed = time.monotonic() - self._start
        line = f"train: epoch {trainer.current_epoch}, step {done}/{total}"
        line += f" ({done / total:.0%})" if total and total != float("inf") else ""
        line += f", {self._count * trainer.world_size / max(elapsed, 1e-9):.2f} samples/s, elapsed {_clock(elapsed)}"
        if done and total and total != float("inf"):
            line += f", ETA {_clock(elapsed * (total - done) / done)}"
        loss = trainer.callback_metrics.get("train/loss")
        return line + (f", loss {float(loss):.4g}" if loss is not None else "")

    # -- predict -----------------------------------------------------------------------------------------
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._begin()
        self._chunks = {}

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        seen = self._chunks.setdefault(batch["chunk"], set())
        seen.update(batch["example_index"].tolist())
        if batch["chunk_done"]:
            self._count += len(self._chunks.pop(batch["chunk"]))
        if self._due():
            self._print(self._predict_line(trainer))

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print(self._predict_line(trainer))

    def _predict_line(self, trainer: Trainer) -> str:
        total = getattr(trainer.datamodule, "n_predict", 0)
        done = min(self._count * trainer.world_size, total) if total else self._count * trainer.world_size
        elapsed = time.monotonic() - self._start
        rate = done / max(elapsed, 1e-9)
        line = f"predict: {done}/{total} questions" + (f" ({done / total:.0%})" if total else "")
        line += f", {rate:.1f} questions/s, elapsed {_clock(elapsed)}"
        return line + (f", ETA {_clock((total - done) / rate)}" if done and total else "")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
