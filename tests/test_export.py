"""`lightning_qa export`: Hugging Face directory, model card, ONNX graph, hub upload (offline, faked).

Run: pytest tests/test_export.py
"""

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers import run_dirs, sample_args
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from lightning_qa.callbacks import ExportBestModel
from lightning_qa.checkpoint import SETTINGS_FILE
from lightning_qa.cli import main
from lightning_qa.export import export_checkpoint
from lightning_qa.model import QAModel
from lightning_qa.model_card import CARD_FILE

METRICS = {"exact": 61.25, "f1": 64.5, "exact_match": 61.25, "best_f1_thresh": -1.75, "examples": 40.0}


def make_checkpoint(path: Path, model_dir: str, v2: bool = True, config: bool = True) -> Path:
    """A lightning_qa checkpoint as `fit` writes it (the same hooks), without running a training."""
    model = QAModel(model_name_or_path=model_dir, version_2_with_negative=v2)
    model.last_metrics = dict(METRICS)
    model.tuned_null_threshold = -1.75
    hparams = dict(model.hparams)
    hparams["model_name_or_path"] = "distilbert/distilbert-base-uncased"  # as if fine-tuned from the hub
    hparams["learning_rate"] = 3e-5
    checkpoint = {
        "epoch": 1,
        "global_step": 250,
        "state_dict": {f"model.{k}": v for k, v in model.model.state_dict().items()},
        "hyper_parameters": hparams,
        "datamodule_hyper_parameters": {
            "dataset_name": "squad_v2" if v2 else "squad",
            "version_2_with_negative": v2,
            "max_seq_length": 256,
            "doc_stride": 64,
            "max_question_length": 48,
            "train_batch_size": 12,
        },
    }
    model.on_save_checkpoint(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    if config:  # what LightningCLI saves beside the checkpoints
        trainer = {"precision": "bf16-mixed", "max_epochs": 2, "max_steps": -1, "accumulate_grad_batches": 2}
        (path.parent / "config.yaml").write_text(yaml.safe_dump({"seed_everything": 7, "trainer": trainer}))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, tiny_model_dir) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("run") / "best.ckpt", tiny_model_dir)


def front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.S)
    assert match, "model card without YAML front matter"
    return yaml.safe_load(match.group(1))


def code_blocks(card: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card, re.S)


def test_export_writes_model_card_and_decoding_settings(ckpt, tmp_path, capsys):
    out = tmp_path / "my-qa-model"
    main(["export", str(ckpt), str(out)])
    assert f"Exported {ckpt} to {out}" in capsys.readouterr().out
    for name in ("model.safetensors", "config.json", "tokenizer.json", SETTINGS_FILE, CARD_FILE):
        assert (out / name).is_file(), name
    assert not (out / "model.onnx").exists()
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["tuned_null_threshold"] == -1.75 and settings["null_score_diff_threshold"] == -1.75
    assert settings["version_2_with_negative"] is True
    assert (settings["max_seq_length"], settings["doc_stride"]) == (256, 64)
    assert settings["metrics"] == METRICS

    card = (out / CARD_FILE).read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "question-answering"
    assert {"question-answering", "squad_v2"} <= set(meta["tags"])
    assert meta["base_model"] == "distilbert/distilbert-base-uncased"
    assert meta["datasets"] == ["squad_v2"]
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"]["type"] == "squad_v2"
    assert {m["type"]: m["value"] for m in results["metrics"]} == {"exact_match": 61.25, "f1": 64.5}
    body = card.split("---\n", 2)[2]
    for row in (
        "| Learning rate | 3e-05 |",
        "| Batch size (per device) | 12 |",
        "| Gradient accumulation | 2 |",
        "| Max epochs | 2 |",
        "| Epoch of this checkpoint | 2 |",
        "| Optimizer steps of this checkpoint | 250 |",
        "| Precision | bf16-mixed |",
        "| max_seq_length | 256 |",
        "| doc_stride | 64 |",
        "| Seed | 7 |",
        "| f1 | 64.50 |",
        "| examples | 40 |",
    ):
        assert row in body, row
    assert "Max steps" not in body  # -1: not set
    assert "Hugging Face dataset `squad_v2`" in body and "tuned on validation: -1.75" in body
    assert "QAPredictor(" in body and "AutoModelForQuestionAnswering.from_pretrained(" in body


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_export_directories_get_the_umask_permissions(ckpt, tmp_path, umask):
    """An export is readable by whoever the user's umask lets read new directories (a temporary
    directory is 0700 whatever the umask: other users and containers could not load the model)."""
    from lightning_qa.checkpoint import materialize

    old = os.umask(umask)
    try:
        out = export_checkpoint(str(ckpt), str(tmp_path / "model"))
        cached = materialize(str(ckpt), cache_dir=str(tmp_path / "cache"))
    finally:
        os.umask(old)
    for path in (out, cached):
        assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask, path


