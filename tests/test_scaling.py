"""Scaling switches verified on CPU: DDP loss parity, two torchrun "nodes", half precision, compile.

Run: pytest tests/test_scaling.py   (real multi-process runs over gloo; `-m slow` adds torch.compile)
"""

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import SMALL, bert_teacher, last_metrics, requires_minilm, run_dirs, sample_args

from lightning_qa.checkpoint import load_checkpoint
from lightning_qa.cli import main


@pytest.fixture(scope="module")
def no_dropout_model_dir(tmp_path_factory, bert_tokenizer) -> str:
    """Tiny DistilBERT without dropout, so one process and two see exactly the same computation."""
    from transformers import AutoModelForQuestionAnswering, DistilBertConfig

    out = tmp_path_factory.mktemp("tiny-no-dropout")
    config = DistilBertConfig(
        vocab_size=len(bert_tokenizer),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        dropout=0.0,
        attention_dropout=0.0,
        qa_dropout=0.0,
    )
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out)
    bert_tokenizer.save_pretrained(out)
    return str(out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_all(procs: list[subprocess.Popen], timeout: float) -> None:
    """Wait for every process; once one fails or the time is up, kill the rest (a node whose peer died
    waits for it until its own rendezvous timeout), so the test reports every node's log, not a hang."""
    deadline = time.monotonic() + timeout
    while None in (codes := [p.poll() for p in procs]):
        if time.monotonic() > deadline or any(code not in (None, 0) for code in codes):
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            return
        time.sleep(0.2)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LIGHTNING_QA_RUN", None)
    return env


def _train_losses(run_dir, key: str = "train/loss") -> list[float]:
    import csv

    rows = csv.DictReader(open(os.path.join(run_dir, "metrics.csv")))
    return [float(r[key]) for r in rows if r.get(key)]


def _one_and_two_processes(tmp_path, model_dir, sample_dir, extra: list[str] = ()) -> dict[str, tuple]:
    """The same fit on 1 process x 8 windows and on 2 DDP processes x 4: each run's directory and log."""
    common = [
        "fit",
        *sample_args(model_dir, sample_dir, validation=False),
        "--data.shuffle",
        "false",
        "--trainer.max_steps",
        "6",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
        "--model.learning_rate",
        "1e-3",
        *SMALL,
        *extra,
    ]
    runs = {}
    for name, devices in (
        ("one", ["--trainer.devices", "1", "--data.train_batch_size", "8"]),
        ("two", ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--data.train_batch_size", "4"]),
    ):
        root = tmp_path / name
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "lightning_qa.cli",
                *common,
                *devices,
                "--trainer.default_root_dir",
                str(root),
                "--data.cache_dir",
                str(tmp_path / f"cache-{name}"),
            ],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = (root / "version_0", proc.stdout + proc.stderr)
    return runs


def _assert_same_training(runs: dict[str, tuple], key: str = "train/loss") -> None:
    one, two = _train_losses(runs["one"][0], key), _train_losses(runs["two"][0], key)
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
    w1 = load_checkpoint(str(runs["one"][0] / "last.ckpt"))["state_dict"]
    w2 = load_checkpoint(str(runs["two"][0] / "last.ckpt"))["state_dict"]
    # Adam turns float noise in near-zero gradients into up to ~lr-sized steps: compare at that scale
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 2e-3


@requires_minilm
def test_ddp_two_processes_follow_the_single_process_loss_curve(tmp_path, no_dropout_model_dir, sample_dir):
    """Same global batch (1 x 8 vs 2 x 4), no shuffling, no dropout: same losses and weights."""
    runs = _one_and_two_processes(tmp_path, no_dropout_model_dir, sample_dir)
    _assert_same_training(runs)
    losses = _train_losses(runs["one"][0])
    assert losses[-1] < losses[0]  # it learns
    # the features were tokenized once (by local rank 0 in prepare_data); the other rank read the cache
    assert runs["two"][1].count("Tokenized train:") == 1


@requires_minilm
def test_ddp_distillation_follows_the_single_process_run(tmp_path, no_dropout_model_dir, sample_dir):
    """With a (BERT) teacher: the same CE, KL and total losses and weights on 1 and 2 processes; the two
    ranks shared one teacher pass (half the rows each, gathered) and read one logits file."""
    teacher = bert_teacher(tmp_path / "teacher", no_dropout_model_dir)
    runs = _one_and_two_processes(tmp_path, no_dropout_model_dir, sample_dir, ["--model.teacher", teacher])
    for key in ("train/loss", "train/kl_loss", "train/ce_loss"):
        _assert_same_training(runs, key)
    assert runs["two"][1].count("Teacher logits:") == 1 and "(on 2 process(es))" in runs["two"][1]
    files = os.listdir(tmp_path / "cache-two" / "features")
    assert len([f for f in files if ".teacher-" in f and f.endswith(".arrow")]) == 1


def _torchrun_two_nodes(args: list[str], logs_dir: Path, name: str) -> list[str]:
    """Run `lightning_qa.cli ARGS` as two torchrun "nodes" of one process each on this machine; their logs."""
    port = _free_port()
    outputs = [logs_dir / f"{name}-node{rank}.log" for rank in (0, 1)]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                *("-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1"),
                *("--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port)),
                *("-m", "lightning_qa.cli", *args),
            ],
            stdout=open(outputs[rank], "w"),
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )
        for rank in (0, 1)
    ]
    _wait_for_all(nodes, timeout=300)
    logs = [out.read_text() for out in outputs]
    assert [n.returncode for n in nodes] == [0, 0], f"node 0:\n{logs[0][-3000:]}\nnode 1:\n{logs[1][-3000:]}"
    return logs


