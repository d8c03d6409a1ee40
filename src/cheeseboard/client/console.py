"""All client output goes through one ``Output`` object: rich text or ``--json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


class Output:
    """Success, error and table helpers; in JSON mode tables become JSON on stdout."""

    def __init__(self, json_mode: bool = False, console: Console | None = None) -> None:
        self.json_mode = json_mode
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.errors = Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        """True when progress bars and prompts make sense."""
        return self.console.is_terminal and not self.json_mode

    def success(self, message: str, data: Any = None) -> None:
        """A green line, or ``{"ok": true, "message": ..., "result": data}`` in JSON mode."""
        if self.json_mode:
            self.emit({"ok": True, "message": message, "result": data})
        else:
            self.console.print(f"[green]{escape(message)}[/green]")

    def info(self, message: str) -> None:
        """A plain line (silent in JSON mode)."""
        if not self.json_mode:
            self.console.print(escape(message))

    def error(self, message: str, hint: str = "") -> None:
        """A red one-line error plus an optional hint, on stderr."""
        if self.json_mode:
            self.emit({"ok": False, "error": message, "hint": hint})
        self.errors.print(f"[red]error:[/red] {escape(message)}")
        if hint:
            self.errors.print(f"[dim]hint:[/dim] {escape(hint)}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Rows as a rich table, or a list of ``{column: value}`` objects in JSON mode."""
        if self.json_mode:
            self.emit([dict(zip(columns, row, strict=True)) for row in rows])
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        self.console.print(table)

    def emit(self, data: Any) -> None:
        """Print JSON on stdout, unstyled."""
        self.console.file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        self.console.file.flush()
