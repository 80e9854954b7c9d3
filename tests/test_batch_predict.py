"""`lightning_qa predict` over large inputs: read as a stream, answered chunk by chunk and written as it
goes, resumed after a kill into the very file an uninterrupted run writes, refused over another run's
output, and shared between processes.

Run: pytest tests/test_batch_predict.py   (starts real `python -m lightning_qa.cli` processes)
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SAMPLE_DIR, run_dirs

from lightning_qa import QAPredictor
from lightning_qa.cli import main
from lightning_qa.io import DataError, count_examples, iter_examples, read_examples
from lightning_qa.prediction_file import META_SUFFIX

TESTS = str(Path(__file__).resolve().parent)
CHUNK = 24


def many_questions(tmp_path: Path, n: int) -> Path:
    """`n` questions as JSON Lines: the sample's dev questions again and again, each with a new id."""
    records = read_examples(str(SAMPLE_DIR / "dev.json"), need_answers=False)
    path = tmp_path / f"questions-{n}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            r = records[i % len(records)]
            f.write(json.dumps({"id": f"q{i}", "question": r["question"], "context": r["context"]}) + "\n")
    return path


def predict_args(model: str, questions: Path, out: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "predict",
        *("--model.model_name_or_path", model, "--data.predict_file", str(questions)),
        *("--predictions_file", str(out), "--data.predict_chunk_size", str(CHUNK)),
        *("--data.max_seq_length", "128", "--data.doc_stride", "32"),
        *run_dirs(tmp_path),
        *extra,
    ]


def run_cli(args: list[str], *callbacks: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    env.pop("LIGHTNING_QA_RUN", None)
    extra = [a for c in callbacks for a in ("--trainer.callbacks+", c)]
    return subprocess.run(
        [sys.executable, "-m", "lightning_qa.cli", *args, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_streamed_input_is_checked_first_and_read_again_alike(tmp_path):
    for name in ("dev.json", "questions.jsonl"):
        path = str(SAMPLE_DIR / name)
        assert count_examples(path) == (len(list(iter_examples(path))), frozenset())
        assert list(iter_examples(path)) == read_examples(path, need_answers=False)
    bad = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "a", "question": "Who?", "context": "Ann did."}),
        "{not json",
        json.dumps({"id": "b", "question": "", "context": "Bo did."}),
        json.dumps({"id": "a", "question": "Who again?", "context": "Ann did."}),
    ]
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        count_examples(str(bad))
    assert e.value.lines() == [
        f"{bad}: line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{bad}: line 3 (id 'b'): empty or non-text 'question'",
        f"{bad}: line 4 (id 'a'): duplicate id, first used at line 1",
    ]
    kept, dropped = count_examples(str(bad), on_bad_record="skip")
    assert (kept, dropped) == (1, {"line 2", "line 3", "line 4"})
    # read again without tracking ids (memory flat in the file's size): the pre-pass says what to leave out
    assert [r["id"] for r in iter_examples(str(bad), dropped)] == ["a"]
    assert [r["id"] for r in iter_examples(str(bad))] == ["a", "a"]


def test_output_is_in_input_order_and_is_what_the_predictor_answers(tmp_path, tiny_model_dir):
    questions = many_questions(tmp_path, 100)
    out = tmp_path / "answers.jsonl"
    main(predict_args(tiny_model_dir, questions, out, tmp_path))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [f"q{i}" for i in range(100)]
    assert list(records[0]) == ["id", "answer", "score", "start", "end"]
    assert json.loads(Path(f"{out}{META_SUFFIX}").read_text())["complete"] is True
    predictor = QAPredictor(tiny_model_dir, device="cpu")
    options = dict(decoding="logits", max_answer_len=30, max_seq_len=128, doc_stride=32, batch_size=16)
    asked = [json.loads(line) for line in questions.read_text().splitlines()]
    streamed = list(predictor.stream(iter(asked), chunk_size=CHUNK, **options))
    listed = predictor(
        question=[q["question"] for q in asked], context=[q["context"] for q in asked], **options
    )
    assert [(a["answer"], a["start"], a["end"]) for a in streamed] == [
        (a["answer"], a["start"], a["end"]) for a in listed
    ]
    for record, answer in zip(records, streamed, strict=True):
        assert (record["answer"], record["start"], record["end"]) == (
            answer["answer"],
            answer["start"],
            answer["end"],
        )
        assert record["score"] == pytest.approx(answer["score"], abs=1e-5)


def test_killed_predict_resumes_into_the_same_file(tmp_path, tiny_model_dir):
    """SIGKILL half way, a torn last line added on top: the same command continues after the last whole
    chunk and ends with the bytes of an uninterrupted run; run again, a complete output is kept."""
    questions = many_questions(tmp_path, 150)
    whole = tmp_path / "whole.jsonl"
    main(predict_args(tiny_model_dir, questions, whole, tmp_path))
    out = tmp_path / "resumed.jsonl"
    args = predict_args(tiny_model_dir, questions, out, tmp_path / "k", "--data.eval_batch_size", "16")
    marker = tmp_path / "killed"
    kill = json.dumps(
        {"class_path": "fault_injection.KillAtPredictBatch", "init_args": {"batch": 6, "marker": str(marker)}}
    )
    killed = run_cli(args, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = out.read_text().splitlines()
    assert 0 < len(done) < 150 and len(done) % CHUNK == 0  # whole chunks only, flushed as they were answered
    with open(out, "a", encoding="utf-8") as f:
        f.write('{"id": "q999", "answer": "tor')  # as if the kill had landed mid-write
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert out.read_bytes() == whole.read_bytes()
    again = run_cli(args)
    assert again.returncode == 0 and "is complete (150 answers): nothing to do" in again.stderr + again.stdout


def test_another_runs_partial_output_is_refused(tmp_path, tiny_model_dir, capsys):
    questions = many_questions(tmp_path, 60)
    out = tmp_path / "answers.jsonl"
    main(predict_args(tiny_model_dir, questions, out, tmp_path))
    meta = json.loads(Path(f"{out}{META_SUFFIX}").read_text())
    meta["complete"] = False  # a partial output ...
    Path(f"{out}{META_SUFFIX}").write_text(json.dumps(meta))
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # ... continued with other settings
        main(predict_args(tiny_model_dir, questions, out, tmp_path, "--model.max_answer_length", "5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1
    assert err[0].startswith(f"lightning_qa: error: {out} was written by another run (rule differ)")
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("{}\n")
    with pytest.raises(SystemExit) as e:
        main(predict_args(tiny_model_dir, questions, foreign, tmp_path))
    assert e.value.code == 2 and "not a lightning_qa predict output" in capsys.readouterr().err
    main(predict_args(tiny_model_dir, questions, foreign, tmp_path, "--overwrite_predictions", "true"))
    assert len(foreign.read_text().splitlines()) == 60


def test_two_processes_write_parts_merged_into_the_one_process_file(tmp_path, tiny_model_dir):
    """DDP on 2 CPU processes, 101 questions in chunks of 24 (5 chunks: 3 and 2 per rank, the last short):
    the merged file equals the single-process one, each answer once, in input order."""
    questions = many_questions(tmp_path, 101)
    single, double = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert run_cli(predict_args(tiny_model_dir, questions, single, tmp_path / "a")).returncode == 0
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    result = run_cli(predict_args(tiny_model_dir, questions, double, tmp_path / "b", *ddp))
    assert result.returncode == 0, result.stderr[-3000:]
    assert double.read_bytes() == single.read_bytes()
    assert not list(tmp_path.glob("two.jsonl.part*"))
