"""`QAPredictor` against transformers 4.57's `pipeline("question-answering")`: same answers, how much faster.

The old pipeline runs in its own virtual environment, made on first use by `ensure_venv` (also the parity
test's): `python -m venv --system-site-packages` + `pip install transformers==4.57.6 tokenizers==0.22.2
"huggingface_hub<1.0"`, so it reuses the installed torch; kept in ~/.cache/lightning_qa/tf457-venv (or
$LIGHTNING_QA_TF457_VENV, or `--venv`; $LIGHTNING_QA_TF457_PYTHON names a ready python instead). This same
file drives it in `--worker` mode (it imports only torch and transformers there). Our predictor runs here,
with decoding="pipeline" and every option given. Both read the same model directory and answer the first
`--questions` questions of SQuAD v1.1 dev with the same settings (the old pipeline's defaults: top_k 1,
doc_stride 128, max_answer_len 15, max_seq_len 384, max_question_len 64, align_to_words, no null answer).

Models (`--models`):
  random     DistilBertConfig() defaults (distilbert-base shape) with fixed random weights (seed 0) and the
             MiniLM (uncased BERT) vocabulary: flat, close scores, the hardest case for ties.
  finetuned  the pretrained MiniLM-L6 encoder with a QA head fine-tuned by `lightning_qa fit`
             (`--finetune-steps` steps, bf16-mixed, on the first 36 articles of dev-v1.1; or `--finetuned DIR`).
  tiny       the same random DistilBERT at the quickstart model's size (dim 64, 2 layers): the model
             costs little, so the pipeline's own overhead shows.

Reported:
  parity      answers identical (text, start, end) per batch size; the largest score difference where
              they agree; each difference classified as a near-tie (the old answer is our runner-up, with
              a score gap under 1e-6) or listed.
  throughput  questions/s over all the questions at each `--batch-sizes` (windows per forward pass, both sides),
              the fastest of `--repeat` runs; ours at our best and at our default batch size against the old
              pipeline at its fastest. With `--rounds N` both sides run N times interleaved (the order
              swapped each round): seconds are per-round medians and each ratio the median of its
              per-round ratios (one run on this shared VM varied by 20%).
  latency     one question per call, p50/p95 over `--latency-requests` questions (after a warm-up), every
              round's calls pooled; the p50 ratio is the median of the per-round ratios.
  bf16        (finetuned) predictor dtype bf16 against the old pipeline in fp32 and in bf16 (torch_dtype),
              its agreement with fp32 and SQuAD EM/F1 at the largest batch size, throughput at every batch
              size, ours at our best against the old pipeline at its best (bf16 and fp32), in `--rounds`
              interleaved rounds as fp32 (ratios: medians of the per-round ratios).
  compile     (`--compile`) QAPredictor(compile=True) at the largest batch size: throughput after the
              first call (which compiles, timed apart), agreement with the old pipeline and with eager.

    python benchmarks/pipeline_parity.py                       # 1,000 questions, all models, bs 1-32
    python benchmarks/pipeline_parity.py --models finetuned --finetuned DIR --rounds 3 --repeat 1
    python benchmarks/pipeline_parity.py --questions 50 --latency-requests 20 --finetune-steps 20  # smoke
    python benchmarks/pipeline_parity.py --models tiny --compile --no-bf16

Prints a table and one JSON line. Timings share the machine with whatever else runs: compare the two sides
of one run, on a quiet machine for published numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
OLD_VERSION = "4.57.6"
DEFAULT_BATCH = 8  # QAPredictor's windows per forward pass on the CPU
OLD_TOKENIZERS = "0.22.2"
# huggingface_hub 1.x (which transformers 5 brings) is too new for transformers 4.57
OLD_REQUIREMENTS = (f"transformers=={OLD_VERSION}", f"tokenizers=={OLD_TOKENIZERS}", "huggingface_hub<1.0")
VENV_ENV = "LIGHTNING_QA_TF457_VENV"  # where the venv is kept (default ~/.cache/lightning_qa/tf457-venv)
PYTHON_ENV = "LIGHTNING_QA_TF457_PYTHON"  # an existing python with transformers 4.57.6 to use instead
INSTALLED_MARKER = "lightning_qa-installed.json"
SETTINGS = {
    "top_k": 1,
    "doc_stride": 128,
    "max_answer_len": 15,
    "max_seq_len": 384,
    "max_question_len": 64,
    "handle_impossible_answer": False,
    "align_to_words": True,
}
NEAR_TIE = 1e-6
SCORE_TOL = 1e-4


# -- the old pipeline's side (runs in the transformers 4.57 venv: torch and transformers only) ---------------
def worker(config_file: str, out_file: str) -> None:
    import torch
    import transformers
    from transformers import pipeline

    transformers.logging.set_verbosity_error()
    torch.set_float32_matmul_precision("high")  # as `lightning_qa` sets it (TF32 on GPUs; no-op on CPUs)
    cfg = json.loads(Path(config_file).read_text())
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    qa = pipeline(
        "question-answering", model=cfg["model_dir"], tokenizer=cfg["model_dir"], device=-1, torch_dtype=dtype
    )
    qs = [q["question"] for q in cfg["questions"]]
    cs = [q["context"] for q in cfg["questions"]]
    if "answer_sets" in cfg:  # answers only, under each of several settings (the parity test)
        sets = [qa(question=qs, context=cs, batch_size=cfg["batch_size"], **s) for s in cfg["answer_sets"]]
        Path(out_file).write_text(json.dumps({"answer_sets": sets}))
        return
    settings = cfg["settings"]

    def answer(questions, contexts, batch_size):
        out = qa(question=questions, context=contexts, batch_size=batch_size, **settings)
        return [out] if isinstance(out, dict) else out  # one question in a list comes back as a dict

    result = _timed_runs(answer, qs, cs, cfg["batch_sizes"], cfg["repeat"])
    result["latency_ms"] = _latency(
        lambda q, c: qa(question=q, context=c, **settings), qs, cs, cfg["latency"]
    )
    result["latency_p50_ms"] = percentile(result["latency_ms"], 0.5)
    Path(out_file).write_text(json.dumps(result))


def _timed_runs(answer: Any, qs: list[str], cs: list[str], batch_sizes: list[int], repeat: int) -> dict:
    """Both sides' timing: per batch size a warm-up call on 8 questions (with compile=True it compiles;
    its time is kept apart), then the fastest of `repeat` runs over all the questions."""
    import tokenizers
    import torch
    import transformers

    result: dict[str, Any] = {
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "threads": torch.get_num_threads(),
        "runs": {},
        "warm_up_s": 0.0,
    }
    warm = min(8, len(qs))
    for bs in batch_sizes:
        t = time.perf_counter()
        answer(qs[:warm], cs[:warm], bs)
        result["warm_up_s"] = max(result["warm_up_s"], time.perf_counter() - t)
        answers, seconds = _best_of(repeat, lambda bs=bs: answer(qs, cs, bs))
        result["runs"][str(bs)] = {"answers": answers, "seconds": seconds}
    return result


def _best_of(repeat: int, run: Any) -> tuple[list, float]:
    """The first run's answers and the shortest time of `repeat` runs: a run of 1,000 questions takes
    under a second with small models, where one run's time is mostly noise."""
    answers, best = None, float("inf")
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t)
        answers = out if answers is None else answers
    return answers, best


