"""Reading data files: every problem reported at once, one line each, or skipped and counted; repairs
warned about; the CLI turning it all into `lightning_qa: error:` lines.  Run: pytest tests/test_io.py"""

import json
import logging
import shutil

import pytest
from helpers import SQUAD_DIR, requires_squad, run_dirs

from lightning_qa.cli import main
from lightning_qa.io import MAX_REPORTED, DataError, read_examples

CTX = "Ann built the mill in 1887. Ann sold it in 1901."


def rec(id="q1", question="Who built it?", context=CTX, answers=None, **extra) -> dict:
    """A JSON Lines record; `answers` None means a correct one, {} leaves the key out."""
    row = {"id": id, "question": question, "context": context, **extra}
    if answers is None:
        answers = {"text": ["Ann"], "answer_start": [0]}
    if answers != {}:
        row["answers"] = answers
    return {k: v for k, v in row.items() if v is not ...}


def jsonl(tmp_path, *rows, name="data.jsonl") -> str:
    path = tmp_path / name
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return str(path)


def squad(tmp_path, qas: list, context: str = CTX, version: str | None = None, name="data.json") -> str:
    obj = {"data": [{"title": "Mill", "paragraphs": [{"context": context, "qas": qas}]}]}
    if version:
        obj["version"] = version
    path = tmp_path / name
    path.write_text(json.dumps(obj))
    return str(path)


def problems(path: str, **kwargs) -> list[str]:
    with pytest.raises(DataError) as e:
        read_examples(path, **kwargs)
    return e.value.lines()


# -- the file ---------------------------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path):
    assert problems(str(tmp_path / "nope.json")) == [f"{tmp_path / 'nope.json'}: file not found"]
    assert problems(str(tmp_path)) == [f"{tmp_path}: is a directory, not a file"]


@pytest.mark.parametrize("content", ["", "  \n\n", "\ufeff"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.json"
    path.write_text(content)
    assert problems(str(path)) == [f"{path}: the file is empty"]


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(rec(context="Zoë opened the café.")).encode()[:40] + "Zoë".encode("latin-1"))
    assert problems(str(path)) == [f"{path}: not UTF-8 text (byte 42); save it as UTF-8"]


def test_truncated_json_is_one_problem(tmp_path, sample_dir):
    whole = (sample_dir / "dev.json").read_text()
    one_line = tmp_path / "one_line.json"
    one_line.write_text(json.dumps(json.loads(whole))[:5000])
    (line,) = problems(str(one_line))
    assert line.startswith(f"{one_line}: not valid JSON (") and "at line 1 column" in line
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(whole), indent=1)[:5000])
    (line,) = problems(str(pretty))
    assert line.startswith(f"{pretty}: not valid JSON (")
    trailing = tmp_path / "trailing.json"
    trailing.write_text(json.dumps(json.loads(whole), indent=1) + "\n}\n")
    (line,) = problems(str(trailing))
    assert line.startswith(f"{trailing}: not valid JSON (Extra data at line ") and line.endswith(" column 1)")
    stray = tmp_path / "stray_comma.json"
    stray.write_text('{"data": [],\n}')
    (line,) = problems(str(stray))  # the wording of the JSON error depends on the Python version
    assert line.startswith(f"{stray}: not valid JSON (") and " at line 2 column 1)" in line


def test_jsonl_bad_lines_are_reported_with_line_numbers_and_skippable(tmp_path, caplog):
    path = jsonl(tmp_path, rec("a"), '{"id": "b", "question": "Who?"', "", rec("c"), "[1, 2]")
    assert problems(path) == [
        f"{path}: line 2: not valid JSON (Expecting ',' delimiter at column 31)",
        f"{path}: line 5: a record must be a JSON object",
    ]
    with caplog.at_level(logging.WARNING, logger="lightning_qa"):
        kept = read_examples(path, on_bad_record="skip")
    assert [r["id"] for r in kept] == ["a", "c"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: skipped 2 unusable record(s), kept 2; first: {path}: line 2: not valid JSON "
        "(Expecting ',' delimiter at column 31)"
    ]


