"""Reading SQuAD-style files into flat example records, checking every record before any model work.

Two layouts are accepted: the official SQuAD JSON (data -> paragraphs -> qas) and flat JSON Lines
(`id`, `question`, `context`, optional `answers: {text: [...], answer_start: [...]}`). Problems are
collected over the whole file and raised together as one `DataError`, so a user fixes them in one go.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

MAX_REPORTED = 20


class DataError(ValueError):
    """Bad input data: `problems` holds one line per problem, each naming the file and the record."""

    def __init__(self, problems: list[str], total: int | None = None) -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        shown = self.problems[:MAX_REPORTED]
        rest = self.total - len(shown)
        return shown + ([f"... and {rest} more problem(s)"] if rest > 0 else [])


def _load_json_or_jsonl(path: str) -> tuple[str, Any]:
    """Return ("json", object) or ("jsonl", [(line number, object), ...])."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise DataError([f"{path}: is a directory, not a file"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError([f"{path}: not UTF-8 text (byte {e.start})"]) from None
    if not text.strip():
        raise DataError([f"{path}: the file is empty"])
    try:
        return "json", json.loads(text)
    except json.JSONDecodeError as e:
        whole_error = f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    rows, problems = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as e:
            problems.append(f"{path}: line {lineno}: not valid JSON ({e.msg})")
    if not rows:  # nothing parses line by line either: one (possibly truncated) JSON document
        raise DataError([whole_error])
    if problems:
        raise DataError(problems)
    return "jsonl", rows


def _flatten_squad(path: str, obj: Any) -> list[tuple[str, dict]]:
    """Official layout -> [(where, record)]; `where` names the record for error messages."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise DataError([f"{path}: neither SQuAD JSON (an object with a 'data' list) nor JSON Lines"])
    out = []
    for a, article in enumerate(obj["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataError([f"{path}: data[{a}]: an article needs a 'paragraphs' list"])
        for p, para in enumerate(article["paragraphs"]):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                raise DataError(
                    [f"{path}: data[{a}].paragraphs[{p}]: a paragraph needs 'context' and a 'qas' list"]
                )
            for q, qa in enumerate(para["qas"]):
                if not isinstance(qa, dict):
                    raise DataError([f"{path}: data[{a}].paragraphs[{p}].qas[{q}]: not an object"])
                answers = qa.get("answers")
                if isinstance(answers, list):
                    answers = {
                        "text": [x.get("text") for x in answers if isinstance(x, dict)],
                        "answer_start": [x.get("answer_start") for x in answers if isinstance(x, dict)],
                    }
                if qa.get("is_impossible"):
                    answers = {"text": [], "answer_start": []}
                record = {
                    "id": qa.get("id"),
                    "title": article.get("title") or "",
                    "question": qa.get("question"),
                    "context": para.get("context"),
                    "answers": answers,
                    "is_impossible": bool(qa.get("is_impossible", False)),
                }
                where = f"question id {qa['id']!r}" if qa.get("id") else f"data[{a}].paragraphs[{p}].qas[{q}]"
                out.append((where, record))
    return out


def _check_record(record: dict, need_answers: bool) -> tuple[dict | None, list[str], int]:
    """Validate one record; return (clean record or None, problems, number of repaired answer starts)."""
    problems = []
    for key in ("id", "question", "context"):
        value = record.get(key)
        if value is None:
            problems.append(f"missing '{key}'")
        elif not isinstance(value, str) or (key != "id" and not value.strip()):
            problems.append(f"empty or non-text '{key}'")
    if problems:
        return None, problems, 0
    answers = record.get("answers")
    if answers is None:
        if need_answers:
            return None, ["missing 'answers' (needed for training and scoring)"], 0
        answers = {"text": [], "answer_start": []}
    if not isinstance(answers, dict) or not isinstance(answers.get("text"), list):
        return None, ["'answers' must be {text: [...], answer_start: [...]}"], 0
    texts, starts = answers["text"], answers.get("answer_start") or [None] * len(answers["text"])
    if len(starts) != len(texts):
        return None, ["'answers' text and answer_start lists differ in length"], 0
    context, repaired = record["context"], 0
    fixed_starts = []
    for text, start in zip(texts, starts, strict=False):
        if not isinstance(text, str) or not text:
            return None, ["an answer text is empty or not text"], 0
        if isinstance(start, int) and context[start : start + len(text)] == text:
            fixed_starts.append(start)
            continue
        found = _occurrences(context, text)
        if not found:
            return None, [f"answer {text[:40]!r} does not occur in the context"], 0
        where = start if isinstance(start, int) else 0
        fixed_starts.append(min(found, key=lambda i: abs(i - where)))
        repaired += 1
    if need_answers and not texts and not record.get("is_impossible", False) and "answers" not in record:
        return None, ["missing 'answers'"], 0
    clean = {
        "id": str(record["id"]),
        "title": str(record.get("title") or ""),
        "question": record["question"],
        "context": context,
        "answers": {"text": list(texts), "answer_start": fixed_starts},
    }
    return clean, [], repaired


def _occurrences(context: str, text: str) -> list[int]:
    out, i = [], context.find(text)
    while i != -1:
        out.append(i)
        i = context.find(text, i + 1)
    return out


def read_examples(path: str, need_answers: bool = True, on_bad_record: str = "error") -> list[dict]:
    """Read a SQuAD JSON or JSON Lines file into records {id, title, question, context, answers}.

    Args:
        path: The file.
        need_answers: Training and scoring need answers (an empty list means unanswerable).
        on_bad_record: "error" raises one `DataError` listing every problem; "skip" drops bad records
            and logs one summary line.
    """
    kind, obj = _load_json_or_jsonl(path)
    if kind == "json":
        rows = _flatten_squad(path, obj)
    else:
        rows = []
        for lineno, item in obj:
            if not isinstance(item, dict):
                raise DataError([f"{path}: line {lineno}: a JSON Lines record must be an object"])
            rows.append(
                (
                    f"line {lineno}" + (f" (id {item['id']!r})" if isinstance(item.get("id"), str) else ""),
                    item,
                )
            )
    if not rows:
        raise DataError([f"{path}: no questions found"])
    records, problems, seen, repaired = [], [], set(), 0
    for where, row in rows:
        clean, errs, fixed = _check_record(row, need_answers)
        if clean is not None and clean["id"] in seen:
            clean, errs = None, [f"duplicate id {clean['id']!r}"]
        if clean is None:
            problems += [f"{path}: {where}: {e}" for e in errs]
            continue
        seen.add(clean["id"])
        repaired += fixed
        records.append(clean)
    if repaired:
        log.warning(
            f"{path}: moved {repaired} answer_start value(s) to the nearest occurrence of the answer text"
        )
    if problems and on_bad_record == "error":
        raise DataError(problems)
    if problems:
        log.warning(f"{path}: skipped {len(problems)} bad record(s), kept {len(records)}")
    if not records:
        raise DataError([f"{path}: no usable questions left"])
    return records
