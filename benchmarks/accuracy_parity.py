"""Accuracy parity: fine-tune the pretrained MiniLM encoder with our `fit` + `validate` and with the transformers
`Trainer` recipe (`hf_trainer_reference.py`), on identical settings, and score both with the official metric.

Data: SQuAD v1.1 dev split by article: the first 36 articles (7,539 questions) to train, the last 12
(3,031 questions) to evaluate, written as SQuAD JSON files in a temporary directory. Model: MiniLM's encoder
plus a QA head initialised under the seed, saved once per seed (with the cleaned tokenizer) and loaded by
both sides. Same learning rate, batch size, optimizer steps (`--epochs` x the training windows / batch),
warm-up, weight decay, seed and precision; no gradient clipping on either side. Each side runs in its own
process. Wall times: `fit` is the whole `lightning_qa fit` call (tokenizing, model load, training, checkpoint
and export), `train` the reference's tokenizing + model load + `Trainer.train`; `eval` our whole `validate`
call vs the reference's tokenizing + `Trainer.predict` + post-processing. Also the F1 of a trivial baseline
(always answering the context's first sentence). Needs: `pip install accelerate psutil`.

    python benchmarks/accuracy_parity.py                          # bf16-mixed, 1 epoch, 1 seed (~30 min)
    python benchmarks/accuracy_parity.py --group-by-length --seeds 3
    python benchmarks/accuracy_parity.py --max-train 200 --max-eval 100   # smoke test
    python benchmarks/accuracy_parity.py --group-by-length --sides reference   # one side only
    python benchmarks/accuracy_parity.py --group-by-length --seeds 2 --first-seed 1   # seeds 1 and 2

Padding does not change the results, only the time: the reference pads per batch by default (as ours does),
`--reference-padding max_length` pads to 384 like the transformers example. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
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

SAME = ("precision", "learning_rate", "batch_size", "eval_batch_size", "weight_decay", "reference_padding")
SAME += ("group_by_length", "eval_every")  # settings passed unchanged to both sides' worker processes
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def first_sentence(context: str) -> str:
    return SENTENCE_END.split(context.strip(), maxsplit=1)[0]


def baseline_scores(examples: list[dict]) -> dict:
    golds = {e["id"]: e["answers"]["text"] for e in examples}
    return squad_v1(golds, {e["id"]: first_sentence(e["context"]) for e in examples})


def run_ours(a: argparse.Namespace, work: str) -> dict:
    from lightning_qa.cli import main as lightning_qa

    runs, timer_file = os.path.join(work, "runs"), os.path.join(work, "timing.json")
    timer = {"class_path": "common.StepTimer", "init_args": {"out_file": timer_file, "warmup": 1}}
    shared = {
        "model.model_name_or_path": a.model_dir,
        "trainer.default_root_dir": runs,
        "trainer.precision": "bf16-mixed" if a.precision == "bf16" else "32-true",
        "trainer.enable_progress_bar": False,
        "data.cache_dir": os.path.join(work, "cache"),
        "data.eval_batch_size": a.eval_batch_size,
    }
    fit = {
        "data.train_file": a.train_file,
        "seed_everything": a.seed,
        "data.seed": a.seed,
        "model.learning_rate": a.learning_rate,
        "model.weight_decay": a.weight_decay,
        "model.warmup_steps": a.warmup_steps,
        "data.train_batch_size": a.batch_size,
        "data.group_by_length": a.group_by_length,
        "trainer.max_steps": a.steps,
        "trainer.limit_val_batches": 0,
        "checkpoint.save_top_k": 0,  # no validation during fit: last.ckpt is the model to validate
    }
    callbacks = [timer]
    if a.eval_every:
        snapshots = {"class_path": "common.Snapshots", "init_args": {"out_dir": work, "every": a.eval_every}}
        callbacks.append(snapshots)
    t = time.perf_counter()
    lightning_qa(["fit", *common.flags(shared | fit), f"--trainer.callbacks={json.dumps(callbacks)}"])
    fit_s = time.perf_counter() - t
    (ckpt,) = glob.glob(os.path.join(runs, "version_0", "last.ckpt"))
    t = time.perf_counter()
    lightning_qa(
        ["validate", *common.flags(shared | {"ckpt_path": ckpt, "data.validation_file": a.eval_file})]
    )
    eval_s = time.perf_counter() - t
    predictions = json.loads(Path(runs, "version_1", "predictions.json").read_text())
    timing = json.loads(Path(timer_file).read_text())
    curve = []
    if a.eval_every:  # score each snapshot with the same `validate`; the last point is the final model
        golds = {e["id"]: e["answers"]["text"] for e in read_examples(a.eval_file)}
        *points, last = json.loads(Path(work, "snapshots.json").read_text())
        for point in points:
            root = os.path.join(work, f"eval-step{point['step']}")
            options = {"ckpt_path": point.pop("ckpt"), "data.validation_file": a.eval_file}
            lightning_qa(["validate", *common.flags(shared | options | {"trainer.default_root_dir": root})])
            answers = json.loads(Path(root, "version_0", "predictions.json").read_text())
            curve.append(point | same_rule(squad_v1(golds, answers)))
        curve.append(last | same_rule(squad_v1(golds, predictions)))
    return {
        "fit_s": round(fit_s, 1),
        "eval_s": round(eval_s, 1),
        "steps": timing["steps"],
        "train_samples_per_s": timing["samples_per_s"],
        "predictions": predictions,
        "curve": curve,
    }


def same_rule(scores: dict) -> dict:
    """Our scores are already by our rule: name them as the reference's same-rule scores are named."""
    return {f"{k}_same_rule": round(v, 3) for k, v in scores.items()}