@pytest.mark.parametrize(
    "content, found",
    [
        (json.dumps([rec()]), "a JSON list"),
        (json.dumps({"version": "1.1", "articles": []}), "an object without a 'data' list"),
        ("42", "a JSON int"),
    ],
)
def test_layout_neither_squad_nor_jsonl(tmp_path, content, found):
    path = tmp_path / "layout.json"
    path.write_text(content)
    assert problems(str(path)) == [
        f"{path}: {found}; expected SQuAD JSON (an object with a 'data' list of articles) or JSON Lines "
        "(one {id, question, context, answers} object per line)"
    ]


def test_jsonl_without_question_and_context_is_a_layout_problem(tmp_path):
    path = jsonl(tmp_path, {"id": "a", "text": "x"}, {"id": "b", "text": "y"})
    (line,) = problems(path)
    assert line.startswith(f"{path}: JSON Lines without 'question' and 'context' fields; expected SQuAD JSON")


def test_squad_structure_problems_are_all_collected(tmp_path):
    path = tmp_path / "structure.json"
    path.write_text(
        json.dumps(
            {
                "data": [
                    {"title": "no paragraphs"},
                    {"paragraphs": [{"context": CTX}, {"context": CTX, "qas": ["not an object", rec()]}]},
                ]
            }
        )
    )
    assert problems(str(path)) == [
        f"{path}: data[0]: an article needs a 'paragraphs' list",
        f"{path}: data[1].paragraphs[0]: a paragraph needs 'context' and a 'qas' list",
        f"{path}: data[1].paragraphs[1].qas[0]: a question must be an object",
    ]
    assert [r["id"] for r in read_examples(str(path), on_bad_record="skip")] == ["q1"]


def test_no_questions(tmp_path):
    path = tmp_path / "none.json"
    path.write_text('{"version": "1.1", "data": []}')
    assert problems(str(path)) == [f"{path}: no questions found"]


# -- accepted variants --------------------------------------------------------------------------------------
def test_accepted_layouts_and_encodings_give_the_same_records(tmp_path):
    expected = [
        {"id": "q1", "title": "", "question": "Who built it?", "context": CTX, "answers": rec()["answers"]},
        {
            "id": "7",
            "title": "",
            "question": "When?",
            "context": CTX,
            "answers": {"text": ["1887"], "answer_start": [22]},
        },
    ]
    second = rec(7, "When?", answers=[{"text": "1887", "answer_start": 22}])  # int id, SQuAD-style answers
    lines = [json.dumps(rec()), json.dumps(second)]
    variants = {
        "lf.jsonl": "\n".join(lines),
        "crlf_bom.jsonl": "\ufeff" + "\r\n".join(lines) + "\r\n",
        "flat_under_data.json": json.dumps({"version": "1.1", "data": [rec(), second]}),
    }
    for name, text in variants.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert read_examples(str(tmp_path / name)) == expected, name
    official = squad(tmp_path, [rec(context=...), rec(7, "When?", context=..., answers=second["answers"])])
    assert read_examples(official) == [{**r, "title": "Mill"} for r in expected]


def test_single_line_jsonl_is_not_mistaken_for_squad_json(tmp_path):
    path = jsonl(tmp_path, rec(answers={}))
    assert read_examples(path, need_answers=False)[0]["id"] == "q1"


def test_line_separator_characters_inside_a_jsonl_context_are_kept(tmp_path):
    context = "Ann\u2028built\u0085the\x0cmill."  # str.splitlines() would cut these records apart
    path = tmp_path / "seps.jsonl"
    path.write_text(
        json.dumps(rec(context=context), ensure_ascii=False) + "\n" + json.dumps(rec("q2")) + "\n"
    )
    records = read_examples(str(path))
    assert [r["context"] for r in records] == [context, CTX]


