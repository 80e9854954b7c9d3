"""Evaluation: SQuAD 2.0 end to end, partial runs, and the same metrics on 1 or 2 devices.

Run: pytest tests/test_evaluation.py   (the DDP test starts real 2-process runs on CPU, gloo)
"""

import json
import logging
import os
import subprocess
import sys

import pytest
from helpers import SMALL, last_metrics, run_dirs

from lightning_qa import evaluate
from lightning_qa.checkpoint import load_checkpoint
from lightning_qa.cli import main


def test_squad_v2_fit_tunes_threshold_used_by_validate_and_predict(tmp_path, tiny_model_dir, sample_dir):
    root = tmp_path / "runs"
    common = [*run_dirs(tmp_path, root), *SMALL]
    v2 = ["--data.version_2_with_negative", "true"]
    main(
        [
            "fit",
            "--model.model_name_or_path",
            tiny_model_dir,
            *v2,
            "--data.train_file",
            str(sample_dir / "dev_v2.json"),
            "--data.validation_file",
            str(sample_dir / "dev_v2.json"),
            "--trainer.max_epochs",
            "1",
            "--data.max_train_samples",
            "32",
            *common,
        ]
    )
    fit_run = root / "version_0"
    scores = last_metrics(fit_run)
    assert (
        scores["val/HasAns_total"] == 83 and scores["val/NoAns_total"] == 37 and scores["val/examples"] == 120
    )
    assert scores["val/best_f1"] >= scores["val/f1"] - 1e-4
    odds = json.loads((fit_run / "null_odds.json").read_text())
    assert len(odds) == 120
    meta = load_checkpoint(str(fit_run / "best.ckpt"))["lightning_qa"]
    assert meta["tuned_null_threshold"] == pytest.approx(scores["val/best_f1_thresh"], rel=1e-6)
    tuned = meta["tuned_null_threshold"]
    # the export carries the threshold too
    settings = json.loads((fit_run / "hf_model" / "lightning_qa.json").read_text())
    assert settings["null_score_diff_threshold"] == tuned and settings["version_2_with_negative"] is True

    ckpt = ["--ckpt_path", str(fit_run / "best.ckpt"), *v2]
    main(
        [
            "validate",
            *ckpt,
            "--data.validation_file",
            str(sample_dir / "dev_v2.json"),
            "--model.write_nbest",
            "true",
            *common,
        ]
    )
    val_run = root / "version_1"
    predictions = json.loads((val_run / "predictions.json").read_text())
    odds = json.loads((val_run / "null_odds.json").read_text())
    for qid, answer in predictions.items():
        assert (answer == "") == (odds[qid] > tuned), qid
    # the README's command reproduces the logged metrics exactly (the run's threshold, from evaluation.json)
    logged = last_metrics(val_run)
    rescored = evaluate.main(
        [
            str(sample_dir / "dev_v2.json"),
            str(val_run / "predictions.json"),
            "--na_prob",
            str(val_run / "null_odds.json"),
        ]
    )
    summary = json.loads((val_run / "evaluation.json").read_text())
    assert summary["null_score_diff_threshold"] == tuned
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert rescored[key] == summary["metrics"][key], key  # the very numbers, in float64
        assert rescored[key] == pytest.approx(logged[f"val/{key}"], rel=1e-6), key  # logged as float32
    nbest = json.loads((val_run / "nbest_predictions.json").read_text())
    first = nbest[next(iter(nbest))]
    assert 1 <= len(first) <= 20 and {"text", "start", "end", "score", "probability"} <= set(first[0])
    assert [c["score"] for c in first] == sorted((c["score"] for c in first), reverse=True)

    out = tmp_path / "v2.jsonl"
    main(
        [
            "predict",
            *ckpt,
            "--data.predict_file",
            str(sample_dir / "dev_v2.json"),
            "--predictions_file",
            str(out),
            *common,
        ]
    )
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert {k: r["answer"] for k, r in records.items()} == predictions
    assert all(0.0 <= r["score"] <= 1.0 for r in records.values())
    assert all(r["start"] == r["end"] == 0 for r in records.values() if r["answer"] == "")