def run_reference(a: argparse.Namespace, work: str) -> dict:
    import hf_trainer_reference as ref

    dynamic = a.group_by_length or a.reference_padding == "dynamic"
    t = time.perf_counter()
    same = ("steps", "batch_size", "eval_batch_size", "learning_rate", "weight_decay", "warmup_steps", "seed")
    trainer, tokenizer, stats = ref.train(
        a.model_dir,
        read_examples(a.train_file),
        os.path.join(work, "out"),
        bf16=a.precision == "bf16",
        dynamic_padding=dynamic,
        group_by_length=a.group_by_length,
        timed_warmup=1,
        snapshot_every=a.eval_every,
        **{k: getattr(a, k) for k in same},
    )
    fit_s = time.perf_counter() - t
    eval_examples = read_examples(a.eval_file)
    scores = ref.evaluate(trainer, tokenizer, eval_examples, not dynamic)
    curve = []
    if a.eval_every:  # the final model is scored above; then each snapshot's weights by the same code
        *points, last = stats["snapshots"]
        for point in points:
            trainer.model.load_state_dict(point.pop("weights"))
            curve.append(
                point | reference_scores(ref.evaluate(trainer, tokenizer, eval_examples, not dynamic))
            )
        curve.append(last | reference_scores(scores))
    return {
        "fit_s": round(fit_s, 1),
        "eval_s": scores["eval_s"],
        "steps": stats["steps"],
        "train_samples_per_s": stats["samples_per_s"],
        "predictions": scores["predictions"],
        **reference_scores(scores),
        "curve": curve,
    }


def reference_scores(scores: dict) -> dict:
    """The reference's logits decoded by our rule: what makes the sides' F1 comparable (see `main`)."""
    return {"exact_match_same_rule": scores["exact_match_our_rule"], "f1_same_rule": scores["f1_our_rule"]}


def _first_reach(curve: list[dict], target: float) -> float | None:
    return next((c["train_s"] for c in curve if c["f1_same_rule"] >= target), None)


def _times_to(results: list[dict], target: float) -> dict:
    """Per seed, each side's training time to `target`; the median of reference / ours over the seeds."""
    per_seed: dict = {}
    for r in results:
        per_seed.setdefault(r["seed"], {})[r["side"]] = _first_reach(r["curve"], target)
    ratios = [t["reference"] / t["ours"] for t in per_seed.values() if t.get("ours") and t.get("reference")]
    for seed, t in sorted(per_seed.items()):
        print(f"seed {seed}: time to F1 {target:.2f}: " + ", ".join(f"{k} {v} s" for k, v in t.items()))
    return {
        "target_f1": target,
        "per_seed_s": per_seed,
        "median_ratio": round(statistics.median(ratios), 3) if ratios else None,  # reference time / ours
    }