def _latency(call, questions: list[str], contexts: list[str], n: int) -> list[float]:
    """Milliseconds of `n` single-question calls (the first questions), after 3 warm-up calls."""
    if n <= 0:
        return []
    for i in range(min(3, len(questions))):
        call(questions[i], contexts[i])
    times = []
    for i in range(min(n, len(questions))):
        t = time.perf_counter()
        call(questions[i], contexts[i])
        times.append((time.perf_counter() - t) * 1000)
    return times


class VenvUnavailable(RuntimeError):
    """The old pipeline's venv could not be made here (no network, no matching wheel): a reason to skip."""


def default_venv() -> Path:
    """$LIGHTNING_QA_TF457_VENV, else ~/.cache/lightning_qa/tf457-venv: kept between runs, as CI caches it."""
    if os.environ.get(VENV_ENV):
        return Path(os.environ[VENV_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lightning_qa" / "tf457-venv"


def ensure_venv(venv: Path | None = None) -> Path:
    """The python of a venv with transformers 4.57.6 and this interpreter's torch (made on first use).

    Without `venv`, $LIGHTNING_QA_TF457_PYTHON, when set, is used as it is (after checking its versions);
    else the venv is $LIGHTNING_QA_TF457_VENV or ~/.cache/lightning_qa/tf457-venv. It is made with
    --system-site-packages, so the installed torch serves both sides (no second torch download; the same
    kernels on both sides), and pip adds only OLD_REQUIREMENTS and what they need that the system lacks or
    has at an incompatible version. A marker written last records a finished install; a file lock makes
    parallel test processes wait for one install instead of racing. Raises VenvUnavailable (with pip's
    first error line) when the venv cannot be made or installed."""
    if venv is None and os.environ.get(PYTHON_ENV):
        python = Path(os.environ[PYTHON_ENV])
        _check_venv(python)
        return python
    from filelock import FileLock

    venv = Path(venv or default_venv())
    python, marker = venv / "bin" / "python", venv / INSTALLED_MARKER
    expected = _install_record()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{venv}.lock", timeout=1200):
        if marker.exists() and json.loads(marker.read_text()) == expected:
            return python
        shutil.rmtree(venv, ignore_errors=True)  # unfinished, or made for other versions
        print(f"Creating {venv} with {' '.join(OLD_REQUIREMENTS)} (once, about a minute)...", flush=True)
        try:
            _run_or_raise([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
            if sys.prefix != sys.base_prefix:  # we run in a venv: its torch is not in the system site
                site = next((venv / "lib").glob("python*/site-packages"))
                (site / "_lightning_qa_host_torch.pth").write_text(expected["torch_site"] + "\n")
            pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"]
            _run_or_raise([*pip, *OLD_REQUIREMENTS])
        except VenvUnavailable:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        _check_venv(python)
        marker.write_text(json.dumps(expected))
    return python


def _install_record() -> dict:
    """What an install is made for: reused only while the requirements, python and torch stay the same."""
    import torch

    return {
        "requirements": list(OLD_REQUIREMENTS),
        "python": sys.version,
        "torch": torch.__version__,
        "torch_site": str(Path(torch.__file__).resolve().parents[1]),
    }


def _run_or_raise(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_worker_env())
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        first = next((line for line in lines if line.startswith("ERROR")), lines[0] if lines else "")
        raise VenvUnavailable(f"`{' '.join(cmd[:4])} ...` failed ({proc.returncode}): {first}")


def _check_venv(python: Path) -> None:
    """transformers 4.57.6, tokenizers 0.22.2 and this interpreter's own torch, or a RuntimeError."""
    import torch

    code = (
        "import json, pathlib, tokenizers, torch, transformers; print(json.dumps([transformers.__version__, "
        "tokenizers.__version__, torch.__version__, str(pathlib.Path(torch.__file__).resolve())]))"
    )
    proc = subprocess.run([str(python), "-s", "-c", code], capture_output=True, text=True, env=_worker_env())
    found = json.loads(proc.stdout) if proc.returncode == 0 else proc.stderr.strip()[-2000:]
    wanted = [OLD_VERSION, OLD_TOKENIZERS, torch.__version__, str(Path(torch.__file__).resolve())]
    if found != wanted:
        raise RuntimeError(f"{python}: wanted transformers, tokenizers, torch {wanted}, found {found}")


def _worker_env() -> dict[str, str]:
    """Our environment without PYTHONPATH: the old side must not import this checkout's packages."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_old(
    python: Path,
    model_dir: str,
    questions: list[dict],
    batch_sizes: list[int],
    latency: int,
    dtype: str,
    threads: int | None,
    work: Path,
    repeat: int = 3,
) -> dict:
    config = {
        "model_dir": model_dir,
        "questions": [{"question": q["question"], "context": q["context"]} for q in questions],
        "settings": SETTINGS,
        "batch_sizes": batch_sizes,
        "latency": latency,
        "dtype": dtype,
        "threads": threads,
        "repeat": repeat,
    }
    return _run_worker(python, config, work)


def old_readable(hf_model: Path, work: Path) -> Path:
    """A copy of the exported model that transformers 4.57 can load: transformers 5 names a plain
    `tokenizer.json` tokenizer class "TokenizersBackend", which 4.x does not know."""
    out = work / "hf_model_for_4.57"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(hf_model, out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


def old_answers(
    python: Path, model_dir: str, questions: list[dict], settings: list[dict], work: Path, batch_size: int
) -> list[list]:
    """The old pipeline's answers to all `questions` under each of `settings` (one list per settings),
    untimed, from one worker process (the parity test)."""
    config = {
        "model_dir": model_dir,
        "questions": [{"question": q["question"], "context": q["context"]} for q in questions],
        "answer_sets": settings,
        "batch_size": batch_size,
        "dtype": "float32",
    }
    return _run_worker(python, config, work)["answer_sets"]


def _run_worker(python: Path, config: dict, work: Path) -> dict:
    config_file, out_file = work / "worker_in.json", work / "worker_out.json"
    config_file.write_text(json.dumps(config))
    out_file.unlink(missing_ok=True)
    proc = subprocess.run(
        [str(python), "-s", str(Path(__file__).resolve()), "--worker", str(config_file), str(out_file)],
        capture_output=True,
        text=True,
        cwd=str(work),
        env=_worker_env(),
    )
    if proc.returncode != 0 or not out_file.exists():
        raise RuntimeError(f"old pipeline worker failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out_file.read_text())


# -- our side ----------------------------------------------------------------------------------------------
def run_ours(
    model_dir: str,
    questions: list[dict],
    batch_sizes: list[int],
    latency: int,
    dtype: str | None,
    threads: int | None,
    compile: bool = False,
    repeat: int = 3,
    predictor: Any = None,
) -> dict:
    import torch

    from lightning_qa import QAPredictor

    if threads:
        torch.set_num_threads(threads)
    # the old rule and every option spelled out: QAPredictor's own defaults may change, the old pipeline's not
    predictor = predictor or QAPredictor(
        model_dir, device="cpu", dtype=dtype, compile=compile, decoding="pipeline", batch_size=8, **SETTINGS
    )
    qs = [q["question"] for q in questions]
    cs = [q["context"] for q in questions]

    def answer(questions, contexts, batch_size):
        return predictor(question=questions, context=contexts, batch_size=batch_size)

    result = _timed_runs(answer, qs, cs, batch_sizes, repeat)
    result["predictor"] = predictor
    result["latency_ms"] = _latency(lambda q, c: predictor(question=q, context=c), qs, cs, latency)
    result["latency_p50_ms"] = percentile(result["latency_ms"], 0.5)
    return result


def interleaved_rounds(
    args: Any,
    python: Path,
    work: Path,
    model_dir: str,
    questions: list[dict],
    batch_sizes: list[int],
    dtype: str | None,
) -> dict[str, list[dict]]:
    """Both sides `args.rounds` times, the order swapped every other round (this VM drifts by minutes);
    ours keeps its first round's predictor. Single-request latency is timed in fp32 only."""
    rounds: dict[str, list[dict]] = {"old": [], "ours": []}
    latency = 0 if dtype else args.latency_requests
    for r in range(args.rounds):
        for side in ("old", "ours") if r % 2 == 0 else ("ours", "old"):
            if side == "old":
                old_dtype = "bfloat16" if dtype else "float32"
                run = run_old(
                    python,
                    model_dir,
                    questions,
                    batch_sizes,
                    latency,
                    old_dtype,
                    args.threads,
                    work,
                    args.repeat,
                )
            else:
                reuse = rounds["ours"][0]["predictor"] if rounds["ours"] else None
                run = run_ours(
                    model_dir,
                    questions,
                    batch_sizes,
                    latency,
                    dtype,
                    args.threads,
                    repeat=args.repeat,
                    predictor=reuse,
                )
            rounds[side].append(run)
    return rounds


def merge_rounds(rounds: list[dict]) -> dict:
    """One side's interleaved rounds as one result: the first round's answers, the median seconds per
    batch size, every round's single-request latencies."""
    merged = dict(rounds[0])
    merged["runs"] = {
        bs: {**run, "seconds": statistics.median(r["runs"][bs]["seconds"] for r in rounds)}
        for bs, run in rounds[0]["runs"].items()
    }
    merged["latency_ms"] = [ms for r in rounds for ms in r["latency_ms"]]
    return merged


def best_seconds(result: dict, batch_sizes: list[int]) -> float:
    """The run's time at its fastest batch size."""
    return min(result["runs"][str(b)]["seconds"] for b in batch_sizes)


def fp32_ratios(
    name: str, old_rounds: list[dict], ours_rounds: list[dict], old: dict, ours: dict, batch_sizes: list[int]
) -> dict[str, float]:
    """ours / old per batch size, ours at our best and at our default against the old pipeline at its
    fastest batch size (named from the median seconds), and single-request p50 latency (old / ours):
    each the median of the per-round ratios (the rounds ran interleaved)."""

    def median_ratio(of_round) -> float:
        return statistics.median(of_round(o, u) for o, u in zip(old_rounds, ours_rounds, strict=True))

    def seconds(result: dict, bs: int) -> float:
        return result["runs"][str(bs)]["seconds"]

    ratios = {
        f"{name} fp32 batch {bs}": median_ratio(lambda o, u, bs=bs: seconds(o, bs) / seconds(u, bs))
        for bs in batch_sizes
    }
    old_best = min(batch_sizes, key=lambda b: seconds(old, b))
    ours_best = min(batch_sizes, key=lambda b: seconds(ours, b))
    ratios[f"{name} fp32 ours best (b{ours_best}) / old best (b{old_best})"] = median_ratio(
        lambda o, u: best_seconds(o, batch_sizes) / best_seconds(u, batch_sizes)
    )
    if DEFAULT_BATCH in batch_sizes:
        ratios[f"{name} fp32 ours default (b{DEFAULT_BATCH}) / old best (b{old_best})"] = median_ratio(
            lambda o, u: best_seconds(o, batch_sizes) / seconds(u, DEFAULT_BATCH)
        )
    if old["latency_ms"] and ours["latency_ms"]:
        ratios[f"{name} fp32 1 request p50 latency (old / ours)"] = median_ratio(
            lambda o, u: o["latency_p50_ms"] / u["latency_p50_ms"]
        )
    return ratios


# -- comparing ---------------------------------------------------------------------------------------------
def same(a: dict, b: dict) -> bool:
    return (a["answer"], a["start"], a["end"]) == (b["answer"], b["start"], b["end"])


def compare(
    ours: list[dict], old: list[dict], questions: list[dict], predictor: Any, batch_size: int
) -> dict:
    """Identical answers, score differences where they agree, and each difference explained or listed."""
    agree = [i for i, (a, b) in enumerate(zip(ours, old, strict=True)) if same(a, b)]
    differ = [i for i in range(len(ours)) if not same(ours[i], old[i])]
    score_diffs = [abs(ours[i]["score"] - old[i]["score"]) for i in agree]
    near_ties, unexplained = [], []
    if differ:  # our ranking of the same pool of spans (top 5), to see where the old answer stands
        ranked = predictor(
            question=[questions[i]["question"] for i in differ],
            context=[questions[i]["context"] for i in differ],
            top_k=5,
            n_candidates=2 * SETTINGS["top_k"] + 10,
            batch_size=batch_size,
        )
        for i, ours_ranked in zip(differ, ranked, strict=True):
            top, theirs = ours[i], old[i]
            runner = next((a for a in ours_ranked if same(a, theirs)), None)
            gap = top["score"] - runner["score"] if runner else None
            entry = {
                "index": i,
                "id": questions[i]["id"],
                "ours": top,
                "old": theirs,
                "old_answer_in_our_ranking": runner,
                "gap": gap,
            }
            (near_ties if gap is not None and abs(gap) < NEAR_TIE else unexplained).append(entry)
    return {
        "batch_size": batch_size,
        "questions": len(ours),
        "identical": len(agree),
        "identical_fraction": len(agree) / len(ours) if ours else 1.0,
        "max_score_diff": max(score_diffs, default=0.0),
        "score_diffs_over_tol": sum(d > SCORE_TOL for d in score_diffs),
        "near_ties": near_ties,
        "unexplained": unexplained,
    }


def agreement(a: list[dict], b: list[dict]) -> float:
    return sum(x["answer"] == y["answer"] for x, y in zip(a, b, strict=True)) / max(len(a), 1)


def squad_scores(answers: list[dict], questions: list[dict]) -> dict[str, float]:
    from lightning_qa.metrics import squad_v1

    golds = {q["id"]: q["gold"] for q in questions}
    scores = squad_v1(golds, {q["id"]: a["answer"] for q, a in zip(questions, answers, strict=True)})
    return {"exact_match": round(scores["exact_match"], 2), "f1": round(scores["f1"], 2)}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- models and data ---------------------------------------------------------------------------------------
def load_questions(path: Path, n: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    out = []
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                gold = [a["text"] for a in qa["answers"]]
                out.append(
                    {"id": qa["id"], "question": qa["question"], "context": para["context"], "gold": gold}
                )
                if len(out) == n:
                    return out
    return out


def random_distilbert(work: Path, shape: str = "base") -> str:
    """DistilBertConfig() defaults (or the tiny shape), seed 0, MiniLM's vocabulary; its tokenizer feeds only
    the inputs DistilBERT takes (the old pipeline passes the tokenizer's `model_input_names` to the model)."""
    import common

    out = work / f"distilbert-{shape}-random"
    if not (out / "model.safetensors").exists():
        common.build_random_distilbert(str(out), shape, seed=0)
    return str(out)


def finetuned_minilm(work: Path, data: Path, steps: int, log: Path) -> str:
    """MiniLM-L6 + QA head, `lightning_qa fit` for `steps` steps (bf16-mixed) on dev-v1.1's first 36 articles."""
    import common

    out = work / f"minilm-finetuned-{steps}"
    if (out / "model.safetensors").exists():
        return str(out)
    with open(data, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    train_file = common.write_squad(articles[:36], work / "train-36-articles.json")
    val_file = common.write_squad(
        articles[36:37], work / "validation-article-37.json"
    )  # scored once, at the end
    runs = work / f"ft-runs-{steps}"
    shutil.rmtree(runs, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "lightning_qa.cli", "fit",
        "--seed_everything", "0",
        "--model.model_name_or_path", common.minilm_dir(),
        "--model.learning_rate", "1e-4",
        "--model.warmup_ratio", "0.1",
        "--data.train_file", train_file,
        "--data.validation_file", val_file,
        "--data.max_eval_samples", "100",
        "--trainer.val_check_interval", str(steps),
        "--trainer.num_sanity_val_steps", "0",
        "--data.train_batch_size", "16",
        "--data.max_seq_length", "256",
        "--data.doc_stride", "96",
        "--data.cache_dir", str(work / "cache"),
        "--trainer.max_steps", str(steps),
        "--trainer.precision", "bf16-mixed",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(runs),
    ]  # fmt: skip
    print(f"Fine-tuning MiniLM for {steps} steps (log: {log})...", flush=True)
    t = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=str(ROOT))
    exported = runs / "version_0" / "hf_model"
    if proc.returncode != 0 or not (exported / "config.json").exists():  # a SIGTERM'd fit exits 0, unexported
        raise RuntimeError(f"fine-tuning failed or was stopped (no {exported}), see {log}")
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)
    tmp = work / f".minilm-finetuned-{steps}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(exported, tmp)
    common.save_tokenizer(str(tmp))  # the cleaned tokenizer (no fixed 128-token padding/truncation)
    os.replace(tmp, out)
    return str(out)


# -- main --------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument(
        "--models", default="random,finetuned,tiny", help="comma list of: random, finetuned, tiny"
    )
    parser.add_argument(
        "--batch-sizes",
        default="1,4,8,16,32",
        help="windows per forward pass, comma list (the old pipeline is rated at its fastest)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per batch size; the fastest counts")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="fp32 runs of both sides, interleaved (order swapped each round); ratios are per-round medians",
    )
    parser.add_argument("--latency-requests", type=int, default=200, help="single-question calls timed")
    parser.add_argument(
        "--venv",
        default=None,
        help=f"venv with transformers {OLD_VERSION}, made when missing (default ${VENV_ENV} or "
        f"~/.cache/lightning_qa/tf457-venv; ${PYTHON_ENV} names a python to use instead)",
    )
    parser.add_argument("--work-dir", default="/tmp/pipeline_parity", help="models, logs, worker files")
    parser.add_argument("--finetuned", default=None, help="reuse this fine-tuned QA model directory")
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 runs")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also run QAPredictor(compile=True) at the largest batch size (warm-up, which compiles, untimed)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads on both sides")
    parser.add_argument("--details", default=None, help="write every answer and difference to this JSON")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from lightning_qa.hardware import cpu_line, native_bf16

    print(cpu_line(), flush=True)  # the figures below depend on it
    if args.worker:
        worker(*args.worker)
        return
    if not args.no_bf16 and not native_bf16():  # bf16 autocast is ~5x slower than fp32 without it
        print("bf16: not measured: no native bf16 on this CPU (no AMX, no AVX-512 BF16)", flush=True)
        args.no_bf16 = True
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",") if x]
    models = [m for m in args.models.split(",") if m]
    unknown = set(models) - {"random", "finetuned", "tiny"}
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}")
    try:
        python = ensure_venv(Path(args.venv) if args.venv else None)
    except VenvUnavailable as e:
        raise SystemExit(f"no transformers {OLD_VERSION} venv: {e}") from e
    questions = load_questions(Path(args.data), args.questions)
    print(f"{len(questions)} questions from {args.data}; old pipeline: {python}", flush=True)

    summary: dict[str, Any] = {
        "benchmark": "pipeline_parity",
        "questions": len(questions),
        "settings": SETTINGS,
        "repeat": args.repeat,
        "rounds": args.rounds,
        "parity": [],
        "speed": [],
        "bf16": [],
        "bf16_not_measured": None if native_bf16() else "no native bf16",
    }
    details: dict[str, Any] = {}
    rows, speed_rows, bf16_rows = [], [], []
    for name in models:
        if name in ("random", "tiny"):
            model_dir = random_distilbert(work, "base" if name == "random" else "tiny")
        else:
            model_dir = args.finetuned or finetuned_minilm(
                work, Path(args.data), args.finetune_steps, work / "finetune.log"
            )
        print(f"[{name}] fp32, {args.rounds} round(s)...", flush=True)
        rounds = interleaved_rounds(args, python, work, model_dir, questions, batch_sizes, None)
        old, ours = merge_rounds(rounds["old"]), merge_rounds(rounds["ours"])
        summary.setdefault("versions", {"old": old["versions"], "ours": ours["versions"]})
        predictor = ours.pop("predictor")
        for bs in batch_sizes:
            a, b = ours["runs"][str(bs)]["answers"], old["runs"][str(bs)]["answers"]
            c = compare(a, b, questions, predictor, bs)
            c["model"] = name
            summary["parity"].append(c)
            rows.append(
                {
                    "model": name,
                    "bs": bs,
                    "identical": f"{c['identical']}/{c['questions']}",
                    "pct": 100 * c["identical_fraction"],
                    "max_score_diff": f"{c['max_score_diff']:.1e}",
                    "near_ties": len(c["near_ties"]),
                    "listed": len(c["unexplained"]),
                }
            )
            for side, result in (("old pipeline", old), ("QAPredictor", ours)):
                seconds = result["runs"][str(bs)]["seconds"]
                speed_rows.append(
                    {
                        "model": name,
                        "side": side,
                        "dtype": "fp32",
                        "bs": bs,
                        "q_per_s": len(questions) / seconds,
                    }
                )
        for side, result in (("old pipeline", old), ("QAPredictor", ours)):
            lat = result["latency_ms"]
            speed_rows.append(
                {
                    "model": name,
                    "side": side,
                    "dtype": "fp32",
                    "bs": "1 req",
                    "p50_ms": percentile(lat, 0.5) or "",
                    "p95_ms": percentile(lat, 0.95) or "",
                    "q_per_s": 1000 / statistics.mean(lat) if lat else "",
                }
            )
        summary["speed"] += [dict(r) for r in speed_rows if r["model"] == name]
        summary.setdefault("ratios", {}).update(
            fp32_ratios(name, rounds["old"], rounds["ours"], old, ours, batch_sizes)
        )
        summary.setdefault("per_round", {})[name] = {
            side: [
                {"seconds": {b: x["seconds"] for b, x in r["runs"].items()}, "p50_ms": r["latency_p50_ms"]}
                for r in runs
            ]
            for side, runs in rounds.items()
        }
        details[name] = {"ours": ours["runs"], "old": old["runs"]}

        if args.compile:
            bs = max(batch_sizes)
            print(f"[{name}] QAPredictor fp32, compile=True...", flush=True)
            compiled = run_ours(model_dir, questions, [bs], 0, None, args.threads, True, args.repeat)
            compiled.pop("predictor")
            answers, seconds = compiled["runs"][str(bs)]["answers"], compiled["runs"][str(bs)]["seconds"]
            entry = {
                "model": name,
                "batch_size": bs,
                "compile_warm_up_s": compiled["warm_up_s"],
                "q_per_s": len(questions) / seconds,
                "same_as_old": agreement(answers, old["runs"][str(bs)]["answers"]),
                "same_as_eager": agreement(answers, ours["runs"][str(bs)]["answers"]),
            }
            summary.setdefault("compile", []).append(entry)
            summary["ratios"][f"{name} fp32 batch {bs} compiled"] = old["runs"][str(bs)]["seconds"] / seconds
            speed_rows.append(
                {
                    "model": name,
                    "side": "QAPredictor compiled",
                    "dtype": "fp32",
                    "bs": bs,
                    "q_per_s": entry["q_per_s"],
                }
            )
            summary["speed"].append(dict(speed_rows[-1]))
            details[name]["compiled"] = compiled["runs"]

        if name == "finetuned" and not args.no_bf16:
            bs = max(batch_sizes)
            print(f"[{name}] bf16: old pipeline (torch_dtype bf16), QAPredictor (dtype bf16)...", flush=True)
            rounds16 = interleaved_rounds(args, python, work, model_dir, questions, batch_sizes, "bf16")
            old16, ours16 = merge_rounds(rounds16["old"]), merge_rounds(rounds16["ours"])
            ours16.pop("predictor")
            o32, p32 = old["runs"][str(bs)]["answers"], ours["runs"][str(bs)]["answers"]
            o16, p16 = old16["runs"][str(bs)]["answers"], ours16["runs"][str(bs)]["answers"]
            entry = {
                "model": name,
                "batch_size": bs,
                "ours_bf16_vs_ours_fp32": agreement(p16, p32),
                "ours_bf16_vs_old_fp32": agreement(p16, o32),
                "ours_bf16_vs_old_bf16": agreement(p16, o16),
                "old_bf16_vs_old_fp32": agreement(o16, o32),
                "squad": {
                    "ours_fp32": squad_scores(p32, questions),
                    "ours_bf16": squad_scores(p16, questions),
                    "old_fp32": squad_scores(o32, questions),
                    "old_bf16": squad_scores(o16, questions),
                },
                "q_per_s": {
                    "ours_bf16": len(questions) / ours16["runs"][str(bs)]["seconds"],
                    "old_bf16": len(questions) / old16["runs"][str(bs)]["seconds"],
                },
            }
            summary["bf16"].append(entry)
            summary["ratios"][f"{name} bf16 batch {bs} vs old fp32"] = (
                entry["q_per_s"]["ours_bf16"] * old["runs"][str(bs)]["seconds"] / len(questions)
            )
            summary["ratios"][f"{name} bf16 batch {bs} vs old bf16"] = (
                entry["q_per_s"]["ours_bf16"] / entry["q_per_s"]["old_bf16"]
            )
            for run, answers, result in (
                ("old pipeline fp32", o32, old),
                ("old pipeline bf16", o16, old16),
                ("QAPredictor fp32", p32, ours),
                ("QAPredictor bf16", p16, ours16),
            ):
                bf16_rows.append(
                    {
                        "run": run,
                        "same_as_our_fp32": 100 * agreement(answers, p32),
                        "same_as_old_fp32": 100 * agreement(answers, o32),
                        **squad_scores(answers, questions),
                        "q_per_s": len(questions) / result["runs"][str(bs)]["seconds"],
                    }
                )
            # best against best: ours in bf16 at our fastest batch size, the old pipeline at its fastest in
            # bf16 and in fp32 (every batch size timed on both sides; fastest named from the median seconds),
            # each ratio the median of the per-round ratios
            fastest = {
                k: min(batch_sizes, key=lambda b, r=r: r["runs"][str(b)]["seconds"])
                for k, r in (("ours16", ours16), ("old16", old16), ("old", old))
            }
            for label, peer_rounds in (("old bf16", rounds16["old"]), ("old fp32", rounds["old"])):
                peer = "old16" if label == "old bf16" else "old"
                summary["ratios"][
                    f"{name} bf16 ours best (b{fastest['ours16']}) / {label} best (b{fastest[peer]})"
                ] = statistics.median(
                    best_seconds(o, batch_sizes) / best_seconds(u, batch_sizes)
                    for o, u in zip(peer_rounds, rounds16["ours"], strict=True)
                )
            summary.setdefault("per_round_bf16", {})[name] = {
                side: [{b: x["seconds"] for b, x in r["runs"].items()} for r in runs]
                for side, runs in rounds16.items()
            }
            for side, result in (("old pipeline", old16), ("QAPredictor", ours16)):
                for b in batch_sizes:
                    speed_rows.append(
                        {
                            "model": name,
                            "side": side,
                            "dtype": "bf16",
                            "bs": b,
                            "q_per_s": len(questions) / result["runs"][str(b)]["seconds"],
                        }
                    )
            details[name]["bf16"] = {"ours": ours16["runs"], "old": old16["runs"]}

    _report(summary, rows, speed_rows, bf16_rows)
    if args.details:
        Path(args.details).write_text(json.dumps({"summary": summary, "answers": details}, indent=1))
    print(json.dumps(summary))


