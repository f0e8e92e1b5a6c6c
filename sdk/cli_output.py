"""How the command line prints: consoles, tables that fit their terminal, JSON.

A table is laid out for the width it is printed to. Columns carry a priority: when the table
cannot fit with every cell whole, the least important columns go first, and a number is never
cut (no ``-0.0…``). Piped at a terminal (``| less``) the terminal's width still applies; in a
log the width is ``$COLUMNS`` or 140, and no line is padded to it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["Column", "console", "emit", "fitted_table", "print_json", "render_width", "table"]

#: The width assumed off a terminal when ``$COLUMNS`` does not say.
LOG_WIDTH = 140


@dataclass(frozen=True)
class Column:
    """One column of a fitted table.

    ``priority``: lower is kept longer (0: never dropped). ``short``: a narrower header used
    before the column is dropped. ``number``: right-aligned and never wrapped or cut.
    ``wrap``: False keeps a text column's cells on one line too (names, labels).
    """

    header: str
    priority: int = 0
    short: str | None = None
    number: bool = False
    wrap: bool = True


def render_width(stream: Any = None) -> int | None:
    """The width to lay out for: the terminal's (None: rich asks it); piped into a pager or
    ``head`` at a terminal, that terminal's; else (a log) $COLUMNS or 140."""
    stream = stream or sys.stdout
    if stream.isatty():
        return None
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    for other in (sys.stderr, sys.stdin):  # `alphazoo models | less` is still read there
        try:
            if other.isatty():
                return os.get_terminal_size(other.fileno()).columns
        except (AttributeError, OSError, ValueError):
            continue
    return LOG_WIDTH


def console(stderr: bool = False, width: int | None = None, file: Any = None) -> Any:
    """A rich console on stdout (or stderr, or ``file``) laid out for where it prints."""
    from rich.console import Console

    stream = file or (sys.stderr if stderr else sys.stdout)
    if width is None:
        width = render_width(stream)
    return Console(file=file, stderr=stderr, width=width, log_path=False)


def emit(out: Any, *renderables: Any) -> None:
    """Print on console ``out``; off a terminal without the trailing spaces rich pads lines
    with (a log's lines end where their text does)."""
    if out.is_terminal:
        out.print(*renderables)
        return
    with out.capture() as captured:
        out.print(*renderables)
    text = "\n".join(line.rstrip() for line in captured.get().splitlines())
    out.file.write(text + "\n")
    out.file.flush()


def table(title: str | None, *columns: str) -> Any:
    """A plain table with text columns."""
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    return result


def fitted_table(out: Any, title: str | None, columns: Sequence[Column],
                 rows: Sequence[Sequence[str]]) -> Any:
    """A table for console ``out``: every cell whole, low-priority columns dropped to fit.

    Headers are shortened first, then columns dropped by priority (highest number first),
    until the table's narrowest layout fits the console's width. The columns left out are
    named in a caption, so nothing disappears silently.
    """
    from rich.cells import cell_len
    from rich.measure import Measurement
    from rich.table import Table

    def build(kept: list[int], short: set[int]) -> Any:
        result = Table(title=title, title_justify="left", caption_justify="left")
        for index in kept:
            column = columns[index]
            header = (column.short or column.header) if index in short else column.header
            whole = column.number or not column.wrap
            result.add_column(header, justify="right" if column.number else "left",
                              no_wrap=whole, min_width=widest(index, header) if whole else None,
                              overflow="fold")
        for row in rows:
            result.add_row(*(row[index] for index in kept))
        return result

    def widest(index: int, header: str) -> int:
        # A cell kept whole sets the column's least width, so rich cannot squeeze it.
        return max([cell_len(header), *(cell_len(row[index]) for row in rows)])

    def fits(candidate: Any) -> bool:
        # Measured as if the console were unbounded: rich clamps a measurement to the width
        # it is given, and would then squeeze columns (cutting numbers) to honour it.
        unbounded = out.options.update_width(10_000)
        return Measurement.get(out, unbounded, candidate).minimum <= out.width

    kept = list(range(len(columns)))
    # Least needed first: priority 0 columns last, and among equals the rightmost first.
    order = sorted(kept, key=lambda i: (columns[i].priority == 0, -columns[i].priority, -i))
    short: set[int] = set()
    candidate = build(kept, short)
    if fits(candidate):
        return candidate
    for index in order:  # shorter headers, one column at a time
        if columns[index].short:
            short.add(index)
            candidate = build(kept, short)
            if fits(candidate):
                return candidate
    dropped: list[int] = []
    for index in order:
        if not columns[index].priority:
            break
        kept.remove(index)
        dropped.append(index)
        candidate = build(kept, short)
        if fits(candidate):
            break
    names = ", ".join(columns[i].header for i in sorted(dropped))
    candidate.caption = f"(too narrow for: {names}; widen the terminal or use --json)"
    return candidate


def print_json(value: Any) -> int:
    """``value`` as indented JSON on stdout; returns exit code 0."""
    print(json.dumps(value, indent=2, default=str))
    return 0