def test_two_torchrun_nodes_train_validate_predict_and_write_one_file(tmp_path, tiny_model_dir, sample_dir):
    root = tmp_path / "runs"
    nodes = ["--trainer.num_nodes", "2", "--trainer.devices", "1", "--trainer.accelerator", "cpu"]
    nodes += ["--trainer.strategy", "ddp"]
    args = [
        "fit",
        *sample_args(tiny_model_dir, sample_dir, max_train=48, max_eval=21),
        *("--trainer.max_epochs", "1", *nodes),
        *run_dirs(tmp_path, root),
        *SMALL,
    ]
    logs = _torchrun_two_nodes(args, tmp_path, "fit")
    runs = [d for d in root.iterdir() if (d / "last.ckpt").exists()]
    assert len(runs) == 1 and (runs[0] / "best.ckpt").exists()
    assert len(json.loads((runs[0] / "predictions.json").read_text())) == 21  # both nodes' examples, once
    assert last_metrics(runs[0])["val/examples"] == 21
    assert sum(log.count("Tokenized validation:") for log in logs) == 1  # one machine, one tokenization
    # predict across the two nodes: each answers every other chunk of 16 (83 questions: 6 chunks, the last
    # short) into its part; the merged file is the one a single process writes
    predict = ["predict", "--ckpt_path", str(runs[0] / "best.ckpt"), *run_dirs(tmp_path, tmp_path / "p")]
    predict += ["--data.predict_file", str(sample_dir / "dev.json"), "--data.predict_chunk_size", "16"]
    _torchrun_two_nodes(
        [*predict, "--predictions_file", str(tmp_path / "two.jsonl"), *nodes], tmp_path, "predict"
    )
    main([*predict, "--predictions_file", str(tmp_path / "one.jsonl")])
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert len((tmp_path / "one.jsonl").read_text().splitlines()) == 83


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_half_precision_fit_gives_finite_losses_and_answers(tmp_path, tiny_model_dir, sample_dir, precision):
    root = tmp_path / "runs"
    main(
        [
            "fit",
            *sample_args(tiny_model_dir, sample_dir, max_train=32, max_eval=10),
            "--trainer.precision",
            precision,
            "--trainer.max_epochs",
            "1",
            "--trainer.log_every_n_steps",
            "1",
            *run_dirs(tmp_path, root),
            *SMALL,
        ]
    )
    losses = _train_losses(root / "version_0")
    assert losses and all(math.isfinite(x) for x in losses)
    scores = last_metrics(root / "version_0")
    assert scores["val/examples"] == 10 and math.isfinite(scores["val/loss"])
    predictions = json.loads((root / "version_0" / "predictions.json").read_text())
    assert len(predictions) == 10 and all(isinstance(a, str) and a for a in predictions.values())


@pytest.mark.slow
@pytest.mark.parametrize("pad_to_multiple_of", ["8", "64"])
def test_compiled_fit_and_predict(tmp_path, tiny_model_dir, sample_dir, pad_to_multiple_of):
    root = tmp_path / "runs"
    common = [
        "--model.compile",
        "true",
        "--data.pad_to_multiple_of",
        pad_to_multiple_of,
        *run_dirs(tmp_path, root),
        *SMALL,
    ]
    main(
        [
            "fit",
            *sample_args(tiny_model_dir, sample_dir, max_train=32, validation=False),
            "--trainer.max_steps",
            "3",
            "--trainer.log_every_n_steps",
            "1",
            *common,
        ]
    )
    assert all(math.isfinite(x) for x in _train_losses(root / "version_0"))
    out = tmp_path / "answers.jsonl"
    main(
        [
            "predict",
            "--model.model_name_or_path",
            tiny_model_dir,
            "--data.predict_file",
            str(sample_dir / "questions.jsonl"),
            "--predictions_file",
            str(out),
            *common,
        ]
    )
    assert len(out.read_text().splitlines()) == 10
