"""Reading SQuAD-style files into flat example records, checking every record before any model work.

Two layouts are accepted: the official SQuAD JSON (data -> paragraphs -> qas; flat records directly under
"data", as Hugging Face's `run_qa` writes them, work too) and JSON Lines (`id`, `question`, `context`,
optional `answers: {text: [...], answer_start: [...]}` or a SQuAD-style list of {text, answer_start}).
Problems are collected over the whole file and raised together as one `DataError`, one line per problem
naming the file and the record, so a user fixes them in one go; or, with `on_bad_record="skip"`, bad
records are dropped and counted in one warning. Nothing is dropped silently.

Unanswerable questions: an empty answer list means "no answer" only where the data says SQuAD 2.0 (the
question has `"is_impossible": true`, the file's "version" is 2.x or any of its questions carries
`is_impossible`, or the caller passes `allow_unanswerable`). Elsewhere a training or scoring record
without answers is a mistake (a lost answer would silently become a "no answer" label) and is reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

MAX_REPORTED = 20
ON_BAD_RECORD = ("error", "skip")
LAYOUTS = (
    "expected SQuAD JSON (an object with a 'data' list of articles) or JSON Lines "
    "(one {id, question, context, answers} object per line)"
)

UNMARKED = '(mark an unanswerable question with "is_impossible": true, as SQuAD 2.0)'

Row = tuple[str, Any]  # (position in the file: "line 3" or "data[0].paragraphs[1].qas[2]", record)


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


def _read_text(path: str) -> str:
    """The file as text; the problems that leave nothing to read are fatal."""
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
        raise DataError([f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8"]) from None
    if not text.strip():
        raise DataError([f"{path}: the file is empty"])
    return text


def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and ("question" in obj or "context" in obj)


def _parse(path: str, text: str) -> tuple[Any, list[Row] | None]:
    """One JSON document (obj, None) or JSON Lines (None, rows); a bad line becomes a row holding the
    error, so that it is reported (or skipped) with the other records."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        whole = e
    else:
        if _is_record(obj):  # JSON Lines with a single line
            return None, [(f"line {_first_line(text)}", obj)]
        return obj, None
    rows: list[Row] = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 and co. may be in a text
        if line.strip():
            try:
                rows.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as e:
                rows.append((f"line {n}", e))
    if any(_is_record(r) for _, r in rows):
        return None, rows
    if all(isinstance(r, dict) for _, r in rows):
        raise DataError([f"{path}: JSON Lines without 'question' and 'context' fields; {LAYOUTS}"])
    # one document that does not parse: truncated, a stray comma...
    raise DataError([f"{path}: not valid JSON ({whole.msg} at line {whole.lineno} column {whole.colno})"])


def _first_line(text: str) -> int:
    return next(n for n, line in enumerate(text.split("\n"), 1) if line.strip())


