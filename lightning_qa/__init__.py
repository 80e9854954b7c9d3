"""lightning_qa: fine-tune, evaluate and serve extractive question-answering models with PyTorch Lightning.

`from lightning_qa import QAPredictor` answers questions from Python (see `lightning_qa.predictor`).
"""

from typing import Any

__all__ = ["QAPredictor"]


def __getattr__(name: str) -> Any:  # lazy: `import lightning_qa` stays light (no torch until needed)
    if name == "QAPredictor":
        from lightning_qa.predictor import QAPredictor

        return QAPredictor
    raise AttributeError(f"module 'lightning_qa' has no attribute {name!r}")
