"""Build the small SQuAD-format sample dataset bundled with lightning_qa.

The passages, questions and gold answers are data, so they live in ``scripts/sample_source.yaml``
(its header explains the format); this script only lays them out as SQuAD files and checks every
answer span. PyYAML comes with lightning and transformers. All text is original, written for this
project: nothing is copied from SQuAD, Wikipedia or any other dataset.

After editing the YAML, regenerate ``lightning_qa/assets/sample/`` with::

    python scripts/make_sample.py            # or --out DIR to write somewhere else

Outputs:
    train.json       SQuAD v1.1 layout, one gold answer per question.
    dev.json         SQuAD v1.1 layout, some questions with several gold spans.
    dev_v2.json      the dev paragraphs plus unanswerable questions (SQuAD v2.0).
    questions.jsonl  {"id", "question", "context"} lines for prediction.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "sample_source.yaml"
OUT_DIR = HERE.parent / "lightning_qa" / "assets" / "sample"
N_PREDICT = 10  # questions.jsonl: the first question of each of the first N_PREDICT dev paragraphs

# An answer span: its exact text, or {"text", "occurrence"} (0-based) when the text occurs more than once.
Span = str | dict[str, Any]


def locate(context: str, span: Span) -> dict[str, Any]:
    """Return {"text", "answer_start"}; check the span is text, found, unambiguous and whole words."""
    text, k = (span["text"], span["occurrence"]) if isinstance(span, dict) else (span, None)
    assert isinstance(text, str), f"answer {text!r} is not text: quote it in the YAML"
    count = context.count(text)
    assert count > 0, f"answer {text!r} not found in: {context[:70]!r}..."
    assert k is not None or count == 1, f"{text!r} occurs {count} times; give {{text, occurrence}}"
    start = context.find(text)
    for _ in range(k or 0):
        start = context.find(text, start + 1)
    assert start >= 0, f"occurrence {k} of {text!r} not found"
    end = start + len(text)
    assert (
        text == text.strip()
        and (start == 0 or not context[start - 1].isalnum())
        and (end == len(context) or not context[end].isalnum())
    ), f"answer {text!r} cuts a word"
    return {"text": text, "answer_start": start}


def build(articles: list[dict[str, Any]], split: str, version: str) -> dict[str, Any]:
    """Lay the articles out as a SQuAD file; ids count up in source order, unanswerable ones only in v2.0."""
    v2 = version == "v2.0"
    n_answerable = n_impossible = 0
    data = []
    for article in articles:
        out_paragraphs = []
        for paragraph in article["paragraphs"]:
            context = " ".join(paragraph["context"].split())
            out_qas: list[dict[str, Any]] = []
            for qa in paragraph["qas"]:
                question, gold = qa["question"], qa["answer"]
                if gold is None:
                    n_impossible += 1
                    if v2:
                        qid = f"sample-{split}-na-{n_impossible:04d}"
                        out_qas.append(
                            {"id": qid, "question": question, "answers": [], "is_impossible": True}
                        )
                    continue
                n_answerable += 1
                spans = gold if isinstance(gold, list) else [gold]
                out = {
                    "id": f"sample-{split}-{n_answerable:04d}",
                    "question": question,
                    "answers": [locate(context, s) for s in spans],
                }
                if v2:
                    out["is_impossible"] = False
                out_qas.append(out)
            out_paragraphs.append({"context": context, "qas": out_qas})
        data.append({"title": article["title"], "paragraphs": out_paragraphs})
    return {"version": version, "data": data}


def write_json(path: Path, obj: Any) -> None:
    with path.open("w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main(out: Path = OUT_DIR) -> None:
    source = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    train, dev_src = source["train"], source["dev"]
    train_golds = [qa["answer"] for a in train for p in a["paragraphs"] for qa in p["qas"]]
    assert all(g is not None and not isinstance(g, list) for g in train_golds), "train: one span each"
    titles = {a["title"] for a in train}
    assert not titles & {a["title"] for a in dev_src}, "dev articles must not be in train"

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "train.json", build(train, "train", "1.1"))
    dev = build(dev_src, "dev", "1.1")
    write_json(out / "dev.json", dev)
    write_json(out / "dev_v2.json", build(dev_src, "dev", "v2.0"))

    paragraphs = [p for article in dev["data"] for p in article["paragraphs"]][:N_PREDICT]
    with (out / "questions.jsonl").open("w", encoding="utf-8") as f:
        for p in paragraphs:
            qa = p["qas"][0]
            line = {"id": qa["id"], "question": qa["question"], "context": p["context"]}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote train.json, dev.json, dev_v2.json, questions.jsonl to {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default: %(default)s)")
    main(parser.parse_args().out)