def _squad_rows(path: str, obj: Any) -> list[Row]:
    """Official layout -> [(position, record)], each record carrying its paragraph's context and title."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        found = "an object without a 'data' list" if isinstance(obj, dict) else f"a JSON {type(obj).__name__}"
        raise DataError([f"{path}: {found}; {LAYOUTS}"])
    rows: list[Row] = []
    for a, article in enumerate(obj["data"]):
        if _is_record(article):  # flat records under "data"
            rows.append((f"data[{a}]", article))
            continue
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            rows.append((f"data[{a}]", "an article needs a 'paragraphs' list"))
            continue
        for p, para in enumerate(article["paragraphs"]):
            if not isinstance(para, dict) or not isinstance(para.get("qas"), list):
                rows.append((f"data[{a}].paragraphs[{p}]", "a paragraph needs 'context' and a 'qas' list"))
                continue
            for q, qa in enumerate(para["qas"]):
                at = f"data[{a}].paragraphs[{p}].qas[{q}]"
                if not isinstance(qa, dict):
                    rows.append((at, "a question must be an object"))
                    continue
                rows.append((at, {**qa, "context": para.get("context"), "title": article.get("title") or ""}))
    return rows


def _name(at: str, record: Any) -> str:
    """How messages name a record: its id (with the line number in JSON Lines), else its position."""
    rid = record.get("id") if isinstance(record, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid).strip() == "":
        return at
    return f"{at} (id {rid!r})" if at.startswith("line ") else f"question id {rid!r}"


def _answer_lists(answers: Any) -> tuple[list, list] | None:
    """{text: [...], answer_start: [...]} or [{text, answer_start}, ...] -> (texts, starts); None if neither."""
    if isinstance(answers, list) and all(isinstance(x, dict) for x in answers):
        return [x.get("text") for x in answers], [x.get("answer_start") for x in answers]
    if isinstance(answers, dict) and isinstance(answers.get("text"), list):
        starts = answers.get("answer_start")
        starts = [None] * len(answers["text"]) if starts is None else starts
        if isinstance(starts, list) and len(starts) == len(answers["text"]):
            return answers["text"], starts
    return None


def _check_answers(record: dict, need_answers: bool, unanswerable: bool) -> tuple[dict, list[str], int]:
    """Clean answers of one record, its problems, and how many answer starts were moved."""
    empty = {"text": [], "answer_start": []}
    if not need_answers:
        return empty, [], 0  # prediction: answers are neither needed nor read
    impossible = record.get("is_impossible")
    if impossible is True:
        return empty, [], 0  # SQuAD 2.0 keeps plausible (wrong) answers elsewhere; none count here
    if "answers" not in record or record["answers"] is None:
        return empty, ["missing 'answers' (training and scoring need them)"], 0
    lists = _answer_lists(record["answers"])
    if lists is None:
        return empty, ["'answers' must be {text: [...], answer_start: [...]} of equal lengths"], 0
    texts, starts = lists
    if not texts:
        if impossible is None and unanswerable:
            return empty, [], 0
        why = "although 'is_impossible' is false" if impossible is False else UNMARKED
        return empty, [f"no answers {why}"], 0
    context, problems, fixed_starts, moved = record["context"], [], [], 0
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str) or not text.strip():
            problems.append(f"an empty or non-text answer {text!r}")
            continue
        ok = isinstance(start, int) and not isinstance(start, bool) and start >= 0
        if ok and context[start : start + len(text)] == text:
            fixed_starts.append(start)
            continue
        found = _occurrences(context, text)
        if not found:
            problems.append(f"answer {_short(text)} does not occur in the context")
            continue
        near = start if ok else 0
        fixed_starts.append(min(found, key=lambda i: abs(i - near)))
        moved += 1
    return {"text": list(texts), "answer_start": fixed_starts}, problems, moved


def _check_record(record: dict, need_answers: bool, unanswerable: bool) -> tuple[dict | None, list[str], int]:
    """Validate one record; return (clean record or None, its problems, number of moved answer starts)."""
    problems = []
    rid = record.get("id")
    if rid is None:
        problems.append("missing 'id'")
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid).strip() == "":
        problems.append(f"the id must be a non-empty string, not {rid!r}")
    for key in ("question", "context"):
        value = record.get(key)
        if value is None:
            problems.append(f"missing '{key}'")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"empty or non-text '{key}'")
    context = record.get("context")
    if not isinstance(context, str) or not context.strip():
        return None, problems, 0  # answers are checked against the context
    answers, answer_problems, moved = _check_answers(record, need_answers, unanswerable)
    problems += answer_problems
    if problems:
        return None, problems, 0
    clean = {
        "id": str(rid),
        "title": str(record.get("title") or ""),
        "question": record["question"],
        "context": context,
        "answers": answers,
    }
    return clean, [], moved


def _occurrences(context: str, text: str) -> list[int]:
    out, i = [], context.find(text)
    while i != -1:
        out.append(i)
        i = context.find(text, i + 1)
    return out


def _short(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _is_version_2(obj: Any, rows: list[Row]) -> bool:
    """SQuAD 2.0 data: the file says so, or its questions carry `is_impossible`."""
    version = str(obj.get("version", "")) if isinstance(obj, dict) else ""
    return version.lstrip("v").startswith("2") or any(
        isinstance(r, dict) and "is_impossible" in r for _, r in rows
    )


def _checked(
    path: str, rows: Iterable[Row], need_answers: bool, unanswerable: bool, duplicates: bool = True
) -> Iterator[tuple[str, dict | None, list[str], int]]:
    """Check rows one at a time: (position, clean record, [], answer starts moved) or (position, None, its
    problems, 0), each problem naming the file and the record. Duplicate ids (unless `duplicates` is False)
    are found by hash, so a stream of millions of records keeps only one integer per id; the first use of a
    duplicated id is then looked up again."""
    seen: set[int] = set()
    for at, row in rows:
        clean, fixed, name = None, 0, _name(at, row)
        if isinstance(row, json.JSONDecodeError):
            errs = [f"not valid JSON ({row.msg} at column {row.colno})"]
        elif isinstance(row, str):  # a structural problem found while flattening
            errs = [row]
        elif not isinstance(row, dict):
            errs = ["a record must be a JSON object"]
        else:
            clean, errs, fixed = _check_record(row, need_answers, unanswerable)
        if duplicates and clean is not None and hash(clean["id"]) in seen:
            first = _first_use(rows, clean["id"], at, need_answers, unanswerable)
            if first is not None:
                name = name if at.startswith("line ") else f"{at} (id {clean['id']!r})"
                clean, errs = None, [f"duplicate id, first used at {first}"]
        if duplicates and clean is not None:
            seen.add(hash(clean["id"]))
        yield at, clean, ([f"{path}: {name}: {e}" for e in errs] if clean is None else []), fixed


def _first_use(
    rows: Iterable[Row], rid: str, before: str, need_answers: bool, unanswerable: bool
) -> str | None:
    """Where `rid` was first used as a good record's id before position `before` (None: a hash clash).
    Rows are read again from the start (a list, or a file re-read), which only duplicates cost."""
    for at, row in rows:
        if at == before:
            return None
        if isinstance(row, dict) and str(row.get("id")) == rid:
            if _check_record(row, need_answers, unanswerable)[0] is not None:
                return at
    return None


def _report(
    path: str, problems: list[str], n_problems: int, bad: int, kept: int, moved: int, on_bad_record: str
) -> None:
    """One warning for moved answer starts; every problem raised together (the first `MAX_REPORTED` shown,
    all counted), or one warning when skipping."""
    if moved:
        log.warning(
            f"{path}: moved {moved} answer_start value(s) to the nearest occurrence of the answer text"
        )
    if problems and on_bad_record == "error":
        raise DataError(problems, total=n_problems)
    if problems:
        log.warning(f"{path}: skipped {bad} unusable record(s), kept {kept}; first: {problems[0]}")
    if not kept:
        raise DataError([f"{path}: no usable questions left"])


def read_examples(
    path: str, need_answers: bool = True, on_bad_record: str = "error", allow_unanswerable: bool = False
) -> list[dict]:
    """Read a SQuAD JSON or JSON Lines file into records {id, title, question, context, answers}.

    An answer_start that does not point at its answer text, while the text does occur in the context, is
    moved to the nearest occurrence (a common off-by-a-few in hand-made data) and counted in one warning.

    Args:
        path: The file.
        need_answers: Training and scoring need answers; prediction (False) neither needs nor reads them.
        on_bad_record: "error" raises one `DataError` listing every problem; "skip" drops bad records
            and logs one summary warning.
        allow_unanswerable: Empty answers mean "no answer" even in a file not marked as SQuAD 2.0.
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record must be one of {ON_BAD_RECORD}, not {on_bad_record!r}")
    obj, rows = _parse(path, _read_text(path))
    rows = _squad_rows(path, obj) if rows is None else rows
    if not rows:
        raise DataError([f"{path}: no questions found"])
    unanswerable = allow_unanswerable or _is_version_2(obj, rows)
    records, problems, bad, moved = [], [], 0, 0
    for _, clean, errs, fixed in _checked(path, rows, need_answers, unanswerable):
        if clean is None:
            problems += errs
            bad += 1
        else:
            records.append(clean)
            moved += fixed
    _report(path, problems, len(problems), bad, len(records), moved, on_bad_record)
    return records