# -- records ------------------------------------------------------------------------------------------------
def test_every_record_problem_is_reported_once_with_its_record(tmp_path):
    path = jsonl(
        tmp_path,
        rec("ok"),
        rec(id=..., question=...),
        rec("no-context", context=...),
        rec("", question="  "),
        rec("empty-context", context=" \n"),
        rec("list-question", question=["Who?"]),
        rec("ok"),
        rec("not-in-context", answers={"text": ["Bob"], "answer_start": [0]}),
        rec("blank-answer", answers={"text": [" "], "answer_start": [3]}),
        rec("lengths", answers={"text": ["Ann", "mill"], "answer_start": [0]}),
        rec("shape", answers={"text": "Ann", "answer_start": 0}),
        rec("no-answers", answers={}),
        rec("null-answers", answers=None) | {"answers": None},
        rec("ok2"),
    )
    assert problems(path) == [
        f"{path}: line 2: missing 'id'",
        f"{path}: line 2: missing 'question'",
        f"{path}: line 3 (id 'no-context'): missing 'context'",
        f"{path}: line 4: the id must be a non-empty string, not ''",
        f"{path}: line 4: empty or non-text 'question'",
        f"{path}: line 5 (id 'empty-context'): empty or non-text 'context'",
        f"{path}: line 6 (id 'list-question'): empty or non-text 'question'",
        f"{path}: line 7 (id 'ok'): duplicate id, first used at line 1",
        f"{path}: line 8 (id 'not-in-context'): answer 'Bob' does not occur in the context",
        f"{path}: line 9 (id 'blank-answer'): an empty or non-text answer ' '",
        f"{path}: line 10 (id 'lengths'): 'answers' must be {{text: [...], answer_start: [...]}} of equal lengths",
        f"{path}: line 11 (id 'shape'): 'answers' must be {{text: [...], answer_start: [...]}} of equal lengths",
        f"{path}: line 12 (id 'no-answers'): missing 'answers' (training and scoring need them)",
        f"{path}: line 13 (id 'null-answers'): missing 'answers' (training and scoring need them)",
    ]


def test_squad_records_are_named_by_question_id_or_position(tmp_path):
    path = squad(
        tmp_path,
        [
            rec("a", context=...),
            rec(id=..., context=..., answers={"text": ["Bob"], "answer_start": [0]}),
            rec("a", context=...),
        ],
    )
    assert problems(path) == [
        f"{path}: data[0].paragraphs[0].qas[1]: missing 'id'",
        f"{path}: data[0].paragraphs[0].qas[1]: answer 'Bob' does not occur in the context",
        f"{path}: data[0].paragraphs[0].qas[2] (id 'a'): duplicate id, first used at data[0].paragraphs[0].qas[0]",
    ]
    no_context = squad(tmp_path, [rec("b", context=...)], context=None, name="no_context.json")
    assert problems(no_context) == [f"{no_context}: question id 'b': missing 'context'"]


def test_many_problems_are_capped(tmp_path):
    path = jsonl(tmp_path, *[rec(f"q{i}", question="") for i in range(MAX_REPORTED + 5)])
    with pytest.raises(DataError) as e:
        read_examples(path)
    lines = e.value.lines()
    assert len(e.value.problems) == e.value.total == MAX_REPORTED + 5
    assert len(lines) == MAX_REPORTED + 1 and lines[-1] == "... and 5 more problem(s)"
    assert lines[0] == f"{path}: line 1 (id 'q0'): empty or non-text 'question'"
    assert str(e.value) == "\n".join(lines)


def test_skip_drops_bad_records_and_counts_them_in_one_warning(tmp_path, caplog):
    path = jsonl(tmp_path, rec("a"), rec("b", question=""), rec("a"), rec("c", answers={}), rec("d"))
    with caplog.at_level(logging.WARNING, logger="lightning_qa"):
        kept = read_examples(path, on_bad_record="skip")
    assert [r["id"] for r in kept] == ["a", "d"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: skipped 3 unusable record(s), kept 2; first: {path}: line 2 (id 'b'): empty or non-text 'question'"
    ]
    nothing_left = jsonl(tmp_path, rec("a", question=""), name="bad.jsonl")
    assert problems(nothing_left, on_bad_record="skip") == [f"{nothing_left}: no usable questions left"]
    with pytest.raises(ValueError, match="on_bad_record must be one of \\('error', 'skip'\\), not 'ignore'"):
        read_examples(path, on_bad_record="ignore")


def test_answers_are_needed_for_training_not_for_prediction(tmp_path):
    path = jsonl(tmp_path, rec("a", answers={}), rec("b", answers={"text": ["Bob"], "answer_start": [0]}))
    assert len(problems(path)) == 2
    records = read_examples(path, need_answers=False)
    assert [(r["id"], r["answers"]) for r in records] == [
        ("a", {"text": [], "answer_start": []}),
        ("b", {"text": [], "answer_start": []}),  # not read: a broken gold answer does not block prediction
    ]


