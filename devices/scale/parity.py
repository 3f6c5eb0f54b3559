"""Parity in software, for 7-bit protocols on ports that cannot do it in hardware.

A 7E1 character read by an 8N1 receiver arrives as its 7 data bits with the parity bit in bit 7, so a
pseudo-terminal that refuses ``PARENB`` (some kernels do) still carries a faithful 7E1 line if both ends put
the parity bit there and check it. Bytes with the wrong parity are dropped and counted, as a UART would.

>>> add_parity(b"W", "E"), add_parity(b"S", "E")
(b'\\xd7', b'S')
>>> strip_parity(b"\\xd7S\\x57", "E")
(b'WS', 1)
"""

from __future__ import annotations

_ODD_ONES = [bin(b & 0x7F).count("1") % 2 for b in range(256)]


def _table(parity: str) -> bytes:
    want_odd = parity == "O"
    # bit 7 set when the 7 data bits need it to make the total even ('E') or odd ('O')
    return bytes((b & 0x7F) | (0x80 if _ODD_ONES[b] != want_odd else 0) for b in range(256))


_ADD = {"E": _table("E"), "O": _table("O")}


def add_parity(data: bytes, parity: str) -> bytes:
    """7-bit ``data`` with the ``parity`` ('E'/'O') bit in bit 7 of each byte."""
    return data.translate(_ADD[parity])


def strip_parity(data: bytes, parity: str) -> tuple[bytes, int]:
    """``(7-bit bytes whose parity was right, number of bytes dropped for wrong parity)``."""
    table = _ADD[parity]
    good = bytes(b & 0x7F for b in data if table[b] == b)
    return good, len(data) - len(good)