def test_model_card_transformers_snippet_runs(ckpt, tmp_path):
    out = tmp_path / "model"
    export_checkpoint(str(ckpt), str(out))
    blocks = code_blocks((out / CARD_FILE).read_text())
    snippet = next(b for b in blocks if "AutoModelForQuestionAnswering" in b)
    assert json.dumps(str(out)) in snippet
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})
    answer = printed.getvalue().strip()
    # the random tiny model answers anything, but from the context's tokens (uncased, accents stripped)
    assert answer and all(word in "zoe opened the cafe lumiere in 1887." for word in answer.split())


def test_model_card_predictor_snippet_runs(ckpt, tmp_path):
    out = tmp_path / "model"
    export_checkpoint(str(ckpt), str(out))
    snippet = next(b for b in code_blocks((out / CARD_FILE).read_text()) if "QAPredictor(" in b)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})
    assert "'answer'" in printed.getvalue() or '"answer"' in printed.getvalue()


def test_card_without_run_config_or_hub_names(tmp_path, tiny_model_dir):
    ckpt = make_checkpoint(tmp_path / "run" / "best.ckpt", tiny_model_dir, v2=False, config=False)
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["model_name_or_path"] = tiny_model_dir  # a local path: no base_model
    checkpoint["datamodule_hyper_parameters"] = {"train_file": "/data/train.jsonl", "train_batch_size": 4}
    checkpoint["lightning_qa"]["metrics"] = {}
    torch.save(checkpoint, ckpt)
    out = export_checkpoint(str(ckpt), str(tmp_path / "out"))
    card = (Path(out) / CARD_FILE).read_text()
    meta = front_matter(card)
    assert "base_model" not in meta and "datasets" not in meta and "model-index" not in meta
    assert "Training file: `train.jsonl`" in card and "No validation metrics were recorded" in card
    assert "Precision" not in card and "No-answer threshold" not in card