@pytest.mark.parametrize("limit", ["2", "1"])
def test_limited_validation_scores_only_what_it_saw(tmp_path, tiny_model_dir, sample_dir, limit, caplog):
    """An int limit of batches is partial, 1 included (Lightning reads the float 1.0 as "all"): the run says
    so, and a SQuAD 2.0 fit tunes no threshold on it."""
    root = tmp_path / "runs"
    caplog.set_level(logging.INFO)
    main(
        [
            "fit",
            "--model.model_name_or_path",
            tiny_model_dir,
            *("--data.train_file", str(sample_dir / "dev_v2.json"), "--data.max_train_samples", "8"),
            *("--data.validation_file", str(sample_dir / "dev_v2.json")),
            *("--data.version_2_with_negative", "true", "--trainer.max_epochs", "1"),
            *("--trainer.limit_val_batches", limit, "--data.eval_batch_size", "4"),
            *run_dirs(tmp_path, root),
            *SMALL,
        ]
    )
    run_dir = root / "version_0"
    scores = last_metrics(run_dir)
    assert 1 <= scores["val/examples"] < 30  # only the examples of the windows seen are scored
    assert len(json.loads((run_dir / "predictions.json").read_text())) == scores["val/examples"]
    assert "val: scored only the" in caplog.text
    summary = json.loads((run_dir / "evaluation.json").read_text())
    assert summary["complete"] is False and summary["examples"] == scores["val/examples"]
    assert load_checkpoint(str(run_dir / "last.ckpt"))["lightning_qa"]["tuned_null_threshold"] is None


def _validate_and_predict(tmp_path, name, model_dir, data_file, devices: int) -> tuple[dict, dict, dict, str]:
    root = tmp_path / name
    common = [
        "--model.model_name_or_path",
        model_dir,
        "--data.cache_dir",
        str(tmp_path / f"cache-{name}"),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        str(devices),
        "--trainer.enable_progress_bar",
        "false",
        "--data.eval_batch_size",
        "8",
        *SMALL,
    ]
    if devices > 1:
        common += ["--trainer.strategy", "ddp"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LIGHTNING_QA_RUN", None)
    logs = ""
    for cmd in (
        ["validate", "--data.validation_file", data_file],
        ["predict", "--data.predict_file", data_file, "--predictions_file", str(root / "answers.jsonl")],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "lightning_qa.cli", *cmd, *common],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        logs += proc.stdout + proc.stderr
    predictions = json.loads((root / "version_0" / "predictions.json").read_text())
    records = {r["id"]: r for r in map(json.loads, (root / "answers.jsonl").read_text().splitlines())}
    return predictions, last_metrics(root / "version_0"), records, logs


def test_ddp_on_two_processes_matches_one_device(tmp_path, tiny_model_dir, sample_dir):
    """83 examples (odd, so not divisible by 2 ranks): every example scored once, same answers and metrics."""
    data = str(sample_dir / "dev.json")
    preds1, metrics1, records1, _ = _validate_and_predict(tmp_path, "one", tiny_model_dir, data, 1)
    preds2, metrics2, records2, logs2 = _validate_and_predict(tmp_path, "two", tiny_model_dir, data, 2)
    assert len(preds1) == 83 and preds2 == preds1
    assert metrics2["val/examples"] == metrics1["val/examples"] == 83
    for key in ("val/exact_match", "val/f1"):
        assert metrics2[key] == pytest.approx(metrics1[key], abs=1e-9)
    assert metrics2["val/loss"] == pytest.approx(metrics1["val/loss"], rel=1e-4)
    assert records1.keys() == records2.keys()
    for qid, r in records1.items():
        assert records2[qid]["answer"] == r["answer"] and (records2[qid]["start"], records2[qid]["end"]) == (
            r["start"],
            r["end"],
        )
        assert records2[qid]["score"] == pytest.approx(r["score"], abs=1e-5)
    # tokenization ran once per machine (local rank 0 in prepare_data), the other rank read the cache
    assert logs2.count("Tokenized validation:") == 1
