"""Interrupted runs: SIGKILL then resume equals an uninterrupted run; NaN losses stop cleanly.

Run: pytest tests/test_resume.py   (starts real `python -m lightning_qa.cli` processes)
"""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SMALL, bert_teacher, last_metrics, run_dirs, sample_args

from lightning_qa.checkpoint import load_checkpoint

TESTS = str(Path(__file__).resolve().parent)


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.pop("LIGHTNING_QA_RUN", None)
    return subprocess.run(
        [sys.executable, "-m", "lightning_qa.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _fit_args(tmp_path, model_dir, sample_dir, root: str) -> list[str]:
    return [
        "fit",
        *sample_args(model_dir, sample_dir, max_train=48, max_eval=12),
        "--data.train_batch_size",
        "8",
        "--trainer.max_epochs",
        "2",
        "--trainer.log_every_n_steps",
        "1",
        "--seed_everything",
        "7",
        *run_dirs(tmp_path, tmp_path / root),
        *SMALL,
    ]


@pytest.mark.parametrize("distill", [False, True], ids=["plain", "teacher"])
def test_killed_run_resumes_to_the_same_weights_and_metrics(tmp_path, tiny_model_dir, sample_dir, distill):
    """With a teacher too: its logits, computed once by the first run, serve the resumed one unchanged."""
    teacher = ["--model.teacher", bert_teacher(tmp_path / "teacher", tiny_model_dir)] if distill else []
    straight = _run(_fit_args(tmp_path, tiny_model_dir, sample_dir, "straight") + teacher)
    assert straight.returncode == 0, straight.stderr[-2000:]

    marker = tmp_path / "kill.marker"
    killed = _run(
        _fit_args(tmp_path, tiny_model_dir, sample_dir, "killed")
        + teacher
        + [
            "--trainer.callbacks+=fault_injection.KillAtEpoch",
            "--trainer.callbacks.epoch=1",
            f"--trainer.callbacks.marker={marker}",
        ]
    )
    assert killed.returncode == -signal.SIGKILL and marker.exists()  # really killed, after epoch 0
    run = tmp_path / "killed" / "version_0"
    after_kill = load_checkpoint(str(run / "last.ckpt"))
    assert after_kill["epoch"] == 0

    resumed = _run(["fit", "-c", str(run / "config.yaml"), "--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["version_0"]  # same run directory

    a = load_checkpoint(str(tmp_path / "straight" / "version_0" / "last.ckpt"))
    b = load_checkpoint(str(run / "last.ckpt"))
    assert a["global_step"] == b["global_step"] == 2 * after_kill["global_step"]  # the step count continued
    assert a["epoch"] == b["epoch"] == 1
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    final = last_metrics(tmp_path / "straight" / "version_0")
    again = last_metrics(run)
    for key in ("val/exact_match", "val/f1", "val/loss"):
        assert again[key] == final[key]
    if distill:
        assert final["train/kl_loss"] == again["train/kl_loss"] > 0
        logs = [p.stderr for p in (straight, killed, resumed)]
        assert [log.count("Teacher logits:") for log in logs] == [1, 0, 0]  # computed once, then read


@pytest.mark.parametrize("sampler", ["shuffled", "length_grouped"])
def test_killed_mid_epoch_resumes_at_the_exact_batch(tmp_path, tiny_model_dir, sample_dir, sampler):
    """`--last_checkpoint.every_n_train_steps`: killed two steps after a mid-epoch checkpoint, the run
    resumes at the next batch of that epoch (not at the epoch's start) and ends as an uninterrupted one."""
    grouped = ["--data.group_by_length", str(sampler == "length_grouped").lower()]
    straight = _run(_fit_args(tmp_path, tiny_model_dir, sample_dir, "straight") + grouped)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a = load_checkpoint(str(tmp_path / "straight" / "version_0" / "last.ckpt"))
    per_epoch = a["global_step"] // 2
    assert per_epoch >= 4  # so that step per_epoch + 2 is inside the second epoch

    marker, save_every = tmp_path / "kill.marker", per_epoch + 2
    killed = _run(
        _fit_args(tmp_path, tiny_model_dir, sample_dir, "killed")
        + grouped
        + [
            f"--last_checkpoint.every_n_train_steps={save_every}",
            "--trainer.callbacks+=fault_injection.KillAtStep",
            f"--trainer.callbacks.step={save_every + 2}",
            f"--trainer.callbacks.marker={marker}",
        ]
    )
    assert killed.returncode == -signal.SIGKILL and marker.exists()
    run = tmp_path / "killed" / "version_0"
    after_kill = load_checkpoint(str(run / "last.ckpt"))
    assert (after_kill["epoch"], after_kill["global_step"]) == (1, save_every)  # 2 batches into epoch 1
    assert after_kill["SquadDataModule"] == {"train_position": {"epoch": 1, "batches": 2}}

    resumed = _run(["fit", "-c", str(run / "config.yaml"), "--ckpt_path", "last"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "dataloader is not resumable" not in resumed.stderr
    b = load_checkpoint(str(run / "last.ckpt"))
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"] == 1
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    final, again = last_metrics(tmp_path / "straight" / "version_0"), last_metrics(run)
    for key in ("val/exact_match", "val/f1", "val/loss"):
        assert again[key] == final[key]


def test_nonfinite_loss_stops_with_one_line_and_keeps_the_good_checkpoint(
    tmp_path, tiny_model_dir, sample_dir
):
    proc = _run(
        _fit_args(tmp_path, tiny_model_dir, sample_dir, "nan")
        + ["--trainer.callbacks+=fault_injection.PoisonAtEpoch", "--trainer.callbacks.epoch=1"]
    )
    assert proc.returncode == 2
    assert re.search(
        r"^lightning_qa: error: non-finite training loss at step \d+: run stopped", proc.stderr, re.M
    )
    assert "Traceback" not in proc.stderr
    kept = load_checkpoint(str(tmp_path / "nan" / "version_0" / "last.ckpt"))
    assert kept["epoch"] == 0 and all(
        torch.isfinite(v).all() for v in kept["state_dict"].values() if v.is_floating_point()
    )