def time_to_accuracy(results: list[dict]) -> dict | None:
    """Training wall time (tokenizing, model load and scoring left out) until each run's first scored point
    reaches the reference's mean final F1, both sides decoded by our rule; None where a run never does.

    About half the reference's seeds end below their own mean, so that target can leave no seed where both
    sides reach it; `common` adds the lowest final F1 of any run, which every run reaches, so a ratio
    always exists (secondary: it is read off the same curves)."""
    finals = [r["f1_same_rule"] for r in results if r["side"] == "reference"]
    if not finals:
        return None
    target = round(sum(finals) / len(finals), 3)
    rows = [{"side": r["side"], "seed": r["seed"], **c} for r in results for c in r["curve"]]
    print(
        f"\nheld-out F1 (our rule) against training time; target: the reference's mean final F1 {target:.2f}"
    )
    common.print_table(
        rows,
        [
            ("side", "side"),
            ("seed", "seed"),
            ("step", "step"),
            ("train_s", "train s"),
            ("f1_same_rule", "F1"),
        ],
    )
    result = _times_to(results, target)
    for r in results:
        r["time_to_target_s"] = result["per_seed_s"][r["seed"]][r["side"]]
    result["common"] = _times_to(results, min(r["curve"][-1]["f1_same_rule"] for r in results))
    return result


