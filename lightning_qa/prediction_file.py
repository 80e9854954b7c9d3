"""The output of `lightning_qa predict`: JSON Lines in input order, written as it goes, resumable.

Questions are answered in chunks of `chunk_size` (the last one shorter); chunk `c` belongs to rank
`c % world`. One process appends each chunk's records to the output as soon as the chunk is answered;
under DDP each rank appends to its own part (`<output>.part<rank>-of-<world>`) and rank 0 merges the parts
into the output, in input order, at the end. Every chunk gives exactly one record per question, so the
position of each record follows from the layout and no index is stored in the records.

Beside the output, `<output>.lightning_qa.json` holds the run's fingerprint (model, settings, input,
layout) and whether it is complete. Running the same command again continues after the last whole chunk
(a partial chunk or line is cut off and redone: the same chunks give the same batches, so the resumed file
is identical to an uninterrupted one), skips a complete output, and refuses a partial output of another
model, settings or input.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

META_SUFFIX = ".lightning_qa.json"


class PredictionFileError(ValueError):
    """An output that cannot be continued (exit 2, one line)."""


@dataclass(frozen=True)
class Layout:
    """Which questions each chunk holds and which rank answers it."""

    n_records: int
    chunk_size: int
    world: int = 1

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_records / self.chunk_size)

    def size(self, chunk: int) -> int:
        return min(self.chunk_size, self.n_records - chunk * self.chunk_size)

    def chunks(self, rank: int) -> list[int]:
        return list(range(rank, self.n_chunks, self.world))


def part_path(path: str, rank: int, world: int) -> str:
    return path if world == 1 else f"{path}.part{rank}-of-{world}"


def read_meta(path: str) -> dict[str, Any] | None:
    try:
        with open(path + META_SUFFIX, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_meta(path: str, fingerprint: dict[str, Any], layout: Layout, complete: bool) -> None:
    meta = {"fingerprint": fingerprint, "layout": layout.__dict__, "complete": complete}
    tmp = path + META_SUFFIX + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    os.replace(tmp, path + META_SUFFIX)


def plan(
    path: str, fingerprint: dict[str, Any], layout: Layout, rank: int, overwrite: bool = False
) -> list[int]:
    """The chunks this rank still has to answer, its part cut back to its last whole chunk.

    Raises `PredictionFileError` for an output that is not ours to continue: one without the meta file,
    or of another fingerprint or layout (unless `overwrite`, which starts afresh)."""
    meta = read_meta(path)
    part = part_path(path, rank, layout.world)
    if overwrite:
        for stale in {part, *((path, path + META_SUFFIX) if rank == 0 else ())}:
            if os.path.exists(stale):
                os.remove(stale)
        return layout.chunks(rank)
    if meta is None:
        if os.path.exists(path) or os.path.exists(part):
            raise PredictionFileError(
                f"{path} exists and is not a lightning_qa predict output to continue (no {path}{META_SUFFIX}): "
                "choose another --predictions_file or pass --overwrite_predictions true"
            )
        return layout.chunks(rank)
    if meta.get("fingerprint") != fingerprint or meta.get("layout") != layout.__dict__:
        changed = _differences(meta.get("fingerprint") or {}, fingerprint)
        if meta.get("layout") != layout.__dict__:
            changed.append("layout (number of processes, chunk size or question count)")
        raise PredictionFileError(
            f"{path} was written by another run ({', '.join(changed) or 'different settings'} differ): "
            "choose another --predictions_file or pass --overwrite_predictions true"
        )
    if meta.get("complete"):
        return []
    return layout.chunks(rank)[_keep_whole_chunks(part, layout, rank) :]


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _keep_whole_chunks(part: str, layout: Layout, rank: int) -> int:
    """Cut `part` after its last whole chunk (whole lines that parse); return how many chunks it keeps."""
    if not os.path.exists(part):
        return 0
    ends, size = [], 0  # byte offset after each complete line
    with open(part, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except ValueError:
                break
            size += len(line)
            ends.append(size)
    kept, lines = 0, 0
    for chunk in layout.chunks(rank):
        if lines + layout.size(chunk) > len(ends):
            break
        lines += layout.size(chunk)
        kept += 1
    with open(part, "r+b") as f:
        f.truncate(ends[lines - 1] if lines else 0)
    return kept


class PartWriter:
    """Appends answered chunks to this rank's part, in its chunk order, flushed as each is written."""

    def __init__(self, path: str, layout: Layout, rank: int, todo: list[int]) -> None:
        self.layout, self.todo = layout, list(todo)
        self.pending: dict[int, list[dict]] = {}  # answered chunks waiting for an earlier one
        self.written = 0
        self.file = open(part_path(path, rank, layout.world), "a", encoding="utf-8")

    def add(self, chunk: int, records: list[dict]) -> None:
        if len(records) != self.layout.size(chunk):
            raise RuntimeError(
                f"chunk {chunk}: {len(records)} answers for {self.layout.size(chunk)} questions"
            )
        self.pending[chunk] = records
        while self.todo and self.todo[0] in self.pending:
            for r in self.pending.pop(self.todo.pop(0)):
                self.file.write(json.dumps(r, ensure_ascii=False) + "\n")
                self.written += 1
            self.file.flush()

    def close(self) -> None:
        self.file.close()
        if self.todo:
            raise RuntimeError(f"predict ended with {len(self.todo)} chunk(s) unanswered: {self.todo[:5]}")


def finish(path: str, fingerprint: dict[str, Any], layout: Layout) -> None:
    """Rank 0, after every rank closed its part: merge the parts in input order (a line at a time) and
    mark the output complete."""
    if layout.world > 1:
        parts = [open(part_path(path, r, layout.world), encoding="utf-8") for r in range(layout.world)]
        with open(path + ".tmp", "w", encoding="utf-8") as out:
            for chunk in range(layout.n_chunks):
                source = parts[chunk % layout.world]
                for _ in range(layout.size(chunk)):
                    out.write(source.readline())
        for f in parts:
            f.close()
        os.replace(path + ".tmp", path)
        for r in range(layout.world):
            os.remove(part_path(path, r, layout.world))
    write_meta(path, fingerprint, layout, complete=True)
