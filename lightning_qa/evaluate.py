"""`lightning_qa evaluate DATA PRED`: score a predictions file the way the official SQuAD scripts do.

Positional arguments like `evaluate-v1.1.py` / `evaluate-v2.0.py`; the version comes from the data file.
The metrics go to stdout as one JSON object, so the output can be piped; everything else goes to stderr.
"""

import json
import os
import sys
from typing import Any, NoReturn

from jsonargparse import ArgumentParser

from lightning_qa.errors import fail
from lightning_qa.metrics import load_squad_golds, missing_ids, squad_v1, squad_v2

PROG = "lightning_qa evaluate"
EVALUATION_FILE = "evaluation.json"  # written beside null_odds.json by each validation (callbacks.py)
OFFICIAL_THRESHOLD = 1.0


def _fail(path: str, what: str) -> NoReturn:
    """One line naming the file, status 2 like an argument error: bad input is the user's to fix."""
    fail(f"{path}: {what}", prog=PROG)


def run_threshold(na_prob_path: str) -> float | None:
    """The no-answer threshold a lightning_qa run applied to its predictions, from the `evaluation.json`
    beside its `null_odds.json`; None when there is none (not a run directory, or SQuAD v1.1)."""
    path = os.path.join(os.path.dirname(os.path.abspath(na_prob_path)), EVALUATION_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("null_score_diff_threshold")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _why(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        _fail(path, _why(err))


def _read_mapping(path: str, value_type: type | tuple[type, ...], what: str) -> dict:
    """A JSON object {question id: value}; bool is rejected even though it is an int in Python."""
    obj = _read_json(path)
    if not isinstance(obj, dict):
        _fail(path, f"expected a JSON object {{question id: {what}}}, got {type(obj).__name__}")
    for qid, value in obj.items():
        if isinstance(value, bool) or not isinstance(value, value_type):
            _fail(path, f"expected {{question id: {what}}}, but {qid!r} maps to {json.dumps(value)[:60]}")
    return obj


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROG, description="Score SQuAD v1.1 or v2.0 predictions with the official metrics."
    )
    parser.add_argument("data", type=str, help="SQuAD data file (official JSON layout)")
    parser.add_argument("pred", type=str, help="predictions: JSON object {question id: answer text}")
    parser.add_argument(
        "--na_prob", type=str | None, default=None, help="v2.0 only: JSON {question id: no-answer score}"
    )
    parser.add_argument(
        "--na_prob_thresh",
        type=float | None,
        default=None,
        help='answer "" when the no-answer score exceeds this (default: the threshold the run applied, from '
        f"the {EVALUATION_FILE} beside --na_prob, else the official {OFFICIAL_THRESHOLD})",
    )
    return parser


def main(args: list[str] | None = None) -> dict:
    """Print the metrics as one JSON line on stdout and return them."""
    cfg = build_parser().parse_args(args)
    try:
        golds, version = load_squad_golds(cfg.data)
    except (OSError, ValueError) as err:
        _fail(cfg.data, _why(err))
    if not golds:
        _fail(cfg.data, "has no questions")
    predictions = _read_mapping(cfg.pred, str, "answer text")
    na_probs = None
    if cfg.na_prob is not None:
        if version != "2.0":
            _fail(cfg.data, "--na_prob needs SQuAD v2.0 data, this file is v1.1")
        na_probs = _read_mapping(cfg.na_prob, (int, float), "number")
    threshold = cfg.na_prob_thresh
    if threshold is None and na_probs is not None:
        threshold = run_threshold(cfg.na_prob)
        if threshold is not None:
            print(
                f"{PROG}: no-answer threshold {threshold} (the run's, from its {EVALUATION_FILE})",
                file=sys.stderr,
            )
    threshold = OFFICIAL_THRESHOLD if threshold is None else threshold

    missing = missing_ids(golds, predictions)
    if missing:
        first = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        print(
            f"{PROG}: {len(missing)} of {len(golds)} questions have no prediction and score 0: {first}",
            file=sys.stderr,
        )
    if version == "1.1":
        metrics = squad_v1(golds, predictions)
    else:
        try:
            metrics = squad_v2(golds, predictions, na_probs, threshold)
        except ValueError as err:
            _fail(cfg.na_prob, str(err))
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
