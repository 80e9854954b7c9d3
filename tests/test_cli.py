"""The `lightning_qa` command end to end, in-process.  Run: pytest tests/test_cli.py"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SMALL, run_dirs, sample_args
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from lightning_qa.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_help_lists_every_subcommand(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "evaluate", "export"):
        assert f"  {name} " in out


def test_fit_help_documents_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--data.train_file",
        "--data.doc_stride",
        "--model.n_best_size",
        "--model.warmup_ratio",
        "--predictions_file",
    ):
        assert option in out
    assert "--optimizer" not in out  # auto_configure_optimizers=False keeps our no-decay groups and warm-up


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(config), "--print_config"])
    assert e.value.code == 0
    printed = capsys.readouterr().out
    assert "model_name_or_path" in printed and "max_seq_length" in printed


def test_fit_validate_predict_export_end_to_end(tmp_path, tiny_model_dir, sample_dir, capsys):
    base = tmp_path / "base-model"
    shutil.copytree(tiny_model_dir, base)
    root = tmp_path / "runs"
    common = [*run_dirs(tmp_path, root), *SMALL]
    main(
        [
            "fit",
            *sample_args(str(base), sample_dir, max_train=40, max_eval=15),
            "--trainer.max_steps",
            "6",
            "--trainer.val_check_interval",
            "3",
            *common,
        ]
    )
    run = root / "version_0"
    for name in (
        "config.yaml",
        "best.ckpt",
        "last.ckpt",
        "metrics.csv",
        "predictions.json",
        "hf_model/model.safetensors",
    ):
        assert (run / name).is_file(), name
    assert len(json.loads((run / "predictions.json").read_text())) == 15
    # the checkpoint is self-contained: validate and predict with the base model gone
    shutil.rmtree(base)
    main(
        [
            "validate",
            "--model.model_name_or_path",
            str(base),
            "--ckpt_path",
            str(run / "best.ckpt"),
            "--data.validation_file",
            str(sample_dir / "dev.json"),
            "--data.max_eval_samples",
            "15",
            *common,
        ]
    )
    val_run = root / "version_1"
    header, *rows = (val_run / "metrics.csv").read_text().splitlines()
    values = dict(zip(header.split(","), rows[-1].split(","), strict=True))
    assert float(values["val/examples"]) == 15 and 0 <= float(values["val/f1"]) <= 100
    predictions = json.loads((val_run / "predictions.json").read_text())
    assert len(predictions) == 15
    out_file = tmp_path / "answers.jsonl"
    main(
        [
            "predict",
            "--model.model_name_or_path",
            str(base),
            "--ckpt_path",
            str(run / "best.ckpt"),
            "--data.predict_file",
            str(sample_dir / "questions.jsonl"),
            "--predictions_file",
            str(out_file),
            *common,
        ]
    )
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    questions = {
        r["id"]: r for r in map(json.loads, (sample_dir / "questions.jsonl").read_text().splitlines())
    }
    assert [r["id"] for r in records] == list(questions)
    for r in records:
        assert r["answer"] == questions[r["id"]]["context"][r["start"] : r["end"]]
        assert 0.0 <= r["score"] <= 1.0 and r["answer"]
    # validation and predict decode the same way: the same weights give the same answers
    dev_ids = set(predictions) & set(questions)
    assert dev_ids and all(
        predictions[i] == next(r["answer"] for r in records if r["id"] == i) for i in dev_ids
    )
    # one question on the command line prints its record
    capsys.readouterr()
    main(
        [
            "predict",
            "--ckpt_path",
            str(run / "best.ckpt"),
            "--data.question",
            "Who?",
            "--data.context",
            "Ann built the mill.",
            "--predictions_file",
            str(tmp_path / "one.jsonl"),
            *common,
        ]
    )
    printed = json.loads(next(x for x in capsys.readouterr().out.splitlines() if x.startswith("{")))
    assert (
        printed["id"] == "0" and printed["answer"] == "Ann built the mill."[printed["start"] : printed["end"]]
    )
    # hf_model/ loads with plain transformers
    model = AutoModelForQuestionAnswering.from_pretrained(run / "hf_model")
    tokenizer = AutoTokenizer.from_pretrained(run / "hf_model")
    logits = model(**tokenizer("Who?", "Ann built the mill.", return_tensors="pt")).start_logits
    assert logits.shape[1] > 5


def test_bad_data_file_is_one_clear_line(tmp_path, tiny_model_dir, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"title": "t", "paragraphs": [')
    with pytest.raises(SystemExit) as e:
        main(
            [
                "validate",
                "--model.model_name_or_path",
                tiny_model_dir,
                "--data.validation_file",
                str(bad),
                *run_dirs(tmp_path),
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lightning_qa: error: ") and str(bad) in err[-1] and "not valid JSON" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_fit_without_checkpoints_and_with_clipping_in_bf16(tmp_path, tiny_model_dir, sample_dir):
    """Benchmarks turn checkpoints off; clipping must work with bf16-mixed (non-fused AdamW then)."""
    root = tmp_path / "runs"
    main(
        [
            "fit",
            *sample_args(tiny_model_dir, sample_dir, max_train=16, validation=False),
            "--trainer.max_steps",
            "2",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.log_every_n_steps",
            "1",
            "--trainer.gradient_clip_val",
            "1.0",
            "--trainer.precision",
            "bf16-mixed",
            *run_dirs(tmp_path, root),
            *SMALL,
        ]
    )
    assert not list(root.rglob("*.ckpt")) and (root / "version_0" / "metrics.csv").is_file()


def test_logs_get_plain_progress_lines_and_no_negative_epoch_total(tmp_path, tiny_model_dir, sample_dir):
    """Output to a file (not a terminal): plain progress lines, not a bar redrawn in place; under
    max_steps, no "Epoch 0/-2"."""
    args = [
        "fit",
        *sample_args(tiny_model_dir, sample_dir, max_train=16, validation=False),
        *("--trainer.max_steps", "3", "--data.train_batch_size", "4"),
        *run_dirs(tmp_path),
        *SMALL,
    ]
    args.remove("--trainer.enable_progress_bar")
    args.remove("false")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LIGHTNING_QA_RUN", None)
    fit = subprocess.run(
        [sys.executable, "-m", "lightning_qa.cli", *args], capture_output=True, text=True, env=env
    )
    assert fit.returncode == 0, fit.stderr[-2000:]
    out = fit.stdout + fit.stderr
    assert re.search(
        r"^train: epoch 0, step 3/3 \(100%\), [\d.]+ samples/s, elapsed 0:\d\d, ETA 0:00, loss [\d.]+$",
        out,
        re.M,
    ), out[-2000:]
    assert "/-2" not in out
    predict = [
        "predict",
        *(
            "--model.model_name_or_path",
            tiny_model_dir,
            "--data.predict_file",
            str(sample_dir / "questions.jsonl"),
        ),
        *("--trainer.default_root_dir", str(tmp_path / "runs"), "--data.predict_chunk_size", "4"),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "lightning_qa.cli", *predict], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(
        r"^predict: 10/10 questions \(100%\), [\d.]+ questions/s", done.stdout + done.stderr, re.M
    )


def test_rich_bar_has_an_epoch_total_only_when_there_is_one():
    from lightning import Trainer

    from lightning_qa.progress import QAProgressBar

    bar = QAProgressBar()
    bar._trainer = Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert bar._get_train_description(0).strip() == "Epoch 0"
    bar._trainer = Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert bar._get_train_description(1).strip() == "Epoch 1/2"