def test_empty_answers_mean_unanswerable_only_in_squad_2(tmp_path):
    v1 = squad(tmp_path, [rec("a", context=..., answers=[])], version="1.1", name="v1.json")
    assert problems(v1) == [
        f"{v1}: question id 'a': no answers (mark an unanswerable question with \"is_impossible\": true, as SQuAD 2.0)"
    ]
    marked = squad(tmp_path, [rec("a", context=..., answers=[], is_impossible=True)], name="marked.json")
    v2 = squad(tmp_path, [rec("a", context=..., answers=[])], version="v2.0", name="v2.json")
    for path in (marked, v2):
        assert read_examples(path)[0]["answers"] == {"text": [], "answer_start": []}
    assert read_examples(v1, allow_unanswerable=True)[0]["answers"] == {"text": [], "answer_start": []}
    # is_impossible wins over SQuAD 2.0's plausible (wrong) answers; is_impossible false needs an answer
    wrong = [{"text": "Bob", "answer_start": 0}]
    path = squad(
        tmp_path,
        [
            rec("imp", context=..., answers=wrong, is_impossible=True),
            rec("pos", context=..., answers=[], is_impossible=False),
        ],
        version="2.0",
        name="v2_flags.json",
    )
    assert problems(path) == [f"{path}: question id 'pos': no answers although 'is_impossible' is false"]


def test_shipped_squad_2_sample_reads_with_its_unanswerable_questions(sample_dir):
    records = read_examples(str(sample_dir / "dev_v2.json"))
    assert len(records) == 120 and sum(not r["answers"]["text"] for r in records) == 37


@requires_squad
def test_official_dev_sets_read_and_every_shifted_start_is_repaired(tmp_path, caplog):
    v1 = read_examples(str(SQUAD_DIR / "dev-v1.1.json"))
    v2 = read_examples(str(SQUAD_DIR / "dev-v2.0.json"))
    assert (len(v1), len(v2), sum(not r["answers"]["text"] for r in v2)) == (10570, 11873, 5945)
    # shift every answer start of v1.1 by 3 characters: each must come back to an occurrence of its text
    data = json.loads((SQUAD_DIR / "dev-v1.1.json").read_text())
    missed = 0
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                for answer in qa["answers"]:
                    answer["answer_start"] += 3
                    text, start = answer["text"], answer["answer_start"]
                    missed += para["context"][start : start + len(text)] != text
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="lightning_qa"):
        repaired = read_examples(str(shifted))
    assert missed > 30000 and [r.getMessage() for r in caplog.records] == [
        f"{shifted}: moved {missed} answer_start value(s) to the nearest occurrence of the answer text"
    ]
    back = 0
    for original, record in zip(v1, repaired, strict=True):
        for text, start, was in zip(
            record["answers"]["text"],
            record["answers"]["answer_start"],
            original["answers"]["answer_start"],
            strict=True,
        ):
            assert record["context"][start : start + len(text)] == text, record["id"]
            back += start == was
    assert back > 0.99 * sum(len(r["answers"]["text"]) for r in v1)  # mostly the very same occurrence


# -- repairs --------------------------------------------------------------------------------------------------
def test_answer_starts_that_miss_their_text_are_moved_to_the_nearest_occurrence(tmp_path, caplog):
    second_ann = CTX.index("Ann", 1)
    path = jsonl(
        tmp_path,
        rec("exact", answers={"text": ["Ann", "mill"], "answer_start": [28, 14]}),
        rec("near-second", answers={"text": ["Ann"], "answer_start": [second_ann + 4]}),
        rec("near-first", answers={"text": ["Ann"], "answer_start": [3]}),
        rec("beyond", answers={"text": ["Ann"], "answer_start": [len(CTX) + 50]}),
        rec("negative", answers={"text": ["1901"], "answer_start": [-5]}),
        rec("missing", answers={"text": ["mill"]}),
        rec("string", answers=[{"text": "1887", "answer_start": "22"}]),
    )
    with caplog.at_level(logging.WARNING, logger="lightning_qa"):
        records = read_examples(path)
    starts = {r["id"]: r["answers"]["answer_start"] for r in records}
    assert starts == {
        "exact": [28, 14],
        "near-second": [second_ann],
        "near-first": [0],
        "beyond": [second_ann],
        "negative": [CTX.index("1901")],
        "missing": [14],
        "string": [22],
    }
    for r in records:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert CTX[start : start + len(text)] == text
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: moved 6 answer_start value(s) to the nearest occurrence of the answer text"
    ]