def test_export_onnx_matches_pytorch_and_runs_in_onnxruntime(ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lightning_qa.onnx_export import OnnxQAModel

    out = tmp_path / "onnx-model"
    main(["export", str(ckpt), str(out), "--onnx"])
    printed = capsys.readouterr().out
    assert "max abs difference from PyTorch logits" in printed
    info = json.loads((out / SETTINGS_FILE).read_text())["onnx"]
    assert info["file"] == "model.onnx" and (out / "model.onnx").is_file()
    assert info["inputs"] == ["input_ids", "attention_mask"]  # DistilBERT: no token_type_ids
    assert 0 <= info["max_abs_diff"] < 1e-4 and f"{info['max_abs_diff']:.3g}" in printed
    assert "onnx" in front_matter((out / CARD_FILE).read_text())["tags"]
    # dynamic batch and sequence: shapes the export never saw, compared with the PyTorch model
    torch_model = AutoModelForQuestionAnswering.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    onnx_model = OnnxQAModel(str(out))
    for n, context in ((1, "Ann built the mill."), (5, "A much longer context about the mill. " * 20)):
        batch = tokenizer(["Who built it?"] * n, [context] * n, return_tensors="pt")
        with torch.no_grad():
            ref = torch_model(**batch)
        got = onnx_model(**batch)
        assert got.start_logits.shape == (n, batch["input_ids"].shape[1])
        assert got.start_logits.dtype == torch.float32
        torch.testing.assert_close(got.start_logits, ref.start_logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got.end_logits, ref.end_logits, atol=1e-4, rtol=1e-4)


def test_onnx_export_of_a_model_with_token_type_ids(tmp_path, bert_tokenizer):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from transformers import BertConfig

    from lightning_qa.onnx_export import OnnxQAModel, export_onnx

    config = BertConfig(
        vocab_size=len(bert_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(config).eval()
    info = export_onnx(model, bert_tokenizer, str(tmp_path))
    assert info["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and info["max_abs_diff"] < 1e-4
    batch = bert_tokenizer(
        ["Who?", "Where?"], ["Ann built it.", "In the old town by the river."], padding=True
    )
    batch = {k: torch.tensor(v) for k, v in batch.items()}
    with torch.no_grad():
        ref = model(**batch)
    torch.testing.assert_close(
        OnnxQAModel(str(tmp_path))(**batch).end_logits, ref.end_logits, atol=1e-4, rtol=1e-4
    )


def test_predictor_answers_the_same_with_onnxruntime(ckpt, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lightning_qa import predictor
    from lightning_qa.onnx_export import OnnxQAModel

    out = export_checkpoint(str(ckpt), str(tmp_path / "m"), onnx=True)
    questions = ["Who built the mill?", "When?"]
    contexts = ["Ann built the mill in 1887 by the river.", "It opened in 1887. " * 40]
    by_torch = predictor.QAPredictor(out)(question=questions, context=contexts)
    by_onnx = predictor.QAPredictor(out, model=OnnxQAModel(out))(question=questions, context=contexts)
    for a, b in zip(by_torch, by_onnx, strict=True):
        assert (a["answer"], a["start"], a["end"]) == (b["answer"], b["start"], b["end"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_missing_onnx_extra_is_one_clear_line(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as e:
        main(["export", str(ckpt), str(out), "--onnx"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lightning_qa: error: ")
    assert 'pip install "lightning_qa[onnx]"' in err[0] and "onnxscript" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".hf_model-*"))  # nothing half-written left


def test_not_a_lightning_qa_checkpoint_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(SystemExit) as e:
        main(["export", str(bad), str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lightning_qa: error: {bad}: not a lightning_qa checkpoint (no model config and tokenizer stored in it)"
    ]


class FakeHub:
    """Records what would go to the hub: the repo created and the files of the folder uploaded."""

    def __init__(self, monkeypatch, fail: Exception | None = None):
        import huggingface_hub

        self.created, self.uploads, self.fail = [], [], fail
        monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", self.upload_folder)

    def create_repo(self, repo_id, **kwargs):
        self.created.append((repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        if self.fail:
            raise self.fail
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        self.uploads.append({"folder": folder_path, "repo_id": repo_id, "files": files, **kwargs})


def test_push_to_hub_uploads_the_exported_folder(ckpt, tmp_path, monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    out = tmp_path / "model"
    main(["export", str(ckpt), str(out), "--push_to_hub", "someone/qa-model", "--private"])
    assert hub.created == [("someone/qa-model", {"repo_type": "model", "private": True, "exist_ok": True})]
    [upload] = hub.uploads
    assert Path(upload["folder"]) == out and upload["repo_id"] == "someone/qa-model"
    assert upload["repo_type"] == "model"
    assert {"model.safetensors", "config.json", SETTINGS_FILE, CARD_FILE} <= set(upload["files"])
    card = upload["files"][CARD_FILE].decode()
    assert 'QAPredictor("someone/qa-model")' in card and "# qa-model" in card
    assert f"Pushed {out} to https://huggingface.co/someone/qa-model" in capsys.readouterr().out


def test_export_does_not_push_by_default(ckpt, tmp_path, monkeypatch):
    hub = FakeHub(monkeypatch)
    main(["export", str(ckpt), str(tmp_path / "model")])
    assert hub.created == [] and hub.uploads == []


def test_failed_push_is_one_line_and_keeps_the_export(ckpt, tmp_path, monkeypatch, capsys):
    FakeHub(monkeypatch, fail=OSError("401 Client Error: Unauthorized\nlong server text"))
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as e:
        main(["export", str(ckpt), str(out), "--push_to_hub", "someone/qa-model"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lightning_qa: error: exported to {out}, but pushing to someone/qa-model failed: "
        "401 Client Error: Unauthorized"
    ]
    assert (out / "model.safetensors").is_file()


def fake_trainer(ckpt: Path) -> SimpleNamespace:
    return SimpleNamespace(
        checkpoint_callbacks=[
            SimpleNamespace(best_model_path=str(ckpt), last_model_path="", monitor="val/f1")
        ],
        is_global_zero=True,
        precision="16-mixed",
        max_epochs=3,
        max_steps=-1,
        accumulate_grad_batches=1,
        world_size=4,
        strategy=SimpleNamespace(barrier=lambda name: None),
    )


def test_end_of_fit_export_writes_the_card_and_pushes(ckpt, monkeypatch):
    hub = FakeHub(monkeypatch)
    ExportBestModel(push_to_hub="someone/fit-model").on_fit_end(fake_trainer(ckpt), None)
    out = ckpt.parent / "hf_model"
    card = (out / CARD_FILE).read_text()
    assert "| Precision | 16-mixed |" in card and "| Devices | 4 |" in card and "| Max epochs | 3 |" in card
    assert "| Seed | 7 |" in card  # from the run's config.yaml
    assert [(u["folder"], u["repo_id"]) for u in hub.uploads] == [(str(out), "someone/fit-model")]


def test_end_of_fit_push_failure_warns_and_keeps_the_export(ckpt, monkeypatch):
    FakeHub(monkeypatch, fail=OSError("no network"))
    with pytest.warns(UserWarning, match="someone/fit-model failed: no network"):
        ExportBestModel(push_to_hub="someone/fit-model").on_fit_end(fake_trainer(ckpt), None)
    assert (ckpt.parent / "hf_model" / "model.safetensors").is_file()


def test_fit_exports_and_pushes_when_asked(tmp_path, tiny_model_dir, sample_dir, monkeypatch):
    """`lightning_qa fit --export.push_to_hub REPO`: the end-of-fit export, card included, is uploaded."""
    hub = FakeHub(monkeypatch)
    root = tmp_path / "runs"
    main(
        [
            "fit",
            *sample_args(tiny_model_dir, sample_dir, max_train=16, max_eval=4),
            "--data.max_seq_length",
            "96",
            "--data.doc_stride",
            "32",
            "--data.max_question_length",
            "32",
            "--trainer.max_steps",
            "2",
            *run_dirs(tmp_path, root),
            "--export.push_to_hub",
            "someone/fit-model",
        ]
    )
    out = root / "version_0" / "hf_model"
    [upload] = hub.uploads
    assert (Path(upload["folder"]), upload["repo_id"]) == (out, "someone/fit-model")
    card = upload["files"][CARD_FILE].decode()
    assert "| Precision | 32-true |" in card and "| Max steps | 2 |" in card and "| Devices | 1 |" in card
    assert 'QAPredictor("someone/fit-model")' in card
    assert yaml.safe_load((root / "version_0" / "config.yaml").read_text())["export"] == {
        "push_to_hub": "someone/fit-model",
        "onnx": False,
        "quantize": None,
        "check_file": None,
        "check_samples": 1000,
        "max_f1_drop": 1.0,
    }