def worker(a: argparse.Namespace) -> None:
    work = tempfile.mkdtemp(prefix=f"{a.worker}-", dir=a.work_dir)
    result = (run_ours if a.worker == "ours" else run_reference)(a, work)
    examples = read_examples(a.eval_file)
    scores = squad_v1({e["id"]: e["answers"]["text"] for e in examples}, result.pop("predictions"))
    common.emit(
        {
            "side": a.worker,
            "seed": a.seed,
            **{k: round(v, 3) for k, v in scores.items()},
            **result,
            "peak_rss_mb": common.peak_rss_mb(),
        }
    )


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precision", choices=["32", "bf16"], default="bf16")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument(
        "--seeds", type=int, default=3, help="runs with seeds 0..N-1 (head init, data order, dropout)"
    )
    p.add_argument(
        "--first-seed", type=int, default=0, help="start at this seed (add seeds to a recorded run)"
    )
    p.add_argument(
        "--group-by-length",
        nargs="?",
        const=True,
        default=False,
        type=lambda v: v.lower() == "true",
        help="both sides: length-grouped batches",
    )
    p.add_argument("--reference-padding", choices=["dynamic", "max_length"], default="dynamic")
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="both sides: score the weights every N optimizer steps too, for time-to-accuracy",
    )
    common.add_split_arguments(p)
    p.add_argument(
        "--sides", default="ours,reference", help="run only these (e.g. to redo one side of a recorded run)"
    )
    for hidden in (
        "--worker",
        "--model-dir",
        "--train-file",
        "--eval-file",
        "--seed",
        "--steps",
        "--warmup-steps",
    ):
        p.add_argument(
            hidden,
            help=argparse.SUPPRESS,
            type=int if hidden in ("--seed", "--steps", "--warmup-steps") else str,
        )
    a = p.parse_args(argv)
    from lightning_qa.hardware import cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    if not set(a.sides.split(",")) <= {"ours", "reference"}:
        p.error(f"--sides: a comma-separated subset of ours,reference, not {a.sides!r}")
    if a.worker:
        return worker(a)

    results, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accuracy-parity-", dir=a.work_dir) as tmp:
        a.train_file, a.eval_file, n_train, n_eval = common.split_files(a, tmp)
        baseline = baseline_scores(read_examples(a.eval_file))
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            model_dir = common.build_pretrained_qa(os.path.join(tmp, f"model-seed{seed}"), seed)
            if seed == a.first_seed:
                windows = common.count_windows(model_dir, a.train_file)
                steps = max(2, math.ceil(a.epochs * windows / a.batch_size))
                warmup = int(a.warmup_ratio * steps)
            options = {
                "model-dir": model_dir,
                "train-file": a.train_file,
                "eval-file": a.eval_file,
                "seed": seed,
            }
            options |= {"steps": steps, "warmup-steps": warmup, "work-dir": tmp}
            options |= {k.replace("_", "-"): getattr(a, k) for k in SAME}
            argv = [str(HERE / "accuracy_parity.py"), *common.flags(options)]
            for side in a.sides.split(","):
                print(f"seed {seed}: {side} ...", file=sys.stderr, flush=True)
                results.append(
                    common.run_worker([*argv, "--worker", side], os.path.join(tmp, f"{side}-{seed}.log"))
                )

    for r in results:  # both sides decoded by one rule (ours), so the comparison is of training alone
        if r["side"] == "ours":  # the reference's worker decodes its logits by our rule too
            r["f1_same_rule"], r["exact_match_same_rule"] = r["f1"], r["exact_match"]
    keys = ("exact_match", "f1", "exact_match_same_rule", "f1_same_rule", "fit_s", "eval_s")
    mean = {
        side: {k: round(sum(r[k] for r in rs) / len(rs), 3) for k in keys}
        | {"f1_spread": round(max(r["f1_same_rule"] for r in rs) - min(r["f1_same_rule"] for r in rs), 3)}
        for side in ("ours", "reference")
        if (rs := [r for r in results if r["side"] == side])
    }
    print(
        f"\nMiniLM-L6 + QA head, {n_train} training questions ({windows} windows), {n_eval} evaluation questions; "
        f"{steps} steps of {a.batch_size} ({a.epochs:g} epoch(s)), lr {a.learning_rate:g}, warm-up {warmup} steps, "
        f"precision {a.precision}, group_by_length {a.group_by_length}, reference padding "
        f"{'dynamic' if a.group_by_length else a.reference_padding}"
    )
    common.print_table(
        results,
        [
            ("side", "side"),
            ("seed", "seed"),
            ("exact_match", "EM"),
            ("f1", "F1"),
            ("f1_same_rule", "F1, our rule"),
            ("fit_s", "fit/train s"),
            ("eval_s", "eval s"),
            ("train_samples_per_s", "train samples/s"),
            ("peak_rss_mb", "peak RSS MiB"),
        ],
    )
    print(
        f"trivial baseline (first sentence of the context): EM {baseline['exact_match']:.2f}, F1 {baseline['f1']:.2f}"
    )
    if len(mean) == 2:
        print(
            f"ours - reference, both decoded by our rule (mean over {a.seeds} seed(s)): "
            f"EM {mean['ours']['exact_match_same_rule'] - mean['reference']['exact_match_same_rule']:+.2f}, "
            f"F1 {mean['ours']['f1_same_rule'] - mean['reference']['f1_same_rule']:+.2f} "
            f"(F1 spread over seeds: ours {mean['ours']['f1_spread']:.2f}, reference {mean['reference']['f1_spread']:.2f}); "
            f"each side's own rule: F1 {mean['ours']['f1'] - mean['reference']['f1']:+.2f}"
        )
    time_to_target = time_to_accuracy(results) if a.eval_every else None
    summary = {
        "benchmark": "accuracy_parity",
        "precision": a.precision,
        "epochs": a.epochs,
        "seeds": a.seeds,
        "group_by_length": a.group_by_length,
        "learning_rate": a.learning_rate,
        "batch_size": a.batch_size,
        "steps": steps,
        "warmup_steps": warmup,
        "train_questions": n_train,
        "train_windows": windows,
        "eval_questions": n_eval,
        "baseline_first_sentence": {k: round(v, 3) for k, v in baseline.items()},
        "mean": mean,
        "time_to_accuracy": time_to_target,
        "runs": results,
    }
    return common.print_summary(summary, t0)


if __name__ == "__main__":
    main()