def _report(summary: dict, rows: list[dict], speed_rows: list[dict], bf16_rows: list[dict]) -> None:
    import common

    versions = summary.get("versions", {})
    print()
    for side, v in versions.items():
        print(f"{side}: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    print("\nAnswers (text, start, end) identical to the old pipeline's, same batch size:")
    common.print_table(
        rows,
        [("model", "model"), ("bs", "batch"), ("identical", "identical"), ("pct", "%"),
         ("max_score_diff", "max |score diff|"), ("near_ties", "near-ties"), ("listed", "other diffs")],
    )  # fmt: skip
    for c in summary["parity"]:
        for kind in ("near_ties", "unexplained"):
            for e in c[kind]:
                gap = "not in our top 5" if e["gap"] is None else f"gap {e['gap']:.2e}"
                print(
                    f"  {c['model']} bs={c['batch_size']} {kind[:-1].replace('_', '-')}: {e['id']}: "
                    f"ours {e['ours']['answer']!r} ({e['ours']['score']:.6g}), "
                    f"old {e['old']['answer']!r} ({e['old']['score']:.6g}); {gap}"
                )
    print("\nSpeed (questions/s; `1 req` = one question per call):")
    common.print_table(
        speed_rows,
        [("model", "model"), ("side", "side"), ("dtype", "dtype"), ("bs", "batch"), ("q_per_s", "q/s"),
         ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms")],
    )  # fmt: skip
    for c in summary.get("compile", []):
        print(
            f"  {c['model']} compiled (batch {c['batch_size']}): first call (compiles) {c['compile_warm_up_s']:.1f} s "
            f"untimed; same answer text as the old pipeline {100 * c['same_as_old']:.1f}%, as eager "
            f"{100 * c['same_as_eager']:.1f}%"
        )
    if bf16_rows:
        print(
            f"\nbf16 on the fine-tuned MiniLM (batch {summary['bf16'][0]['batch_size']}), % same answer text:"
        )
        common.print_table(
            bf16_rows,
            [("run", "run"), ("same_as_our_fp32", "= ours fp32 %"), ("same_as_old_fp32", "= old fp32 %"),
             ("exact_match", "EM"), ("f1", "F1"), ("q_per_s", "q/s")],
        )  # fmt: skip
    if summary.get("ratios"):
        print("\nQAPredictor / old pipeline:")
        for key, ratio in summary["ratios"].items():
            print(f"  {key}: {ratio:.2f}x")
    print()


if __name__ == "__main__":
    main()
