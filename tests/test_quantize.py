"""int8 inference: the accuracy-checked export, loading it everywhere with no option, quantizing on request,
the refusal, and the bf16 warning on CPUs without native bf16.

Run: pytest tests/test_quantize.py
"""

import json
import os
from pathlib import Path

import lightning
import pytest
import torch
from helpers import SAMPLE_DIR, run_dirs
from test_export import fake_trainer, make_checkpoint

from lightning_qa import hardware
from lightning_qa.callbacks import ExportBestModel
from lightning_qa.checkpoint import SETTINGS_FILE
from lightning_qa.cli import main
from lightning_qa.model_card import CARD_FILE
from lightning_qa.predictor import QAPredictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from lightning_qa.onnx_export import OnnxQAModel  # noqa: E402
from lightning_qa.quantize import CHECK_BATCH_SIZES, FALLBACK, check_examples, score  # noqa: E402

DEV = str(SAMPLE_DIR / "dev.json")
TOLERANCE = 1.0  # the default --max_f1_drop


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_model_dir) -> Path:
    """A SQuAD v1.1 checkpoint whose run validated on the sample's dev file."""
    path = make_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", tiny_model_dir, v2=False)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["validation_file"] = DEV
    checkpoint["pytorch-lightning_version"] = lightning.__version__  # so `predict --ckpt_path` restores it
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def int8_dir(ckpt, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "qa-int8"
    main(["export", str(ckpt), str(out), "--quantize", "int8"])  # check file: the run's validation file
    return out


def test_int8_export_is_checked_recorded_and_answers_like_fp32(ckpt, int8_dir):
    assert (int8_dir / "model_int8.onnx").is_file() and not (int8_dir / "model.safetensors").exists()
    q = json.loads((int8_dir / SETTINGS_FILE).read_text())["quantization"]
    check = q["check"]
    assert check["file"] == "dev.json" and check["file_bytes"] == os.path.getsize(DEV)
    assert check["questions"] == len(check_examples(DEV, 1000, False)) and check["max_f1_drop"] == TOLERANCE
    assert check["fp32"]["f1"] - check["int8"]["f1"] <= TOLERANCE
    assert (
        q["library"].startswith("onnxruntime ")
        and q["per_channel"] is True
        and q["bytes"] < q["fp32_onnx_bytes"]
    )
    assert [t["kept_float32"] for t in q["tried"]] == [list(k) for k in FALLBACK[: len(q["tried"])]]
    assert "qa_outputs" in q["kept_float32"] and "qa_outputs" in q["kept_modules"]  # the head never int8
    by_batch = check["int8_by_batch_size"]
    assert list(by_batch) == [str(b) for b in CHECK_BATCH_SIZES]
    assert check["int8"] == min(by_batch.values(), key=lambda s: s["f1"])  # the worst batch size is judged
    card = (int8_dir / CARD_FILE).read_text()
    for b, s in by_batch.items():
        assert f"| int8, batch {b} windows | {s['exact_match']:.2f} | {s['f1']:.2f} |" in card
    assert f"| float32 | {check['fp32']['exact_match']:.2f} | {check['fp32']['f1']:.2f} |" in card
    assert f"| int8 | {check['int8']['exact_match']:.2f} | {check['int8']['f1']:.2f} |" in card
    assert "`dev.json`" in card and "AutoModelForQuestionAnswering" not in card  # no float32 weights here

    int8 = QAPredictor(str(int8_dir))  # no option: the export says it is int8
    assert isinstance(int8.model, OnnxQAModel) and int8.model.path.endswith("model_int8.onnx")
    fp32 = QAPredictor(str(ckpt), device="cpu")
    examples = check_examples(DEV, 1000, False)
    assert fp32.options == int8.options  # same stored windows and answer rule
    assert score(fp32, examples, False)["f1"] - score(int8, examples, False)["f1"] <= TOLERANCE
    assert score(int8, examples, False, batch_size=1) == by_batch["1"]  # the check's figures, reproduced
    batch = int8.tokenizer(["Who built the mill?"], ["Ann built the mill in 1887."], return_tensors="pt")
    with torch.inference_mode():
        ref = fp32.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        got = int8.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert not torch.equal(got.start_logits, ref.start_logits)  # really another model
    torch.testing.assert_close(got.start_logits, ref.start_logits, atol=0.05, rtol=0.05)


def test_int8_export_loads_in_the_server_with_no_option(int8_dir):
    pytest.importorskip("litserve")
    from lightning_qa.serve import QAServeAPI, _is_int8_export

    api = QAServeAPI(str(int8_dir))
    api.setup("cpu")
    good = {"question": "Who built the mill?", "context": "Ann built the mill in 1887 by the river."}
    assert isinstance(api.predictor.model, OnnxQAModel) and _is_int8_export(str(int8_dir))
    assert api.predict(api.decode_request(good)) == QAPredictor(str(int8_dir))(**good)


def test_quantize_on_request_in_the_predictor_and_the_server(tiny_model_dir):
    pytest.importorskip("litserve")
    from lightning_qa.serve import QAServeAPI

    good = {"question": "Who built the mill?", "context": "Ann built the mill in 1887 by the river."}
    int8 = QAPredictor(tiny_model_dir, quantize="int8")
    assert isinstance(int8.model, OnnxQAModel) and int8.device.type == "cpu"
    api = QAServeAPI(tiny_model_dir, predictor_options={"quantize": "int8"})
    api.setup("cpu")
    assert isinstance(api.predictor.model, OnnxQAModel)
    assert api.predict(api.decode_request(good)) == int8(**good)
    with pytest.raises(ValueError, match="no dtype or compile"):
        QAPredictor(tiny_model_dir, quantize="int8", dtype="bf16")
    with pytest.raises(ValueError, match="quantize must be"):
        QAPredictor(tiny_model_dir, quantize="int4")


def test_predict_runs_the_int8_export_and_quantizes_on_request(ckpt, int8_dir, tmp_path):
    questions = SAMPLE_DIR / "questions.jsonl"
    stored = ["--data.max_seq_length", "256", "--data.doc_stride", "64", "--data.max_question_length", "48"]
    runs = {
        "export": ["--model.model_name_or_path", str(int8_dir), *stored],
        "on request": ["--ckpt_path", str(ckpt), "--model.quantize", "int8"],
    }
    records = [json.loads(line) for line in questions.read_text().splitlines()]
    expected = QAPredictor(str(int8_dir))(
        question=[r["question"] for r in records], context=[r["context"] for r in records]
    )
    for name, args in runs.items():
        out = tmp_path / f"{name}.jsonl"
        main(
            [
                "predict",
                *args,
                *("--data.predict_file", str(questions), "--predictions_file", str(out)),
                *run_dirs(tmp_path / name),
            ]
        )
        got = [json.loads(line) for line in out.read_text().splitlines()]
        assert [g["answer"] for g in got] == [e["answer"] for e in expected], name


def test_refused_when_the_drop_exceeds_the_limit(ckpt, tmp_path, capsys):
    out = tmp_path / "exports" / "qa-int8"
    with pytest.raises(SystemExit) as e:
        main(
            ["export", str(ckpt), str(out), "--quantize", "int8", "--check_file", DEV, "--max_f1_drop", "-1"]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lightning_qa: error: int8 refused: F1 fp32 "), err
    assert ", int8 " in err[0] and f"best of {len(FALLBACK)} options" in err[0] and "dev.json" in err[0]
    assert "worst of batch sizes 1, 8, 32" in err[0]
    assert not out.exists() and os.listdir(out.parent) == []  # nothing left, not even a temporary directory


def test_a_check_file_is_required(tmp_path, tiny_model_dir, capsys):
    no_validation = make_checkpoint(tmp_path / "run" / "best.ckpt", tiny_model_dir, v2=False)
    cases = [
        ([], "needs --check_file"),
        (["--check_file", str(tmp_path / "missing.json")], "missing.json: check file not found"),
        (["--check_file", DEV, "--quantize", "int4"], "--quantize must be one of ['int8']"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as e:
            main(["export", str(no_validation), str(tmp_path / "out"), "--quantize", "int8", *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and message in err[0], err
        assert not (tmp_path / "out").exists()


def test_end_of_fit_int8_export_and_its_refusal(ckpt):
    trainer = fake_trainer(ckpt)
    ExportBestModel(quantize="int8", max_f1_drop=-1).on_fit_end(trainer, None)
    assert (
        ckpt.parent / "hf_model" / "model.safetensors"
    ).is_file()  # refused int8: the float32 export stays
    assert not (ckpt.parent / "hf_model_int8").exists()
    ExportBestModel(quantize="int8").on_fit_end(trainer, None)
    q = json.loads((ckpt.parent / "hf_model_int8" / SETTINGS_FILE).read_text())["quantization"]
    assert q["check"]["file"] == "dev.json"


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(hardware, "_warned", False)


def test_bf16_warns_once_on_a_cpu_without_native_bf16(tiny_model_dir, no_native_bf16, recwarn):
    QAPredictor(tiny_model_dir, dtype="bf16", device="cpu")
    QAPredictor(tiny_model_dir, dtype="bf16", device="cpu")
    slow = [w for w in recwarn if "slower than fp32" in str(w.message)]
    assert len(slow) == 1 and "neither AMX nor AVX-512 BF16" in str(slow[0].message)


def test_no_bf16_warning_with_native_bf16_or_fp32(tiny_model_dir, monkeypatch, recwarn):
    monkeypatch.setattr(hardware, "_warned", False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    QAPredictor(tiny_model_dir, dtype="bf16", device="cpu")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    QAPredictor(tiny_model_dir, dtype="fp32", device="cpu")
    assert not [w for w in recwarn if "slower than fp32" in str(w.message)]
    info = hardware.cpu_info()
    assert info["cpu"] and info["avx512_bf16"] is False and info["amx"] is False


def test_fit_in_bf16_on_such_a_cpu_warns(tmp_path, tiny_model_dir, no_native_bf16):
    args = [
        "fit",
        "--model.model_name_or_path",
        tiny_model_dir,
        "--data.train_file",
        str(SAMPLE_DIR / "train.json"),
    ]
    args += ["--data.max_train_samples", "8", "--data.max_seq_length", "96", "--data.doc_stride", "32"]
    args += ["--trainer.max_steps", "1", "--trainer.precision", "bf16-mixed", "--trainer.accelerator", "cpu"]
    with pytest.warns(UserWarning, match="slower than fp32"):
        main([*args, *run_dirs(tmp_path)])
