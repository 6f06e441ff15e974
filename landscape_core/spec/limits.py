"""How much a reader will parse: the bounds on a user's files, and readers that keep them.

A few hundred bytes can cost gigabytes: YAML aliases expand a value 9-fold per level
(a 411-byte config took 117 s and 4.3 GB when its error message printed the value), a
CSV header of 10^6 columns took 2.3 GB and 318 s in pandas, and a value nested 10^5
deep raised RecursionError. Every file a user hands us is checked against these bounds
before it is parsed, each far above any real input, and a refusal names the bound.
"""

from __future__ import annotations

import csv
import json
import reprlib
from pathlib import Path
from typing import Any

import yaml

from landscape_core.errors import UserError

MAX_DEPTH = 50  # nesting of a YAML value; a real config nests 4 levels deep
MAX_COLUMNS = 1_000  # of a prompt, training or template file; real ones have a handful
MAX_LINE_BYTES = 1 << 20  # one line of such a file: 1 MiB is ~250k tokens, past any context

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 80
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 5
_SHOWN.maxlevel = 3


def shown(value: Any) -> str:
    """``repr(value)`` cut to about 100 characters, for messages.

    A message that repeats a user's value in full can cost more than the whole input
    (an alias bomb's repr is gigabytes); this one costs the same for any value.
    """
    return _SHOWN.repr(value)


class StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that also refuses what costs or misleads.

    - a key given twice (PyYAML silently keeps the last);
    - an alias (``*name``): it repeats a value without writing it out, so a few
      hundred bytes name billions of values; a config never needs one;
    - nesting deeper than ``MAX_DEPTH`` (PyYAML recurses per level: RecursionError).
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None,
                None,
                "aliases (*name) are not accepted, since a few of them can expand to "
                "gigabytes: write the value out",
                self.peek_event().start_mark,
            )
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"values nest more than {MAX_DEPTH} deep", self.peek_event().start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {shown(key)} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text as plain data; anything ``StrictLoader`` refuses is a UserError."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        raise UserError(f"{where} is not valid YAML: {exc}") from None


def parse_json(text: str | bytes, where: str, fix: str = "") -> Any:
    """JSON text as data; bad or absurdly nested JSON is a UserError naming ``where``.

    ``fix``: what the message tells the user to do.
    """
    fix = f"; {fix}" if fix else ""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{where} is not valid JSON ({exc}){fix}") from None
    except RecursionError:  # json recurses per level of nesting
        raise UserError(f"{where} nests its values too deep to read{fix}") from None


def check_table_file(path: Path, shown_name: str) -> None:
    """Refuse a CSV/JSONL file with a line over ``MAX_LINE_BYTES`` or a header of too many columns.

    Read in bounded pieces: the check itself costs at most one line's bound in memory.
    """
    with open(path, "rb") as fh:
        for n, line in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=1):
            if len(line) > MAX_LINE_BYTES:
                raise UserError(
                    f"{shown_name}: line {n} is longer than {MAX_LINE_BYTES >> 20} MiB; a prompt "
                    "that long is past any model's context: shorten it or split the line"
                )
    if path.suffix.lower() in (".jsonl", ".json"):
        return  # columns are the rows' keys: read_jsonl counts them
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error:  # a field past csv's own limit: pandas reports the file
            return
    check_columns(len(header), shown_name)


def check_columns(n: int, shown_name: str) -> None:
    if n > MAX_COLUMNS:
        raise UserError(
            f"{shown_name} has {n:,} columns; at most {MAX_COLUMNS:,} are read (a prompt file "
            "needs one column of text): keep the columns you use"
        )
