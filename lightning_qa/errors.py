"""One way to report what the user must fix: `PROG: error: ...` lines on stderr and exit status 2, no
traceback (`--verbose` keeps it). Every subcommand, inside the Trainer or not, reports this way."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn


def first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def fail(*lines: str, prog: str = "lightning_qa") -> NoReturn:
    for line in lines:
        print(f"{prog}: error: {line}", file=sys.stderr)
    sys.exit(2)


@contextmanager
def reported(
    errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    prog: str = "lightning_qa",
    verbose: bool = False,
) -> Iterator[None]:
    """Turn `errors` raised inside into `fail` lines: all of a `DataError`'s lines, else the first line."""
    try:
        yield
    except errors as e:
        if verbose:
            raise
        lines = e.lines() if hasattr(e, "lines") else [first_line(e)]
        if "DeepSpeed installed" in lines[0]:
            lines = [
                'DeepSpeed is not installed: pip install "lightning_qa[deepspeed]" (or pip install deepspeed)'
            ]
        fail(*lines, prog=prog)
