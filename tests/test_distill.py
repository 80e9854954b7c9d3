"""Distillation (`--model.teacher`): the KL term, the cached teacher logits, alpha 0, mismatched teachers,
students with fewer layers.  Run: pytest tests/test_distill.py   (DDP parity: tests/test_scaling.py)
"""

import json
import math
import os

import pytest
import torch
from helpers import SMALL, bert_teacher, last_metrics, run_dirs, sample_args
from transformers import AutoModelForQuestionAnswering

from lightning_qa.checkpoint import load_checkpoint
from lightning_qa.cli import main
from lightning_qa.data import SquadDataModule
from lightning_qa.distill import check_tokenizers, distill_loss
from lightning_qa.features import TEACHER_LOGITS
from lightning_qa.model import QAModel, keep_encoder_layers
from lightning_qa.tokenization import load_tokenizer


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, tiny_model_dir) -> str:
    return bert_teacher(tmp_path_factory.mktemp("bert-teacher"), tiny_model_dir, layers=4)


def test_kl_term_equals_a_hand_computation():
    """Two windows of 4 tokens, the second padded after 3: per position sum p_t (log p_t - log p_s) at
    T, summed over the window, averaged over the batch (batchmean), start and end averaged, times T^2."""
    torch.manual_seed(0)
    s_start, s_end, t_start, t_end = (torch.randn(2, 4) * 3 for _ in range(4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    T = 2.0

    def kl(student, teacher):
        total = 0.0
        for row in range(2):
            n = int(mask[row].sum())
            s = [student[row, j].item() / T for j in range(n)]
            t = [teacher[row, j].item() / T for j in range(n)]
            zs, zt = math.log(sum(math.exp(x) for x in s)), math.log(sum(math.exp(x) for x in t))
            total += sum(math.exp(b - zt) * ((b - zt) - (a - zs)) for a, b in zip(s, t, strict=True))
        return total / 2

    expected = (kl(s_start, t_start) + kl(s_end, t_end)) / 2 * T**2
    got = distill_loss(s_start, s_end, t_start, t_end, mask, T)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.1
    # what padding holds does not matter
    t_start[1, 3], s_end[1, 3] = 50.0, -50.0
    assert distill_loss(s_start, s_end, t_start, t_end, mask, T).item() == pytest.approx(expected, rel=1e-5)
    # a student equal to its teacher has nothing to learn
    assert distill_loss(t_start, t_end, t_start, t_end, mask, T).item() == pytest.approx(0.0, abs=1e-6)


def test_cached_teacher_logits_equal_a_fresh_teacher_forward(
    tmp_path, tiny_model_dir, teacher_dir, sample_dir
):
    """The logits a training batch carries are the teacher's on that batch, in the teacher's own inputs
    (BERT segment ids, which the DistilBERT features lack), and they are computed once."""
    data = SquadDataModule(
        tiny_model_dir,
        train_file=str(sample_dir / "train.json"),
        max_train_samples=40,
        max_seq_length=96,
        doc_stride=32,
        max_question_length=32,
        train_batch_size=8,
        eval_batch_size=5,  # the pass's batches differ from training's: padding must not matter
        cache_dir=str(tmp_path / "cache"),
    )
    data.setup("fit")
    assert "token_type_ids" not in data.features["train"].column_names
    data.add_teacher_logits(teacher_dir)
    files = [
        f for f in os.listdir(tmp_path / "cache" / "features") if ".teacher-" in f and f.endswith(".arrow")
    ]
    assert len(files) == 1
    teacher = AutoModelForQuestionAnswering.from_pretrained(teacher_dir).eval()
    sep = load_tokenizer(teacher_dir).sep_token_id
    batches = list(data.train_dataloader())
    assert sum(b["input_ids"].shape[0] for b in batches) == len(data.features["train"])
    for batch in batches[:3]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        segments = torch.zeros_like(ids)
        for row in range(ids.shape[0]):  # [CLS] question [SEP] -> 0, context [SEP] -> 1, padding -> 0
            first_sep = ids[row].tolist().index(sep)
            segments[row, first_sep + 1 : int(mask[row].sum())] = 1
        with torch.no_grad():
            fresh = teacher(input_ids=ids, attention_mask=mask, token_type_ids=segments)
            unsegmented = teacher(input_ids=ids, attention_mask=mask)
        real = mask.bool()
        torch.testing.assert_close(
            batch[TEACHER_LOGITS[0]][real], fresh.start_logits[real], atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            batch[TEACHER_LOGITS[1]][real], fresh.end_logits[real], atol=1e-5, rtol=1e-5
        )
        assert (batch[TEACHER_LOGITS[0]][~real] == 0).all()  # padded
        assert not torch.allclose(unsegmented.start_logits[real], fresh.start_logits[real], atol=1e-3)

    # a second data module (a resumed run, another rank) reads the file instead of running the teacher
    again = SquadDataModule(**{**data.hparams})
    again.setup("fit")
    os.chmod(teacher_dir, 0o000)  # the teacher cannot be read any more: only the cache can serve
    try:
        again.add_teacher_logits(teacher_dir)
    finally:
        os.chmod(teacher_dir, 0o755)
    assert again.teacher_logits[:][TEACHER_LOGITS[0]] == data.teacher_logits[:][TEACHER_LOGITS[0]]


def _fit(tmp_path, name: str, model_dir: str, extra: list[str] = ()) -> str:
    main(
        [
            "fit",
            *sample_args(model_dir, max_train=24, validation=False),
            *("--trainer.max_steps", "4", "--trainer.log_every_n_steps", "1", "--seed_everything", "3"),
            *("--data.train_batch_size", "4", "--model.learning_rate", "1e-3"),
            *("--trainer.limit_val_batches", "0", "--trainer.accelerator", "cpu"),
            *run_dirs(tmp_path, tmp_path / name),
            *SMALL,
            *extra,
        ]
    )
    return str(tmp_path / name / "version_0")


def test_alpha_zero_is_plain_fine_tuning_and_alpha_half_logs_both_terms(
    tmp_path, tiny_model_dir, teacher_dir
):
    """alpha 0 skips the teacher entirely (no pass, no file, no random draw): the same weights as a run
    without a teacher, bit for bit, dropout on. alpha 0.5 trains otherwise and logs CE and KL."""
    plain = _fit(tmp_path, "plain", tiny_model_dir)
    zero = _fit(
        tmp_path, "zero", tiny_model_dir, ["--model.teacher", teacher_dir, "--model.distill_alpha", "0"]
    )
    half = _fit(tmp_path, "half", tiny_model_dir, ["--model.teacher", teacher_dir])
    a, b, c = (load_checkpoint(os.path.join(d, "last.ckpt"))["state_dict"] for d in (plain, zero, half))
    assert a.keys() == b.keys() == c.keys()  # the teacher is no part of the student's checkpoint
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert "train/kl_loss" not in last_metrics(zero)
    m = last_metrics(half)
    assert m["train/loss"] == pytest.approx(0.5 * m["train/kl_loss"] + 0.5 * m["train/ce_loss"], rel=1e-5)
    assert m["train/kl_loss"] > 0
    teacher_files = [f for f in os.listdir(tmp_path / "cache" / "features") if ".teacher-" in f]
    assert len([f for f in teacher_files if f.endswith(".arrow")]) == 1  # the alpha 0.5 run's only


def test_teacher_with_another_tokenizer_is_refused_before_any_work(
    tmp_path, tiny_model_dir, real_vocab_model_dir, capsys
):
    with pytest.raises(SystemExit) as e:
        _fit(tmp_path, "mismatch", tiny_model_dir, ["--model.teacher", real_vocab_model_dir])
    assert e.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(
        f"lightning_qa: error: teacher {real_vocab_model_dir} and student {tiny_model_dir}"
    )
    assert "vocabularies differ (2000 vs 30522 tokens" in lines[-1]
    assert not (tmp_path / "cache").exists()  # nothing tokenized


def test_teacher_that_keeps_case_is_refused_naming_the_difference(tmp_path, real_vocab_model_dir, capsys):
    """Same vocabulary, but no lower-casing: other ids for the same text."""
    cased = tmp_path / "cased"
    model = AutoModelForQuestionAnswering.from_pretrained(real_vocab_model_dir)
    model.save_pretrained(cased)
    tokenizer = json.load(open(os.path.join(real_vocab_model_dir, "tokenizer.json")))
    tokenizer["normalizer"]["lowercase"] = False
    for name in os.listdir(real_vocab_model_dir):
        if name.startswith(("tokenizer", "special_tokens", "vocab")):
            data = open(os.path.join(real_vocab_model_dir, name), "rb").read()
            (cased / name).write_bytes(data)
    (cased / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = json.loads((cased / "tokenizer_config.json").read_text())
    (cased / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    with pytest.raises(SystemExit) as e:
        _fit(tmp_path, "cased-run", real_vocab_model_dir, ["--model.teacher", str(cased)])
    assert e.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"teacher {cased} and student {real_vocab_model_dir} tokenize differently" in line
    assert (
        "'Who designed the Eiffel Tower in 1887?' gives ['who', 'designed', 'the'] vs ['[UNK]', 'designed'"
        in line
    )


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_keep_layers_builds_a_smaller_student_that_travels(
    tmp_path, tiny_model_dir, teacher_dir, sample_dir, family, capsys
):
    """Layers [0, 2] of a 4-layer BERT (or layer 1 of the 2-layer DistilBERT) are the student's first
    layers; checkpoints and the export record the smaller config; validate rebuilds it; bad indices fail."""
    base = teacher_dir if family == "bert" else tiny_model_dir
    keep = [0, 2] if family == "bert" else [1]
    full = AutoModelForQuestionAnswering.from_pretrained(base)
    model = QAModel(base, keep_layers=keep)
    assert model.model.config.num_hidden_layers == len(keep)
    layers = model.model.bert.encoder.layer if family == "bert" else model.model.distilbert.transformer.layer
    full_layers = full.bert.encoder.layer if family == "bert" else full.distilbert.transformer.layer
    for mine, theirs in zip(layers, (full_layers[i] for i in keep), strict=True):
        for p, q in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(p, q)

    run = _fit(
        tmp_path,
        "student",
        base,
        ["--model.keep_layers", json.dumps(keep), "--model.teacher", teacher_dir, "--trainer.max_steps", "2"],
    )
    export = AutoModelForQuestionAnswering.from_pretrained(os.path.join(run, "hf_model"))
    assert export.config.num_hidden_layers == len(keep)
    card = open(os.path.join(run, "hf_model", "README.md")).read()
    assert f"| Encoder layers kept from the base model | {keep} |" in card
    assert f"| Distilled from | `{os.path.basename(teacher_dir)}` (T 2.0, alpha 0.5) |" in card
    ckpt = load_checkpoint(os.path.join(run, "last.ckpt"))
    torch.testing.assert_close(
        ckpt["state_dict"]["model.qa_outputs.weight"], export.state_dict()["qa_outputs.weight"]
    )
    main(
        [
            "validate",
            "--ckpt_path",
            os.path.join(run, "last.ckpt"),
            "--data.validation_file",
            str(sample_dir / "dev.json"),
            "--data.max_eval_samples",
            "4",
            *run_dirs(tmp_path, tmp_path / "validate"),
        ]
    )
    scored = json.load(open(tmp_path / "validate" / "version_0" / "evaluation.json"))["metrics"]
    assert scored["examples"] == 4 and "f1" in scored  # the student rebuilt as trained, from the checkpoint

    if family == "distilbert":  # a .ckpt of ours as the teacher: the same logits as its export gives
        data = SquadDataModule(
            base,
            train_file=str(sample_dir / "train.json"),
            max_train_samples=8,
            max_seq_length=96,
            doc_stride=32,
            max_question_length=32,
            cache_dir=str(tmp_path / "cache-teacher"),
        )
        data.setup("fit")
        logits = {}
        for source in ("last.ckpt", "hf_model"):
            check_tokenizers(data.tokenizer, base, os.path.join(run, source))
            data.add_teacher_logits(os.path.join(run, source))
            logits[source] = data.teacher_logits[:][TEACHER_LOGITS[0]]
        assert len(logits["last.ckpt"]) == len(data.features["train"])
        for a, b in zip(logits["last.ckpt"], logits["hf_model"], strict=True):
            assert a == pytest.approx(b, abs=1e-5)

    with pytest.raises(
        ValueError, match=r"keep_layers \[0, 4\]: give increasing, distinct indices of the model's 4"
    ):
        keep_encoder_layers(AutoModelForQuestionAnswering.from_pretrained(teacher_dir), [0, 4])
    with pytest.raises(SystemExit) as e:
        _fit(tmp_path, "bad", base, ["--model.keep_layers", "[1, 1]"])
    assert e.value.code == 2
    assert "keep_layers [1, 1]: give increasing, distinct indices" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_keep_layers_cuts_each_family_and_saves_a_config_that_reloads(tmp_path, family):
    """The cut model computes what the kept layers compute, and `from_pretrained` rebuilds it as saved."""
    from transformers import AutoConfig

    shape = dict(
        vocab_size=99, hidden_size=32, num_hidden_layers=6, num_attention_heads=2, intermediate_size=64
    )
    if family == "distilbert":
        shape = dict(vocab_size=99, dim=32, n_layers=6, n_heads=2, hidden_dim=64)
    torch.manual_seed(0)
    model = AutoModelForQuestionAnswering.from_config(AutoConfig.for_model(family, **shape)).eval()
    keep_encoder_layers(model, [0, 2, 4])
    assert model.config.num_hidden_layers == 3
    model.save_pretrained(tmp_path)
    again = AutoModelForQuestionAnswering.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[2, 11, 12, 3, 21, 22, 23, 3]])
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).start_logits, model(input_ids=ids).start_logits)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())


