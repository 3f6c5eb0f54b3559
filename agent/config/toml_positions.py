"""Find the line of each key in a TOML document.

``tomllib`` returns plain data without positions, so this small scanner walks
the text of an already-parsed (valid) document and records, for every key
path, the line where it is defined: ``[table]`` and ``[[array]]`` headers,
``key = value`` lines, dotted keys, inline tables and array elements.

Paths use strings for keys and ints for array indices, matching pydantic
error locations::

    >>> lines = key_lines('[[cameras]]\\nname = "a"\\n[[cameras]]\\nname = "b"\\n')
    >>> lines[("cameras", 1, "name")], locate(lines, ("cameras", 1, "url"))
    (4, 3)
"""

from __future__ import annotations

import bisect
import tomllib
from collections.abc import Sequence

KeyPath = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path defined in ``text`` to its 1-based line number.

    Best effort: on text it cannot follow it returns what it found so far.
    """
    scanner = _Scanner(text)
    try:
        scanner.run()
    except (IndexError, ValueError, tomllib.TOMLDecodeError):
        pass
    return scanner.lines


def locate(lines: dict[KeyPath, int], path: Sequence[str | int]) -> int | None:
    """Line of ``path``, or of its nearest enclosing key/table that has one."""
    for end in range(len(path), 0, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


class _Scanner:
    """Character-level walk over a TOML document recording key positions."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.lines: dict[KeyPath, int] = {}
        self._line_starts = [0] + [n + 1 for n, ch in enumerate(text) if ch == "\n"]
        self._arrays: dict[KeyPath, int] = {}  # array-of-tables path -> entries seen
        self._table: KeyPath = ()

    # -- helpers -------------------------------------------------------------
    def _line(self) -> int:
        return bisect.bisect_right(self._line_starts, self.i)

    def _peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def _skip_space(self, newlines: bool = False) -> None:
        while self.i < len(self.s):
            ch = self.s[self.i]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self.i += 1
            elif ch == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def _record(self, path: KeyPath, line: int, *, overwrite: bool = True) -> None:
        if overwrite:
            self.lines[path] = line
        else:
            self.lines.setdefault(path, line)

    def _resolve(self, keys: Sequence[str]) -> KeyPath:
        """Turn header keys into a path, inserting the current index of arrays of tables."""
        path: KeyPath = ()
        for key in keys:
            path += (key,)
            if path in self._arrays:
                path += (self._arrays[path] - 1,)
        return path

    # -- grammar -------------------------------------------------------------
    def run(self) -> None:
        while True:
            self._skip_space(newlines=True)
            if self.i >= len(self.s):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self.i += 2
                keys = self._keys()
                self.i += 2  # ']]'
                parent = self._resolve(keys[:-1]) + (keys[-1],)
                index = self._arrays.get(parent, 0)
                self._arrays[parent] = index + 1
                self._table = parent + (index,)
                self._record(parent, line, overwrite=False)
                self._record(self._table, line)
            elif self._peek() == "[":
                self.i += 1
                keys = self._keys()
                self.i += 1  # ']'
                self._table = self._resolve(keys)
                for end in range(1, len(self._table)):
                    self._record(self._table[:end], line, overwrite=False)
                self._record(self._table, line)
            else:
                self._key_value(self._table)
            self._skip_space()
            if self.i < len(self.s) and self.s[self.i] != "\n":
                raise ValueError(f"unexpected text at offset {self.i}")

    def _keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip_space()
            ch = self._peek()
            if ch in ('"', "'"):
                start = self.i
                self._string()
                keys.append(tomllib.loads("k = " + self.s[start : self.i])["k"])
            else:
                start = self.i
                while self.i < len(self.s) and self.s[self.i] in _BARE_KEY_CHARS:
                    self.i += 1
                if self.i == start:
                    raise ValueError(f"expected a key at offset {start}")
                keys.append(self.s[start : self.i])
            self._skip_space()
            if self._peek() != ".":
                return keys
            self.i += 1

    def _key_value(self, table: KeyPath) -> None:
        line = self._line()
        keys = self._keys()
        path = table + tuple(keys)
        for end in range(len(table) + 1, len(path)):
            self._record(path[:end], line, overwrite=False)
        self._record(path, line)
        if self._peek() != "=":
            raise ValueError(f"expected '=' at offset {self.i}")
        self.i += 1
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        self._skip_space()
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self._array(path)
        elif ch == "{":
            self._inline_table(path)
        else:
            while self.i < len(self.s) and self.s[self.i] not in ",]}#\n":
                self.i += 1

    def _array(self, path: KeyPath) -> None:
        self.i += 1
        index = 0
        while True:
            self._skip_space(newlines=True)
            if self._peek() == "]":
                self.i += 1
                return
            self._record(path + (index,), self._line())
            self._value(path + (index,))
            self._skip_space(newlines=True)
            if self._peek() == ",":
                self.i += 1
                index += 1
            elif self._peek() != "]":
                raise ValueError(f"unexpected text in array at offset {self.i}")

    def _inline_table(self, path: KeyPath) -> None:
        self.i += 1
        while True:
            self._skip_space()
            if self._peek() == "}":
                self.i += 1
                return
            self._key_value(path)
            self._skip_space()
            if self._peek() == ",":
                self.i += 1
            elif self._peek() != "}":
                raise ValueError(f"unexpected text in inline table at offset {self.i}")

    def _string(self) -> None:
        quote = self._peek()
        if self._peek(3) == quote * 3:
            self.i += 3
            while not (self._peek(3) == quote * 3 and self._peek(4) != quote * 4):
                if self.i >= len(self.s):
                    raise ValueError("unterminated multi-line string")
                self.i += 2 if quote == '"' and self.s[self.i] == "\\" else 1
            self.i += 3
            return
        self.i += 1
        while self.i < len(self.s) and self.s[self.i] != quote:
            if self.s[self.i] == "\n":
                raise ValueError("newline in string")
            self.i += 2 if quote == '"' and self.s[self.i] == "\\" else 1
        self.i += 1
