"""int8 against fp32 and bf16 on this CPU: F1 / EM on the held-out SQuAD articles, questions/s, model size.

Model: MiniLM-L6 fine-tuned on the first 36 articles of SQuAD v1.1 dev (as in `accuracy_parity.py`), scored
on the last 12. Give a fine-tuned model with `--model` (a `lightning_qa fit` checkpoint or an exported
directory), or let the script fine-tune one for `--train-steps` steps (bf16-mixed where the CPU has native
bf16, else fp32). Variants, each run by `QAPredictor` with the model's stored settings:

    torch fp32, torch bf16 (weights in bf16), onnxruntime fp32 (our ONNX export),
    onnxruntime int8 (`lightning_qa.quantize`: MatMul + embeddings, and MatMul only),
    torch.ao dynamic int8 (Linear layers; deprecated API, measured for comparison),
    torchao int8 dynamic (Linear layers but the QA head, under torch.compile; only when torchao is installed:
    `pip install torchao`. Not in the bench extra: once installed, transformers imports it at every
    `from_pretrained`, which prints load warnings into every run and test)

Speed: the same `--speed-questions` questions, `--batch-size` windows per forward pass, best of `--repeat`
passes, questions/s; optional `--speed-shape base` adds a random DistilBERT-base shaped model, speed only.
The old pipeline (transformers 4.57, its own venv as in `pipeline_parity.py`; `--no-old-pipeline` skips it)
runs in fp32 at batch 1, 4, 8, 16 and 32 on the same questions: its fastest is the reference of the
"x old best fp32" column. The export's int8 option is also scored at each batch size of the export's check
(activation scales are per batch).
Sizes: the weights file of each variant. Prints the CPU model and its bf16/int8 capabilities, a table and
one JSON line.

    python benchmarks/quantization.py --model runs/version_0/last.ckpt
    python benchmarks/quantization.py --train-steps 150 --max-eval 1000
    python benchmarks/quantization.py --smoke      # tiny random model, a few questions (tests)
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from lightning_qa.hardware import cpu_info, cpu_line, native_bf16  # noqa: E402
from lightning_qa.quantize import CHECK_BATCH_SIZES, score  # noqa: E402

# onnxruntime int8 variants: the groups kept in float32 (`lightning_qa.quantize`). The first is the export's
# first option; "everything" is the same with the QA head in int8 too (why the export keeps the head in fp32).
EXPORT_VARIANT = "int8 (MatMul + embeddings, QA head fp32)"
INT8_VARIANTS = {
    EXPORT_VARIANT: ("qa_outputs",),
    "int8 (everything)": (),
    "int8 (MatMul only, QA head fp32)": ("qa_outputs", "embeddings"),
}
OLD_BATCH_SIZES = [1, 4, 8, 16, 32]
OLD_VARIANT = "old pipeline fp32, its best batch"


def old_pipeline_best(model_dir: str, examples: list[dict], a: argparse.Namespace, work: str) -> dict:
    """transformers 4.57's pipeline("question-answering") in fp32 at each of OLD_BATCH_SIZES over the speed
    questions (its own venv, `pipeline_parity.ensure_venv`): its fastest batch size, as its users would pick."""
    import pipeline_parity

    python = pipeline_parity.ensure_venv()
    out = Path(work, "old")
    out.mkdir(exist_ok=True)
    readable = str(pipeline_parity.old_readable(Path(model_dir), out))
    result = pipeline_parity.run_old(
        python, readable, examples, OLD_BATCH_SIZES, 0, "float32", None, out, repeat=a.repeat
    )
    q_per_s = {int(b): round(len(examples) / r["seconds"], 2) for b, r in result["runs"].items()}
    best = max(q_per_s, key=q_per_s.get)
    return {"q_per_s_by_batch": q_per_s, "best_batch": best, "q_per_s": q_per_s[best]}


def model_directory(path: str, work: str) -> str:
    """`path` as a model directory every variant and the old pipeline load: a checkpoint is exported first
    (weights, tokenizer, stored settings), once."""
    if not os.path.isfile(path):
        return path
    from lightning_qa.export import export_checkpoint

    return export_checkpoint(path, os.path.join(work, "hf_model"))


def fine_tune(a: argparse.Namespace, work: str, train_file: str) -> str:
    """`lightning_qa fit` of MiniLM + a QA head for `--train-steps` steps; returns its last.ckpt."""
    from lightning_qa.cli import main as lightning_qa

    model_dir = common.build_pretrained_qa(os.path.join(work, "model"), a.seed)
    options = {
        "model.model_name_or_path": model_dir,
        "trainer.default_root_dir": os.path.join(work, "runs"),
        "trainer.precision": "bf16-mixed" if native_bf16() else "32-true",
        "trainer.enable_progress_bar": False,
        "trainer.max_steps": a.train_steps,
        "trainer.limit_val_batches": 0,
        "checkpoint.save_top_k": 0,
        "data.train_file": train_file,
        "data.cache_dir": os.path.join(work, "cache"),
        "data.train_batch_size": 16,
        "data.group_by_length": True,
        "seed_everything": a.seed,
        "model.learning_rate": 1e-4,
        "model.warmup_steps": max(1, a.train_steps // 10),
    }
    lightning_qa(["fit", *common.flags(options)])
    (ckpt,) = glob.glob(os.path.join(work, "runs", "version_0", "last.ckpt"))
    return ckpt


def variants(path: str, work: str) -> dict[str, dict]:
    """Each variant of the model directory `path`: a model for `QAPredictor(path, model=...)` (None:
    QAPredictor loads it) and its size."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    from lightning_qa.onnx_export import OnnxQAModel, export_onnx
    from lightning_qa.quantize import quantize_onnx
    from lightning_qa.tokenization import load_tokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(path).eval()
    tokenizer = load_tokenizer(path)
    fp32_file = os.path.join(work, "fp32.pt")
    torch.save(model.state_dict(), fp32_file)
    onnx_dir = os.path.join(work, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    export_onnx(model, tokenizer, onnx_dir)
    fp32_onnx = os.path.join(onnx_dir, "model.onnx")
    out = {
        "torch fp32": {"model": model, "bytes": os.path.getsize(fp32_file)},
        "onnxruntime fp32": {"model": OnnxQAModel(fp32_onnx), "bytes": os.path.getsize(fp32_onnx)},
    }
    for name, keep in INT8_VARIANTS.items():
        file = os.path.join(work, f"{len(out)}.onnx")
        t = time.perf_counter()
        quantize_onnx(fp32_onnx, file, model, keep)
        out[f"onnxruntime {name}"] = {
            "model": OnnxQAModel(file),
            "bytes": os.path.getsize(file),
            "quantize_s": round(time.perf_counter() - t, 1),
        }
    out["torch bf16"] = {"dtype": "bf16", "bytes": os.path.getsize(fp32_file) // 2}  # parameter bytes
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated (it says so at every call)
        warnings.simplefilter("ignore")
        dynamic = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
        int8_file = os.path.join(work, "torch-int8.pt")
        torch.save(dynamic.state_dict(), int8_file)
    out["torch.ao dynamic int8 (Linear)"] = {"model": dynamic, "bytes": os.path.getsize(int8_file)}
    out |= torchao_variant(model, work)
    for v in out.values():
        v["source"] = path
    return out


def torchao_variant(model, work: str) -> dict:
    """torchao's int8 dynamic activation + int8 weight (Linear layers, the QA head kept float32 as in the
    export), under `torch.compile(dynamic=True)`: eager it was slower than float32 here (torchao's CPU
    speed comes from compiled kernels). The first calls compile (scoring runs before timing)."""
    try:
        import torch
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        print("torchao not installed (pip install torchao): its row is skipped", flush=True)
        return {}
    ao = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(ao, Int8DynamicActivationInt8WeightConfig(), filter_fn=_not_the_head)
    file = os.path.join(work, "torchao-int8.pt")
    torch.save(ao.state_dict(), file)
    return {
        "torchao int8 dynamic (Linear, compiled)": {
            "model": ao,
            "compile": True,
            "bytes": os.path.getsize(file),
        }
    }


def _not_the_head(module, name: str) -> bool:
    import torch

    return isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] != "qa_outputs"


def predictor_for(v: dict, batch_size: int):
    from lightning_qa.predictor import QAPredictor

    kwargs = {"model": v["model"]} if v.get("model") is not None else {"dtype": v.get("dtype")}
    kwargs["compile"] = v.get("compile", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return QAPredictor(v["source"], device="cpu", batch_size=batch_size, **kwargs)


def questions_per_s(predictor, examples: list[dict], repeat: int) -> float:
    questions, contexts = [e["question"] for e in examples], [e["context"] for e in examples]
    predictor.predict(questions[:2], contexts[:2])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        predictor.predict(questions, contexts)
        best = min(best, time.perf_counter() - t)
    return round(len(examples) / best, 2)


def base_shape_speed(a: argparse.Namespace, work: str, examples: list[dict]) -> list[dict]:
    """Speed only, a random DistilBERT-base shaped model: fp32, bf16, onnxruntime fp32 and int8."""
    model_dir = common.build_random_distilbert(os.path.join(work, "base"), "base")
    rows = []
    if a.old_pipeline:
        old = old_pipeline_best(model_dir, examples, a, os.path.join(work, "base"))
        rows.append({"model": "distilbert-base shape (random)", "variant": OLD_VARIANT, **old})
    for name, v in variants(model_dir, os.path.join(work, "base")).items():
        rows.append(
            {
                "model": "distilbert-base shape (random)",
                "variant": name,
                "q_per_s": questions_per_s(predictor_for(v, a.batch_size), examples, a.repeat),
                "size_mb": round(v["bytes"] / 1e6, 1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="fine-tuned checkpoint (.ckpt) or exported directory (default: fine-tune)")
    p.add_argument("--train-steps", type=int, default=150, help="fine-tuning steps without --model")
    p.add_argument("--train-articles", type=int, default=36)
    p.add_argument("--max-eval", type=int, help="only the first N held-out questions")
    p.add_argument("--speed-questions", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass, every variant")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--speed-shape", choices=["none", "base"], default="none")
    p.add_argument(
        "--old-pipeline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time transformers 4.57's pipeline in fp32 at batch 1-32 (its own venv) on the speed questions",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(common.DEFAULT_DATA))
    p.add_argument("--work-dir", default=None)
    p.add_argument("--smoke", action="store_true", help="a tiny random model and 8 questions (tests)")
    a = p.parse_args(argv)
    info = cpu_info()
    print(cpu_line(), flush=True)
    t0 = time.perf_counter()
    from lightning_qa.io import read_examples

    with tempfile.TemporaryDirectory(prefix="quantization-", dir=a.work_dir) as work:
        articles = common.read_articles(a.data)
        held = articles[a.train_articles :]
        if a.smoke:
            a.max_eval, a.speed_questions, a.repeat = 8, 8, 1
        speed_file = common.write_squad(
            common.first_questions(held, a.speed_questions), os.path.join(work, "s.json")
        )
        held = common.first_questions(held, a.max_eval) if a.max_eval else held
        eval_file = common.write_squad(held, os.path.join(work, "eval.json"))
        examples = read_examples(eval_file)
        if a.smoke:
            path = common.build_random_distilbert(os.path.join(work, "tiny"), "tiny")
        elif a.model:
            path = a.model
        else:
            train_file = common.write_squad(articles[: a.train_articles], os.path.join(work, "train.json"))
            path = fine_tune(a, work, train_file)
        path = model_directory(path, work)
        rows = []
        speed_set = read_examples(speed_file)  # the first held-out questions, whatever --max-eval
        model_name = "MiniLM-L6 fine-tuned" if not a.smoke else "tiny random"
        if a.old_pipeline:
            rows.append(
                {
                    "model": model_name,
                    "variant": OLD_VARIANT,
                    **old_pipeline_best(path, speed_set, a, work),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        for name, v in variants(path, work).items():
            predictor = predictor_for(v, a.batch_size)
            t = time.perf_counter()
            scores = score(predictor, examples, False)
            if name == f"onnxruntime {EXPORT_VARIANT}":  # int8 answers depend on the batch: the check's sizes
                scores["f1_by_batch"] = {
                    b: score(predictor, examples, False, b)["f1"] for b in CHECK_BATCH_SIZES
                }
            rows.append(
                {
                    "model": model_name,
                    "variant": name,
                    **scores,
                    "score_s": round(time.perf_counter() - t, 1),
                    "q_per_s": questions_per_s(predictor, speed_set, a.repeat),
                    "size_mb": round(v["bytes"] / 1e6, 1),
                    **({"quantize_s": v["quantize_s"]} if "quantize_s" in v else {}),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
        if a.speed_shape == "base":
            rows += base_shape_speed(a, work, speed_set)
    fp32 = {r["model"]: r for r in rows if r["variant"] == "torch fp32"}
    ort = {r["model"]: r for r in rows if r["variant"] == "onnxruntime fp32"}
    old = {r["model"]: r for r in rows if r["variant"] == OLD_VARIANT}
    for r in rows:
        ref = fp32.get(r["model"])
        if ref and "f1" in r:
            r["f1_drop"] = round(ref["f1"] - r["f1"], 3)
        if ref:
            r["speed_vs_torch_fp32"] = round(r["q_per_s"] / ref["q_per_s"], 2)
            r["size_vs_fp32"] = round(r["size_mb"] / ref["size_mb"], 3) if "size_mb" in r else None
        if r["model"] in ort:
            r["speed_vs_ort_fp32"] = round(r["q_per_s"] / ort[r["model"]]["q_per_s"], 2)
        if r["model"] in old:
            r["speed_vs_old_best_fp32"] = round(r["q_per_s"] / old[r["model"]]["q_per_s"], 2)
    print(
        f"\n{len(examples)} held-out questions (accuracy), {len(speed_set)} (speed), batch {a.batch_size} "
        f"windows; CPU {info['cpu']} (AMX {info['amx']}, AVX-512 BF16 {info['avx512_bf16']}, VNNI "
        f"{info['vnni']}); load average {os.getloadavg()[0]:.2f}"
    )
    common.print_table(
        rows,
        [
            ("model", "model"),
            ("variant", "variant"),
            ("exact_match", "EM"),
            ("f1", "F1"),
            ("f1_drop", "F1 drop"),
            ("q_per_s", "questions/s"),
            ("speed_vs_torch_fp32", "x torch fp32"),
            ("speed_vs_ort_fp32", "x ort fp32"),
            ("speed_vs_old_best_fp32", "x old best fp32"),
            ("size_mb", "size MB"),
            ("size_vs_fp32", "x fp32 size"),
        ],
    )
    summary = {
        "benchmark": "quantization",
        "cpu": info,
        "model": a.model or ("smoke" if a.smoke else f"fine-tuned {a.train_steps} steps"),
        "eval_questions": len(examples),
        "speed_questions": len(speed_set),
        "batch_size": a.batch_size,
        "rows": rows,
    }
    return common.print_summary(summary, t0)


if __name__ == "__main__":
    main()
