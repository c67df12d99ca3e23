"""Lua scripts kept in ``.lua`` files and called by the names they bind.

Every script starts by binding named locals from KEYS and ARGV, for example::

    local meta, lease = KEYS[1], KEYS[2]
    local consumer, lease_ms = ARGV[1], ARGV[2]

That header is the one place the argument order is written: Python passes keys and
arguments by those names (:meth:`LuaScript.bind`), and what follows them (a variable
number of keys or arguments) as ``extra_keys`` / ``extra_args``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_BINDING = re.compile(r"^local\s+([\w\s,]+?)\s*=\s*((?:(?:KEYS|ARGV)\[\d+\][\s,]*)+)$", re.M)
_REF = re.compile(r"(KEYS|ARGV)\[(\d+)\]")


class LuaScript:
    """A script's source and the names of its positional keys and arguments."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        self.source = path.read_text()
        found: dict[str, list[tuple[int, str]]] = {"KEYS": [], "ARGV": []}
        for names, refs in _BINDING.findall(self.source):
            names_list = [n.strip() for n in names.split(",")]
            refs_list = _REF.findall(refs)
            if len(names_list) != len(refs_list):
                raise ValueError(f"{self.name}: {names!r} binds {len(refs_list)} values")
            for name, (table, index) in zip(names_list, refs_list):
                found[table].append((int(index), name))
        self.keys = self._ordered(found["KEYS"], "KEYS")
        self.args = self._ordered(found["ARGV"], "ARGV")

    def _ordered(self, bound: list[tuple[int, str]], table: str) -> tuple[str, ...]:
        bound.sort()
        if [i for i, _ in bound] != list(range(1, len(bound) + 1)):
            raise ValueError(f"{self.name}: {table} must be bound as 1..n, got {[i for i, _ in bound]}")
        return tuple(name for _, name in bound)

    @property
    def first_extra_arg(self) -> int:
        """The ARGV index (1-based) of the first extra argument."""
        return len(self.args) + 1

    def bind(
        self,
        keys: Mapping[str, Any],
        args: Mapping[str, Any],
        extra_keys: Sequence[Any] = (),
        extra_args: Sequence[Any] = (),
    ) -> tuple[list[Any], list[Any]]:
        """(KEYS, ARGV) in the script's order; a missing or unknown name raises."""
        return self._place(keys, self.keys, "key") + list(extra_keys), self._place(args, self.args, "argument") + list(
            extra_args
        )

    def _place(self, given: Mapping[str, Any], order: tuple[str, ...], what: str) -> list[Any]:
        if set(given) != set(order):
            raise TypeError(f"{self.name}: {what}s {sorted(given)} do not match {list(order)}")
        return [given[name] for name in order]


def load(module_file: str, name: str) -> LuaScript:
    """The script ``name`` next to the module file ``module_file`` (pass ``__file__``)."""
    return LuaScript(Path(module_file).with_name(name))
