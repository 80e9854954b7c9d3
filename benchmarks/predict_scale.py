"""`lightning_qa predict` over 10k, 50k and 200k questions: questions/s and peak anonymous memory, ours
(the CLI and `QAPredictor.stream`, same settings) against transformers 4.57's pipeline fed a generator.

    python benchmarks/predict_scale.py                       # fits the quickstart model first (~1 min)
    python benchmarks/predict_scale.py --sizes 10000,50000 --ckpt checkpoints/version_0/best.ckpt

Questions are SQuAD v1.1 dev's, repeated with new ids, as JSON Lines. Each run is its own process, timed
whole (start-up included) and watched every 0.1 s for its peak RssAnon (anonymous memory: memory-mapped
model files and page cache do not count). Ours answers with the model's stored settings (logits rule, the
quickstart's 256/64 windows); the old pipeline with its own defaults (its rule, 384/128 windows) at its
fastest batch size on this model (--old-batch-size): the same questions, not the same arithmetic, so read
the q/s columns as "each as its users run it". Memory is the point: ours must stay flat as the input grows
(200k within 10% of 10k), where holding every answer (or window) grows with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"


# -- workers (the old one runs in the transformers 4.57 venv: standard library and transformers only) -------
def records(path: str):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def old_worker(model: str, questions: str, out: str, batch_size: int) -> None:
    from transformers import pipeline

    qa = pipeline("question-answering", model=model, tokenizer=model, device=-1)
    inputs = ({"question": r["question"], "context": r["context"]} for r in records(questions))
    with open(out, "w", encoding="utf-8") as f:
        for r, answer in zip(records(questions), qa(inputs, batch_size=batch_size), strict=True):
            f.write(json.dumps({"id": r["id"], **answer}) + "\n")


def predictor_worker(model: str, questions: str, out: str, batch_size: int, chunk_size: int) -> None:
    from lightning_qa import QAPredictor

    qa = QAPredictor(model, device="cpu", batch_size=batch_size)
    with open(out, "w", encoding="utf-8") as f:
        for r, answer in zip(
            records(questions), qa.stream(records(questions), chunk_size=chunk_size), strict=True
        ):
            f.write(json.dumps({"id": r["id"], **answer}) + "\n")


# -- the driver ----------------------------------------------------------------------------------------------
def peak_rss_anon(pid: int, stop: threading.Event, peak: list[int]) -> None:
    """Poll /proc/PID/status (and its children's) for RssAnon, keeping the largest total in KiB."""
    while not stop.is_set():
        total = 0
        for p in [pid, *children(pid)]:
            try:
                for line in open(f"/proc/{p}/status"):
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        peak[0] = max(peak[0], total)
        stop.wait(0.1)


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def run(cmd: list[str], log: Path) -> dict:
    """Run a command to its end: wall seconds and peak RssAnon (MiB)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("LIGHTNING_QA_RUN", None)
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=peak_rss_anon, args=(proc.pid, stop, peak))
        watcher.start()
        code = proc.wait()
        stop.set()
        watcher.join()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{log.read_text()[-3000:]}")
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_anon_mb": round(peak[0] / 1024, 1)}


def write_questions(data: Path, n: int, path: Path) -> Path:
    with open(data, encoding="utf-8") as f:
        dev = [
            {"question": qa["question"], "context": p["context"]}
            for a in json.load(f)["data"]
            for p in a["paragraphs"]
            for qa in p["qas"]
        ]
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", **dev[i % len(dev)]}) + "\n")
    return path


def quickstart_checkpoint(work: Path) -> Path:
    """Fit the quickstart model (configs/quickstart.yaml) into `work`; its best checkpoint."""
    root = work / "quickstart"
    best = next(iter(sorted(root.glob("version_*/best.ckpt"))), None)
    if best is None:
        cmd = [sys.executable, "-m", "lightning_qa.cli", "fit", "--config", "configs/quickstart.yaml"]
        run([*cmd, "--trainer.default_root_dir", str(root)], work / "quickstart.log")
        best = next(iter(sorted(root.glob("version_*/best.ckpt"))))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--sizes", default="10000,50000,200000", help="comma list of question counts")
    parser.add_argument(
        "--ckpt", default=None, help="a lightning_qa checkpoint (default: fit the quickstart model)"
    )
    parser.add_argument("--sides", default="cli,predictor,old", help="comma list of: cli, predictor, old")
    parser.add_argument(
        "--batch-size", type=int, default=16, help="ours: windows per forward pass (CLI default)"
    )
    parser.add_argument("--chunk-size", type=int, default=256, help="ours: questions per chunk (CLI default)")
    parser.add_argument("--old-batch-size", type=int, default=32, help="the old pipeline's batch size")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--worker", choices=["old", "predictor"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--questions", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from lightning_qa.hardware import cpu_info, cpu_line

    print(cpu_line(), flush=True)  # the figures below depend on it
    if args.worker == "old":
        return old_worker(args.model, args.questions, args.out, args.old_batch_size)
    if args.worker == "predictor":
        return predictor_worker(args.model, args.questions, args.out, args.batch_size, args.chunk_size)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline_parity import ensure_venv, old_readable

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="predict_scale-"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = Path(args.ckpt) if args.ckpt else quickstart_checkpoint(work)
    old_model = old_readable(ckpt.parent / "hf_model", work)
    sides = args.sides.split(",")
    old_python = str(ensure_venv()) if "old" in sides else None
    info = {**cpu_info(), "load_average_1min": round(os.getloadavg()[0], 2)}
    print(f"model {ckpt}; load average {info['load_average_1min']}", flush=True)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        questions = write_questions(Path(args.data), n, work / f"q{n}.jsonl")
        for side in sides:
            out = work / f"{side}-{n}.jsonl"
            if side == "cli":
                cmd = [sys.executable, "-m", "lightning_qa.cli", "predict", "--ckpt_path", str(ckpt)]
                cmd += ["--data.predict_file", str(questions), "--predictions_file", str(out)]
                cmd += ["--overwrite_predictions", "true", "--trainer.enable_progress_bar", "false"]
                cmd += [
                    "--data.eval_batch_size",
                    str(args.batch_size),
                    "--data.predict_chunk_size",
                    str(args.chunk_size),
                ]
                cmd += [
                    "--trainer.default_root_dir",
                    str(work / "runs"),
                    "--data.cache_dir",
                    str(work / "cache"),
                ]
            else:
                python = old_python if side == "old" else sys.executable
                model = str(old_model if side == "old" else ckpt)
                cmd = [python, __file__, "--worker", side, "--model", model, "--questions", str(questions)]
                cmd += [
                    "--out",
                    str(out),
                    "--batch-size",
                    str(args.batch_size),
                    "--chunk-size",
                    str(args.chunk_size),
                ]
                cmd += ["--old-batch-size", str(args.old_batch_size)]
            result = run(cmd, work / f"{side}-{n}.log")
            lines = sum(1 for _ in open(out))
            if lines != n:
                raise RuntimeError(f"{side}: {lines} answers for {n} questions")
            row = {"side": side, "questions": n, **result, "questions_per_s": round(n / result["wall_s"], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"{'side':<10} {'questions':>9} {'wall s':>8} {'q/s':>8} {'peak RssAnon MiB':>17}")
    for r in rows:
        print(
            f"{r['side']:<10} {r['questions']:>9} {r['wall_s']:>8} {r['questions_per_s']:>8} {r['peak_rss_anon_mb']:>17}"
        )
    flat = {}
    for side in sides:
        peaks = [r["peak_rss_anon_mb"] for r in rows if r["side"] == side]
        flat[side] = round(peaks[-1] / peaks[0], 3) if len(peaks) > 1 else None
    print(f"peak memory, largest / smallest input: {flat}")
    print(json.dumps({"benchmark": "predict_scale", **info, "rows": rows, "memory_growth": flat}))


if __name__ == "__main__":
    main()