# -- streaming: questions to predict, from files larger than memory ------------------------------------------
class _Rows:
    """The rows of a file to predict, read again on each iteration: JSON Lines line by line (a file larger
    than memory works), a JSON document whole (SQuAD JSON is one document)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = _starts_with_a_record(path)

    def __iter__(self) -> Iterator[Row]:
        if not self.lines:
            obj, rows = _parse(self.path, _read_text(self.path))
            yield from _squad_rows(self.path, obj) if rows is None else rows
            return
        n = 0
        try:
            with open(self.path, encoding="utf-8-sig", newline="\n") as f:
                for n, line in enumerate(f, 1):  # noqa: B007 - n names the line of a decoding error
                    if line.strip():
                        try:
                            yield f"line {n}", json.loads(line)
                        except json.JSONDecodeError as e:
                            yield f"line {n}", e
        except UnicodeDecodeError:
            raise DataError([f"{self.path}: not UTF-8 text (after line {n}); save it as UTF-8"]) from None


def _starts_with_a_record(path: str) -> bool:
    """Whether the file is JSON Lines of records: its first non-empty line is one whole record."""
    try:
        with open(path, encoding="utf-8-sig", newline="\n") as f:
            for line in f:
                if line.strip():
                    try:
                        return _is_record(json.loads(line))
                    except json.JSONDecodeError:
                        return False  # a pretty-printed document, or a bad first line: read it whole
    except (OSError, UnicodeDecodeError):
        return False  # reading it whole reports the problem
    return False


def count_examples(path: str, on_bad_record: str = "error") -> tuple[int, frozenset[str]]:
    """The pre-pass over a file to predict: check every record as `read_examples` does (answers are not
    read) and report problems the same way. Returns how many records are usable and the positions of the
    dropped ones (`on_bad_record` "skip"), keeping nothing else, so that `iter_examples` reads the same
    records again without tracking ids (that set would grow with the file)."""
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(f"on_bad_record must be one of {ON_BAD_RECORD}, not {on_bad_record!r}")
    problems: list[str] = []  # the first ones, to show; all are counted
    n_problems = bad = kept = 0
    dropped: set[str] = set()
    for at, clean, errs, _ in _checked(path, _Rows(path), need_answers=False, unanswerable=True):
        if clean is None:
            dropped.add(at)
            bad += 1
            n_problems += len(errs)
            problems += errs[: MAX_REPORTED - len(problems)]
        else:
            kept += 1
    if not bad and not kept:
        raise DataError([f"{path}: no questions found"])
    _report(path, problems, n_problems, bad, kept, 0, on_bad_record)
    return kept, frozenset(dropped)


def iter_examples(path: str, dropped: Collection[str] = frozenset()) -> Iterator[dict]:
    """The usable records of a file `count_examples` checked, read again one at a time: the rows at the
    `dropped` positions it returned are left out, the others cleaned as it cleaned them."""
    rows = ((at, row) for at, row in _Rows(path) if at not in dropped)
    for _, clean, _, _ in _checked(path, rows, need_answers=False, unanswerable=True, duplicates=False):
        if clean is not None:
            yield clean