# -- the command line ------------------------------------------------------------------------------------------
PREFIX = "lightning_qa: error: "


def run_cli(argv: list[str], tmp_path, capsys) -> tuple[int | str | None, list[str]]:
    """Run `lightning_qa` in-process; return the exit code and its error lines (without the prefix)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([*argv, *run_dirs(tmp_path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return e.value.code, [line.removeprefix(PREFIX) for line in err.splitlines() if line.startswith(PREFIX)]


def validate_args(model_dir: str, data: str, *extra: str) -> list[str]:
    return ["validate", "--model.model_name_or_path", model_dir, "--data.validation_file", data, *extra]


def test_cli_reports_every_bad_record_then_skips_them_on_request(
    tmp_path, tiny_model_dir, sample_dir, capsys, caplog
):
    good = [json.loads(line) for line in (sample_dir / "questions.jsonl").read_text().splitlines()][:4]
    for row in good:
        row["answers"] = {"text": [row["context"][:9]], "answer_start": [0]}
    bad = [
        rec("dup", answers={"text": ["Bob"], "answer_start": [0]}),
        rec(good[0]["id"]),
        rec("no-q", question=""),
    ]
    path = jsonl(tmp_path, *good[:2], *bad, *good[2:])
    code, lines = run_cli(validate_args(tiny_model_dir, path), tmp_path, capsys)
    assert code == 2
    assert lines == [
        f"{path}: line 3 (id 'dup'): answer 'Bob' does not occur in the context",
        f"{path}: line 4 (id 'sample-dev-0001'): duplicate id, first used at line 1",
        f"{path}: line 5 (id 'no-q'): empty or non-text 'question'",
    ]
    with caplog.at_level(logging.WARNING, logger="lightning_qa"):
        main([*validate_args(tiny_model_dir, path, "--data.on_bad_record", "skip"), *run_dirs(tmp_path)])
    (run,) = (tmp_path / "runs").iterdir()
    assert sorted(json.loads((run / "predictions.json").read_text())) == sorted(r["id"] for r in good)
    skipped = [r.getMessage() for r in caplog.records if r.name == "lightning_qa.io"]
    assert skipped == [f"{path}: skipped 3 unusable record(s), kept 4; first: {lines[0]}"]


def test_cli_config_errors_are_one_line(tmp_path, tiny_model_dir, sample_dir, capsys):
    dev = str(sample_dir / "dev.json")
    code, lines = run_cli(
        validate_args(tiny_model_dir, dev, "--data.max_seq_length", "64", "--data.doc_stride", "64"),
        tmp_path,
        capsys,
    )
    assert (code, lines) == (
        2,
        [
            "max_seq_length (64) leaves no room for a question next to doc_stride (64) + 1 context tokens and 3 special tokens"
        ],
    )
    missing = str(tmp_path / "missing.json")
    assert run_cli(validate_args(tiny_model_dir, missing), tmp_path, capsys) == (
        2,
        [f"{missing}: file not found"],
    )
    fit = ["fit", "--model.model_name_or_path", tiny_model_dir, "--data.train_file", missing]
    code, lines = run_cli([*fit, "--data.validation_split", "0.1"], tmp_path, capsys)
    assert code == 2 and len(lines) == 1 and missing in lines[0]
    code, lines = run_cli(
        validate_args(tiny_model_dir, dev, "--data.on_bad_record", "ignore"), tmp_path, capsys
    )
    assert (code, lines) == (2, ["on_bad_record must be 'error' or 'skip', not 'ignore'"])


def test_cli_unknown_option_exits_2_with_its_name(tmp_path, tiny_model_dir, sample_dir, capsys):
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(validate_args(tiny_model_dir, str(sample_dir / "dev.json"), "--data.no_such_option", "3"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "error: unrecognized arguments: --data.no_such_option 3"


def test_cli_model_directory_without_tokenizer_is_one_line(tmp_path, tiny_model_dir, sample_dir, capsys):
    model_dir = tmp_path / "weights-only"
    model_dir.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(f"{tiny_model_dir}/{name}", model_dir / name)
    code, lines = run_cli(
        validate_args(str(model_dir), str(sample_dir / "dev.json"), "--data.max_eval_samples", "2"),
        tmp_path,
        capsys,
    )
    assert code == 2 and len(lines) == 1 and str(model_dir) in lines[0] and "tokenizer" in lines[0]
