"""Settings travel with the model: one run, asked four ways, answers as its validation did.

A SQuAD 2.0 model fitted with windows of 256 tokens, stride 64 and answers of at most 20 tokens (fp32) is
asked the same questions by `lightning_qa predict --ckpt_path`, `QAPredictor(<run>/hf_model)`,
`QAPredictor(<run>/best.ckpt)` and the HTTP server, none of them told any setting: every answer must be
the same, with scores within 1e-5, and equal to what `lightning_qa validate` wrote for those questions.

Run: pytest tests/test_settings_travel.py
"""

import json
import os

import pytest
from helpers import Server, post, run_dirs

from lightning_qa import QAPredictor
from lightning_qa.checkpoint import load_checkpoint, read_settings, settings
from lightning_qa.cli import main
from lightning_qa.io import read_examples

N_QUESTIONS = 40
TRAINED = {"max_seq_length": 256, "doc_stride": 64, "max_answer_length": 20}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, sample_dir):
    """fit (SQuAD 2.0 validation tunes a no-answer threshold), then validate best.ckpt. It trains on the
    questions it is asked, so that it learns enough to answer some and leave others unanswered."""
    tmp = tmp_path_factory.mktemp("travel")
    data = [
        *("--data.train_file", str(sample_dir / "dev_v2.json")),
        *("--data.validation_file", str(sample_dir / "dev_v2.json")),
        *("--data.version_2_with_negative", "true"),
    ]
    main(
        [
            "fit",
            "--model.model_name_or_path",
            tiny_model_dir,
            *data,
            *("--data.max_seq_length", "256", "--data.doc_stride", "64", "--model.max_answer_length", "20"),
            *("--model.learning_rate", "1e-3", "--trainer.max_epochs", "6", "--seed_everything", "1"),
            *run_dirs(tmp),
        ]
    )
    run_dir = tmp / "runs" / "version_0"
    main(["validate", "--ckpt_path", str(run_dir / "best.ckpt"), *data, *run_dirs(tmp)])
    return run_dir, tmp / "runs" / "version_1"


def test_settings_are_stored_once_and_read_back(run):
    run_dir, _ = run
    stored = settings(load_checkpoint(str(run_dir / "best.ckpt")))
    assert {k: stored[k] for k in TRAINED} == TRAINED
    assert stored["version_2_with_negative"] is True and stored["decoding"] == "logits"
    assert stored["align_to_words"] is False and stored["null_score_diff_threshold"] != 0.0
    exported = read_settings(str(run_dir / "hf_model"))
    assert {k: exported[k] for k in stored if k != "metrics"} == {
        k: v for k, v in stored.items() if k != "metrics"
    }
    assert QAPredictor(str(run_dir / "hf_model"), device="cpu").options["max_seq_len"] == 256


def test_cli_python_checkpoint_and_server_answer_as_validation(run, sample_dir, tmp_path):
    run_dir, validate_dir = run
    records = read_examples(str(sample_dir / "dev_v2.json"), need_answers=False)[:N_QUESTIONS]
    questions = [r["question"] for r in records]
    contexts = [r["context"] for r in records]
    validated = json.loads((validate_dir / "predictions.json").read_text())

    out = tmp_path / "answers.jsonl"
    main(
        [
            "predict",
            *("--ckpt_path", str(run_dir / "best.ckpt")),
            *("--data.predict_file", str(sample_dir / "dev_v2.json")),
            *("--data.max_predict_samples", str(N_QUESTIONS)),
            *("--predictions_file", str(out)),
            *run_dirs(tmp_path),
        ]
    )
    cli = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in cli] == [r["id"] for r in records]
    answers = {"predict": cli}
    for name in ("hf_model", "best.ckpt"):
        answers[name] = QAPredictor(str(run_dir / name), device="cpu")(question=questions, context=contexts)
    server = Server(str(run_dir / "hf_model"), tmp_path / "server.log", ["--max_items", str(N_QUESTIONS)])
    try:
        server.wait_ready()
        status, answers["server"] = post(
            f"{server.url}/predict", {"question": questions, "context": contexts}
        )
        assert status == 200, answers["server"]
    finally:
        server.stop()

    assert sum(validated[r["id"]] == "" for r in records) not in (0, N_QUESTIONS)  # both kinds of answer
    for i, r in enumerate(records):
        for name, got in answers.items():
            want = cli[i]
            assert (got[i]["answer"], got[i]["start"], got[i]["end"]) == (
                want["answer"],
                want["start"],
                want["end"],
            ), (
                name,
                r["id"],
            )
            assert got[i]["score"] == pytest.approx(want["score"], abs=1e-5), (name, r["id"])
        assert cli[i]["answer"] == validated[r["id"]], r["id"]
    assert os.path.isfile(validate_dir / "evaluation.json")
