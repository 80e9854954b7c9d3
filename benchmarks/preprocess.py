"""Preprocessing cost: our `SquadDataModule` vs the bare fast-tokenizer call, on every question of SQuAD v1.1 dev.

Ours, timed from the file on disk with a cold cache (a fresh temporary `cache_dir` each run): reading and
checking the file, the examples table, question truncation, windows + labels (train-style features; eval-style
ones also keep offsets, example index, id, context and gold texts) and the Arrow cache write; `setup("fit")`
with only a training file, `setup("validate")` with only a validation file. Tokenizer loading is not timed.
Bare: one `tokenizer(questions, contexts, truncation="only_second", max_length, stride,
return_overflowing_tokens=True, return_offsets_mapping=True)` call on the same questions and contexts,
already in memory. Target: ours costs at most 1.5x the bare call. Each time is the best of `--repeat` runs
(interleaved). `--profile` adds a cProfile of one cold eval-style build.

    python benchmarks/preprocess.py [--data ../shared/data/squad/dev-v1.1.json] [--repeat 3] [--profile]

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import datasets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from lightning_qa.data import SquadDataModule, load_tokenizer  # noqa: E402
from lightning_qa.io import read_examples  # noqa: E402

TARGET = 1.5


def ours(data: str, tokenizer_dir: str, split: str, cache_dir: str, max_length: int, stride: int) -> tuple[float, int]:
    """Seconds for a cold `setup` of one split (train or validation) from `data`, and the number of windows."""
    files = {"train_file": data} if split == "train" else {"validation_file": data}
    dm = SquadDataModule(tokenizer_dir, max_seq_length=max_length, doc_stride=stride, cache_dir=cache_dir, **files)
    dm.tokenizer  # loaded outside the timing  # noqa: B018
    gc.collect()
    t = time.perf_counter()
    dm.setup("fit" if split == "train" else "validate")
    seconds = time.perf_counter() - t
    return seconds, len(dm.features[split])


def bare(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int) -> tuple[float, int]:
    gc.collect()
    t = time.perf_counter()
    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    return time.perf_counter() - t, len(enc["input_ids"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(common.DEFAULT_DATA))
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: MiniLM's, uncased WordPiece)")
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile one cold eval-style build (top 25 functions)")
    a = p.parse_args(argv)
    datasets.disable_progress_bars()
    logging.getLogger("lightning_qa").setLevel(logging.ERROR)
    tokenizer_dir = a.tokenizer or common.minilm_dir()
    tokenizer = load_tokenizer(tokenizer_dir)

    t = time.perf_counter()
    examples = read_examples(a.data)
    read_s = time.perf_counter() - t
    questions = [e["question"].lstrip() for e in examples]
    contexts = [e["context"] for e in examples]
    bare(tokenizer, questions[:256], contexts[:256], a.max_length, a.stride)  # warm the tokenizer's thread pool

    times: dict[str, float] = {"read_s": read_s}
    windows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="preprocess-bench-") as tmp:
        for r in range(a.repeat):
            for split in ("train", "validation"):
                s, windows[split] = ours(a.data, tokenizer_dir, split, os.path.join(tmp, f"{split}-{r}"), a.max_length, a.stride)
                times[f"ours_{split}_s"] = min(s, times.get(f"ours_{split}_s", s))
            s, windows["bare"] = bare(tokenizer, questions, contexts, a.max_length, a.stride)
            times["bare_s"] = min(s, times.get("bare_s", s))
            s = time.perf_counter()
            read_examples(a.data)
            times["read_s"] = min(time.perf_counter() - s, times["read_s"])
        # warm cache: the same setup again reads the Arrow file written above
        t = time.perf_counter()
        ours(a.data, tokenizer_dir, "validation", os.path.join(tmp, "validation-0"), a.max_length, a.stride)
        times["ours_validation_warm_s"] = time.perf_counter() - t
        if a.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            ours(a.data, tokenizer_dir, "validation", os.path.join(tmp, "profile"), a.max_length, a.stride)
            profiler.disable()

    result = {
        "benchmark": "preprocess",
        "data": Path(a.data).name,
        "examples": len(examples),
        "windows": windows,
        "max_length": a.max_length,
        "stride": a.stride,
        "repeat": a.repeat,
        **{k: round(v, 3) for k, v in times.items()},
        "ratio_train": round(times["ours_train_s"] / times["bare_s"], 2),
        "ratio_validation": round(times["ours_validation_s"] / times["bare_s"], 2),
        "ratio_validation_without_read": round((times["ours_validation_s"] - times["read_s"]) / times["bare_s"], 2),
        "target": TARGET,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    result["target_met"] = max(result["ratio_train"], result["ratio_validation"]) <= TARGET
    print(f"{len(examples)} questions, {windows['bare']} windows (ours: {windows['train']} train, "
          f"{windows['validation']} eval); best of {a.repeat}; load average {result['load_average_1min']}")
    rows = [
        {"what": "bare tokenizer call (inputs in memory)", "s": times["bare_s"], "x": 1.0},
        {"what": "ours, train-style features, cold cache", "s": times["ours_train_s"], "x": result["ratio_train"]},
        {"what": "ours, eval-style features, cold cache", "s": times["ours_validation_s"], "x": result["ratio_validation"]},
        {"what": "  of which reading + checking the file", "s": times["read_s"], "x": round(times["read_s"] / times["bare_s"], 2)},
        {"what": "ours, eval-style, warm cache (Arrow read)", "s": times["ours_validation_warm_s"],
         "x": round(times["ours_validation_warm_s"] / times["bare_s"], 2)},
    ]
    common.print_table(rows, [("what", "step"), ("s", "seconds"), ("x", "x bare")])
    print(f"[{'ok' if result['target_met'] else 'MISSED'}] ours <= {TARGET}x the bare call (train and eval style)")
    if a.profile:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