def test_teacher_pass_runs_in_the_trainers_precision(tmp_path, tiny_model_dir, teacher_dir, sample_dir):
    """bf16-mixed: the teacher's logits come from a bf16 pass (close to fp32's, not equal), cached apart."""
    import lightning as L

    logits = {}
    for precision in ("32-true", "bf16-mixed"):
        data = SquadDataModule(
            tiny_model_dir,
            train_file=str(sample_dir / "train.json"),
            max_train_samples=8,
            max_seq_length=96,
            doc_stride=32,
            max_question_length=32,
            cache_dir=str(tmp_path / "cache"),
        )
        data.trainer = L.Trainer(
            accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False
        )
        data.setup("fit")
        data.add_teacher_logits(teacher_dir)
        logits[precision] = torch.tensor(
            [x for row in data.teacher_logits[:][TEACHER_LOGITS[0]] for x in row]
        )
    files = [
        f for f in os.listdir(tmp_path / "cache" / "features") if ".teacher-" in f and f.endswith(".arrow")
    ]
    assert len(files) == 2
    assert not torch.equal(logits["32-true"], logits["bf16-mixed"])
    torch.testing.assert_close(logits["bf16-mixed"], logits["32-true"], atol=0.1, rtol=0.05)


@pytest.mark.parametrize("alpha, temperature", [(1.5, 2.0), (-0.1, 2.0), (0.5, 0.0)])
def test_bad_alpha_or_temperature_is_refused(tiny_model_dir, alpha, temperature):
    with pytest.raises(ValueError, match=r"distill_alpha must be in \[0, 1\] and distill_temperature > 0"):
        QAModel(tiny_model_dir, teacher=tiny_model_dir, distill_alpha=alpha, distill_temperature=temperature)
