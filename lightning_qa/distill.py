"""Distillation: a fine-tuned teacher's start/end logits as soft targets for the student (`--model.teacher`).

A teacher's logits depend only on the teacher and the features, so they are computed once, before
training (`teacher_logits`), stored in an Arrow file next to the feature cache, row-aligned with it, and
carried by every training batch (`features.collate` pads them): an epoch costs the student's forward and
backward only, and the teacher never lives in the student's module or checkpoint. Under DDP each rank
computes a strided share of the rows and all ranks gather the whole, so no rank runs a pass long enough to
hit the collective timeout while the others wait.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from contextlib import nullcontext
from typing import Any

import datasets
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from datasets.arrow_writer import ArrowWriter
from filelock import FileLock
from tqdm.auto import tqdm

from lightning_qa import checkpoint as ckpt_io
from lightning_qa.features import TEACHER_LOGITS, collate, model_inputs
from lightning_qa.tokenization import load_tokenizer

log = logging.getLogger(__name__)

# question/context pairs both tokenizers must turn into the same ids: casing, accents, digits, punctuation
PROBES = (
    ("Who designed the Eiffel Tower in 1887?", "Gustave Eiffel's company; the ÉCOLE Centrale, a café."),
    ("What is naïve Bayes' accuracy?", "About 93.5% (±0.2) on 20,000 e-mails — see Table 3 [a]."),
)


class TeacherMismatch(ValueError):
    """The teacher's tokenizer gives other input ids than the student's: its logits would not line up."""


def distill_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    teacher_start: torch.Tensor,
    teacher_end: torch.Tensor,
    attention_mask: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean of the start and end KL(teacher || student) at `temperature`, times T^2 (so its gradient keeps
    the hard-label term's scale), `KLDivLoss(batchmean)` as in transformers' distillation script; padding
    positions get no probability on either side, as in `model.qa_loss`."""
    pad = attention_mask == 0
    low = torch.finfo(torch.float32).min

    def term(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s = (student.float() / temperature).masked_fill(pad, low)
        t = (teacher.float() / temperature).masked_fill(pad, low)
        return F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")

    return (term(start_logits, teacher_start) + term(end_logits, teacher_end)) / 2 * temperature**2


# -- the teacher -------------------------------------------------------------------------------------------
def _teacher_dir(source: str) -> str:
    """A directory with the teacher's config and tokenizer: our .ckpt materialized, else `source` itself."""
    return ckpt_io.materialize(source) if source.endswith(".ckpt") and os.path.isfile(source) else source


def load_teacher(source: str) -> torch.nn.Module:
    """The teacher QA model of an `hf_model/` directory, a .ckpt of ours or a hub name: frozen, eval mode."""
    from transformers import AutoModelForQuestionAnswering

    if source.endswith(".ckpt") and os.path.isfile(source):
        model = ckpt_io.build_model(ckpt_io.load_checkpoint(source), _teacher_dir(source))
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(source)
    return model.eval().requires_grad_(False)


def check_tokenizers(student: Any, student_name: str, teacher_source: str) -> None:
    """Refuse a teacher whose tokenizer gives other input ids than the student's, naming the difference."""
    teacher = load_tokenizer(_teacher_dir(teacher_source))
    why = None
    s_vocab, t_vocab = student.get_vocab(), teacher.get_vocab()
    if s_vocab != t_vocab:
        missing = sorted(set(s_vocab) - set(t_vocab))[:3]
        why = f"vocabularies differ ({len(s_vocab)} vs {len(t_vocab)} tokens; e.g. {missing} not in the teacher's)"
        if not missing:
            why = f"vocabularies differ ({len(s_vocab)} vs {len(t_vocab)} tokens, or the same tokens numbered differently)"
    elif student.pad_token_id != teacher.pad_token_id:
        why = f"padding token id {student.pad_token_id} vs {teacher.pad_token_id}"
    else:
        for question, context in PROBES:
            a = student(question, context)["input_ids"]
            b = teacher(question, context)["input_ids"]
            if a != b:
                i = next(
                    (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
                )
                why = (
                    f"{question!r} gives {student.convert_ids_to_tokens(a[i : i + 3])} vs "
                    f"{teacher.convert_ids_to_tokens(b[i : i + 3])} at token {i}"
                )
                break
    if why:
        raise TeacherMismatch(
            f"teacher {teacher_source} and student {student_name} tokenize differently: {why}; "
            "distillation needs the same input ids"
        )


def teacher_key(source: str, precision: str) -> list:
    """What the cached logits depend on besides the features: the teacher's files (path, size, time; a hub
    name by its resolved snapshot, which names the commit) and the precision of the pass."""
    path = source
    if not os.path.exists(source):
        from transformers.utils.hub import cached_file

        path = os.path.dirname(cached_file(source, "config.json"))
    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "*")))
    stats = [
        (os.path.abspath(f), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files if os.path.isfile(f)
    ]
    return [stats, precision]


# -- the one pass ------------------------------------------------------------------------------------------
def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _token_type_ids(input_ids: torch.Tensor, mask: torch.Tensor, sep_id: int) -> torch.Tensor:
    """BERT segment ids for features made without them (a DistilBERT student): 1 after the first [SEP]."""
    sep = (input_ids == sep_id).long()
    return ((sep.cumsum(1) - sep) > 0).long() * mask


@torch.inference_mode()
def compute_logits(
    teacher: torch.nn.Module,
    features: datasets.Dataset,
    rows: list[int],
    *,
    pad_token_id: int,
    sep_token_id: int | None,
    batch_size: int,
    device: torch.device,
    precision: Any = None,
    progress: bool = False,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Teacher start/end logits (float32, unpadded) of feature `rows`, in the teacher's own inputs."""
    names = model_inputs(teacher)
    columns = [c for c in ("input_ids", "token_type_ids") if c in features.column_names]
    table = features.select_columns(columns)
    lengths = [len(x) for x in table["input_ids"]]
    order = sorted(rows, key=lengths.__getitem__)  # little padding per batch
    teacher = teacher.to(device)
    out = {}
    for i in tqdm(range(0, len(order), batch_size), desc="Teacher logits", disable=not progress):
        chunk = order[i : i + batch_size]
        cols = table[chunk]  # one read per batch
        batch = collate(
            [dict(zip(cols, row, strict=True)) for row in zip(*cols.values(), strict=True)],
            pad_token_id,
            None,
        )
        if "token_type_ids" in names and "token_type_ids" not in batch and sep_token_id is not None:
            batch["token_type_ids"] = _token_type_ids(
                batch["input_ids"], batch["attention_mask"], sep_token_id
            )
        inputs = {k: batch[k].to(device) for k in names if k in batch}
        with precision.forward_context() if precision is not None else nullcontext():
            result = teacher(**inputs)
        starts, ends = result.start_logits.float().cpu().numpy(), result.end_logits.float().cpu().numpy()
        for j, r in enumerate(chunk):
            n = int(batch["attention_mask"][j].sum())
            out[r] = (starts[j, :n].copy(), ends[j, :n].copy())
    return out


def write_logits(logits: dict[int, tuple[np.ndarray, np.ndarray]], n_rows: int, path: str) -> None:
    """Rows 0..n_rows-1 as an Arrow file `datasets` reads (`Dataset.from_file`), written then renamed."""
    schema = datasets.Features({k: datasets.Sequence(datasets.Value("float32")) for k in TEACHER_LOGITS})
    tmp = f"{path}.tmp-{os.getpid()}"
    writer = ArrowWriter(features=schema, path=tmp)
    for lo in range(0, n_rows, 1000):
        rows = range(lo, min(lo + 1000, n_rows))
        writer.write_batch({k: [logits[r][i] for r in rows] for i, k in enumerate(TEACHER_LOGITS)})
    writer.finalize()
    writer.close()
    os.replace(tmp, path)


def teacher_logits(
    source: str,
    features: datasets.Dataset,
    path: str,
    *,
    pad_token_id: int,
    batch_size: int,
    device: torch.device,
    precision: Any = None,
    local_rank: int = 0,
    progress: bool = True,
) -> datasets.Dataset:
    """The teacher's logits of every row of `features`, from `path` when already there, else computed:
    each rank its strided share, gathered on every rank, written by each machine's first process (under a
    file lock, so several local "nodes" share one file); every rank then reads the same file."""
    world, rank = _rank()
    have = torch.tensor([os.path.exists(path)], dtype=torch.int32, device=device)  # NCCL: on the GPU
    if world > 1:  # one decision for all ranks (a new node may lack the file another has)
        dist.all_reduce(have, op=dist.ReduceOp.MIN)
    if not have.item():
        teacher = load_teacher(source)
        if precision is not None:
            teacher = precision.convert_module(teacher)  # the trainer's precision (bf16-true: bf16 weights)
        sep = load_tokenizer(_teacher_dir(source)).sep_token_id
        started = time.perf_counter()
        mine = compute_logits(
            teacher,
            features,
            list(range(rank, len(features), world)),
            pad_token_id=pad_token_id,
            sep_token_id=sep,
            batch_size=batch_size,
            device=device,
            precision=precision,
            progress=progress and rank == 0,
        )
        del teacher
        if world > 1:
            parts: list[dict | None] = [None] * world
            dist.all_gather_object(parts, mine)
            mine = {r: v for part in parts for r, v in (part or {}).items()}
        if local_rank == 0:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with FileLock(path + ".lock"):
                if not os.path.exists(path):
                    write_logits(mine, len(features), path)
        if rank == 0:
            seconds = time.perf_counter() - started
            log.info(f"Teacher logits: {len(features)} windows in {seconds:.1f}s (on {world} process(es))")
        del mine
    if world > 1:
        dist.barrier()  # the file is written before anyone reads it
    table = datasets.Dataset.from_file(path)
    if len(table) != len(features):
        raise ValueError(f"{path}: {len(table)} rows of teacher logits for {len(features)} features")
    return table
