"""Training throughput: our `lightning_qa fit` vs the transformers `Trainer` recipe, on identical settings.

Same model directory (random-weight DistilBERT with MiniLM's uncased vocabulary: `tiny`, or `base` =
`DistilBertConfig()` defaults, the distilbert-base shape; or `minilm`, the pretrained MiniLM-L6 encoder with a
seeded QA head, the accuracy benchmark's model), same training questions (the first `--questions`
of SQuAD v1.1 dev), batch size, optimizer steps, learning rate, weight decay, seed and precision. Variants:

    ours                 `lightning_qa fit` (in-process `lightning_qa.cli.main`), padded per batch (multiple of 8)
    ours+group           the same with `--data.group_by_length true`
    reference/384        `Trainer`, padded to max_length 384 (the transformers example's default)
    reference/dyn+group  `Trainer`, `DataCollatorWithPadding` (multiple of 8) + `train_sampling_strategy="group_by_length"`

Each variant runs in its own process (so its peak RSS is its own). What is timed, on both sides the same
way: by default one whole pass over the questions (their windows // batch size optimizer steps), from the
start of training to the end of the last step, data loading included: forward, backward, optimizer,
scheduler and logging of every step; tokenization and model loading are not timed. (`--warmup N` leaves
the first N steps out, as earlier sessions measured.) samples/s counts the windows of the timed steps,
tokens/s their non-padding tokens; samples/CPU s divides by the process's CPU time over the same steps (all
threads), steadier than wall time on a shared machine. Validation is off (`--trainer.limit_val_batches 0`).
MFU (both sides): non-padding tokens/s x model FLOPs per token (`cpu_limit.flops_per_token`: 6 x non-embedding
parameters + attention at the pass's mean window length) / this machine's peak matmul FLOP/s in that
precision (`cpu_limit.peak_matmul`, measured before and after the variants, the higher kept).
`--rounds N` runs the variants N times interleaved (order reversed every other round): each ratio is the
median of its per-round ratios, each variant's row its median round (host noise here moves one run by 20%).
The length-grouped Trainer sorts each megabatch longest first, so a window of steps would time its longest
batches: only whole passes compare like with like. Needs: `pip install accelerate psutil`.

    python benchmarks/train_throughput.py --model minilm --precision 32 --variants ours+group,reference/dyn+group
    python benchmarks/train_throughput.py --model tiny --precision 32                    # 2,000 questions
    python benchmarks/train_throughput.py --model base --precision 32 --questions 800     # a long pass
    python benchmarks/train_throughput.py --model base --precision bf16                  # native bf16 only
    python benchmarks/train_throughput.py --model minilm --compile   # ours model.compile, the Trainer torch_compile
    (options: --model tiny|base|minilm --rounds 1 --precision 32|bf16 --questions 2000 --steps N --warmup 0 --batch-size 16)

Prints a table, the ratios ours/reference, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import cpu_limit  # noqa: E402

MODELS = [*common.MODEL_SHAPES, "minilm"]
LABELS = {"tiny": "tiny DistilBERT", "base": "DistilBERT-base shape", "minilm": "MiniLM-L6 (pretrained)"}

VARIANTS = {  # name: (side, dynamic padding, length grouping)
    "ours": ("ours", True, False),
    "ours+group": ("ours", True, True),
    "reference/384": ("reference", False, False),
    "reference/dyn+group": ("reference", True, True),
}
RATIOS = {  # name: (numerator, denominator) of samples/s
    "ours / reference/384": ("ours", "reference/384"),
    "ours+group / reference/384": ("ours+group", "reference/384"),
    "ours / reference/dyn+group": ("ours", "reference/dyn+group"),
    "ours+group / reference/dyn+group": ("ours+group", "reference/dyn+group"),
}


def ours_args(a: argparse.Namespace, group: bool, work: str, timer_file: str) -> list[str]:
    """The `lightning_qa fit` command line of one variant (a list for `lightning_qa.cli.main`)."""
    timer = {"class_path": "common.StepTimer", "init_args": {"out_file": timer_file, "warmup": a.warmup}}
    options = {
        "model.model_name_or_path": a.model_dir,
        "data.train_file": a.train_file,
        "seed_everything": a.seed,
        "data.seed": a.seed,
        "model.learning_rate": a.learning_rate,
        "model.weight_decay": a.weight_decay,
        "model.warmup_steps": 0,
        "data.train_batch_size": a.batch_size,
        "data.group_by_length": group,
        "data.cache_dir": os.path.join(work, "cache"),
        "trainer.max_steps": a.steps,
        "trainer.limit_val_batches": 0,
        "trainer.precision": "bf16-mixed" if a.precision == "bf16" else "32-true",
        "trainer.enable_progress_bar": False,
        "trainer.default_root_dir": os.path.join(work, "runs"),
        "checkpoint.save_top_k": 0,  # no best.ckpt (there is no validation); last.ckpt is saved after timing
        "checkpoint.save_last": False,
        "model.compile": a.compile,
    }
    return ["fit", *common.flags(options), f"--trainer.callbacks=[{json.dumps(timer)}]"]


def worker(a: argparse.Namespace) -> None:
    """One variant, in this process; emits its timing and peak RSS."""
    side, dynamic, group = VARIANTS[a.worker]
    work = tempfile.mkdtemp(prefix="throughput-", dir=a.work_dir)
    if side == "ours":
        from lightning_qa.cli import main as lightning_qa

        timer_file = os.path.join(work, "timing.json")
        lightning_qa(ours_args(a, group, work, timer_file))
        result = json.loads(Path(timer_file).read_text())
    else:
        import hf_trainer_reference as ref

        from lightning_qa.io import read_examples

        same = ("steps", "batch_size", "learning_rate", "weight_decay", "seed")
        _, _, result = ref.train(
            a.model_dir,
            read_examples(a.train_file),
            os.path.join(work, "out"),
            bf16=a.precision == "bf16",
            dynamic_padding=dynamic,
            group_by_length=group,
            timed_warmup=a.warmup,
            torch_compile=a.compile,
            **{k: getattr(a, k) for k in same},
        )
    common.emit({"variant": a.worker, **result, "peak_rss_mb": common.peak_rss_mb()})


def flops_per_token(model_dir: str):
    """window -> training FLOPs per non-padding token of this model (the same count for both sides)."""
    from transformers import AutoModelForQuestionAnswering

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    return lambda window: cpu_limit.flops_per_token(model, window, training=True)


def parser() -> argparse.ArgumentParser:
    """The command line (its own function so tests build their arguments from it, new flags included)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=MODELS, default="tiny")
    p.add_argument("--precision", choices=["32", "bf16"], default="32")
    p.add_argument("--questions", type=int, default=2000, help="first N questions of the data file")
    p.add_argument(
        "--steps", type=int, help="optimizer steps per variant (default: one whole pass over the questions)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="first steps left out of the timing (0: a whole run, data loading included)",
    )
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--compile",
        action="store_true",
        help="both sides compiled: ours --model.compile true, the Trainer torch_compile=True (compiling timed)",
    )
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--data", default=str(common.DEFAULT_DATA))
    p.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS)
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="interleaved runs of every variant; medians reported"
    )
    p.add_argument("--work-dir", default=None, help="where temporary files go (default: the system's)")
    p.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    p.add_argument("--train-file", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict | None:
    p = parser()
    a = p.parse_args(argv)
    from lightning_qa.hardware import cpu_info, cpu_line, native_bf16

    print(cpu_line(), flush=True)  # the figures below depend on it
    if a.warmup < 0 or (a.steps is not None and a.steps <= a.warmup):
        p.error("need --warmup >= 0 and --steps > --warmup")
    if a.worker:
        return worker(a)
    if a.precision == "bf16" and not native_bf16():  # bf16 autocast is ~5x slower than fp32 without it
        raise SystemExit("bf16: not measured: no native bf16 on this CPU (no AMX, no AVX-512 BF16)")

    with tempfile.TemporaryDirectory(prefix="train-throughput-", dir=a.work_dir) as tmp:
        articles = common.first_questions(common.read_articles(a.data), a.questions)
        a.train_file = common.write_squad(articles, os.path.join(tmp, "train.json"))
        model_dir = os.path.join(tmp, "model")
        a.model_dir = (
            common.build_pretrained_qa(model_dir)
            if a.model == "minilm"
            else common.build_random_distilbert(model_dir, a.model, seed=0)
        )
        windows = common.count_windows(a.model_dir, a.train_file)
        a.steps = (
            a.steps or windows // a.batch_size
        )  # one whole pass (the last partial batch left out on both sides)
        if a.steps > windows // a.batch_size:
            print(
                f"note: {a.steps} steps run past one epoch ({windows} windows): ours then saves last.ckpt "
                "at each epoch end, inside the timing; use more --questions",
                file=sys.stderr,
            )
        same = ("precision", "steps", "warmup", "batch_size", "learning_rate", "weight_decay", "seed")
        options = {"model-dir": a.model_dir, "train-file": a.train_file, "work-dir": tmp}
        options |= {k.replace("_", "-"): getattr(a, k) for k in same}
        shared = [str(HERE / "train_throughput.py"), *common.flags(options), *["--compile"] * a.compile]
        dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
        peak = cpu_limit.peak_matmul(dtype)
        names, runs = a.variants.split(","), {}
        for r in range(a.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                print(f"round {r + 1}/{a.rounds}: running {name} ...", file=sys.stderr, flush=True)
                log = os.path.join(tmp, f"{name.replace('/', '_')}-{r}.log")
                runs.setdefault(name, []).append(common.run_worker([*shared, "--worker", name], log))
        peak = max(peak, cpu_limit.peak_matmul(dtype))
        per_token = flops_per_token(a.model_dir)
        for name_runs in runs.values():
            for x in name_runs:
                window = x["tokens_per_s"] / x["samples_per_s"]  # mean non-padding tokens per window
                x["mfu"] = round(x["tokens_per_s"] * per_token(window) / peak, 3)

    def median_ratio(x: str, y: str, key: str) -> float:
        return round(statistics.median(p[key] / q[key] for p, q in zip(runs[x], runs[y], strict=True)), 3)

    results = {n: sorted(rs, key=lambda x: x["samples_per_s"])[len(rs) // 2] for n, rs in runs.items()}
    pairs = {k: (x, y) for k, (x, y) in RATIOS.items() if x in runs and y in runs}
    ratios = {k: median_ratio(x, y, "samples_per_s") for k, (x, y) in pairs.items()}
    cpu_ratios = {k: median_ratio(x, y, "samples_per_cpu_s") for k, (x, y) in pairs.items()}
    mfu_ratios = {k: median_ratio(x, y, "mfu") for k, (x, y) in pairs.items()}
    rows = [
        {
            "variant": n,
            "padding": "per batch" if VARIANTS[n][1] else "384",
            "sampler": "length-grouped" if VARIANTS[n][2] else "random",
            **r,
            "padding_pct": round(100 * r["padding_fraction"], 1),
        }
        for n, r in results.items()
    ]
    print(
        f"\n{LABELS[a.model]}, precision {a.precision}{', both sides compiled' * a.compile}, "
        f"{common.count_questions(articles)} questions "
        f"({windows} windows), "
        f"batch {a.batch_size}, {a.steps} steps "
        + (
            f"({a.warmup} warm-up steps not timed), "
            if a.warmup
            else "(the whole run timed, data loading included), "
        )
        + f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.2f}, "
        + f"peak matmul {peak / 1e9:.1f} GFLOP/s ({a.precision}), "
        + (f"median of {a.rounds} interleaved rounds" if a.rounds > 1 else "one round")
    )
    common.print_table(
        rows,
        [
            ("variant", "variant"),
            ("padding", "padding"),
            ("sampler", "sampler"),
            ("samples_per_s", "samples/s"),
            ("samples_per_cpu_s", "samples/CPU s"),
            ("tokens_per_s", "tokens/s"),
            ("padded_tokens_per_s", "tokens/s (padded)"),
            ("padding_pct", "padding %"),
            ("timed_s", "timed s"),
            ("mfu", "MFU"),
            ("peak_rss_mb", "peak RSS MiB"),
            ("process_wall_s", "process wall s"),
        ],
    )
    for k, v in ratios.items():
        print(f"samples/s {k}: {v:.3f}x (per CPU second: {cpu_ratios[k]:.3f}x; MFU {mfu_ratios[k]:.3f}x)")
    summary = {
        "benchmark": "train_throughput",
        **cpu_info(),
        "model": a.model,
        "precision": a.precision,
        "compile": a.compile,
        "questions": common.count_questions(articles),
        "windows": windows,
        "steps": a.steps,
        "warmup": a.warmup,
        "batch_size": a.batch_size,
        "rounds": a.rounds,
        "peak_gflops": round(peak / 1e9, 1),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "results": results,
        "all_rounds": runs,
        "ratios": ratios,
        "cpu_ratios": cpu_ratios,
        "mfu_ratios": mfu_ratios,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
