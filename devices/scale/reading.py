"""What a scale says, independent of the wire protocol: readings, replies and unit conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Exact factors to kilograms (1 lb = 0.45359237 kg by international definition).
UNIT_TO_KG: dict[str, float] = {"kg": 1.0, "g": 0.001, "mg": 1e-6, "lb": 0.45359237, "oz": 0.028349523125}


def normalise_unit(unit: str) -> str:
    """Lower-case, trimmed unit symbol (``"LB"`` → ``"lb"``); raises ``ValueError`` for units we cannot convert."""
    u = unit.strip().lower()
    if u not in UNIT_TO_KG:
        raise ValueError(f"unknown weight unit {unit!r}: expected one of {', '.join(UNIT_TO_KG)}")
    return u


def to_kg(value: float, unit: str) -> float:
    """``value`` in ``unit`` converted to kilograms, rounded to 0.1 mg so float noise never shows.

    >>> to_kg(1.26, "LB")
    0.5715264
    >>> to_kg(412, "g")
    0.412
    """
    return round(value * UNIT_TO_KG[normalise_unit(unit)], 7)


def weight_in_kg(value: float | None, unit: str) -> tuple[float | None, str, tuple[str, ...]]:
    """``(kg or None, normalised unit, faults)``: a unit we cannot convert gives no weight and an
    ``unknown_unit:<u>`` fault instead of an exception (the scale may be set to carats or a custom unit).

    >>> weight_in_kg(2.0, "ct")
    (None, 'ct', ('unknown_unit:ct',))
    """
    try:
        u = normalise_unit(unit)
    except ValueError:
        u = unit.strip().lower()
        return None, u, (f"unknown_unit:{u}",)
    return (None if value is None else to_kg(value, u)), u, ()


@dataclass(frozen=True)
class Reading:
    """One weight/status report of a scale.

    ``weight_kg`` is ``None`` when the scale sent no usable weight (a Toledo 8217 status reply, an overload,
    an out-of-range display). ``value``/``unit`` keep what the scale sent before conversion.
    """

    weight_kg: float | None
    value: float | None = None
    unit: str = "kg"
    net: bool = False
    motion: bool = False
    zero: bool = False
    overload: bool = False
    underload: bool = False
    faults: tuple[str, ...] = ()
    raw: bytes = b""

    @property
    def negative(self) -> bool:
        """Below zero: the scale flagged under-zero/under-capacity, or sent a negative weight."""
        return self.underload or (self.weight_kg is not None and self.weight_kg < 0)

    def to_dict(self) -> dict:
        """JSON-able form (``raw`` as text with escapes)."""
        return {"weight_kg": self.weight_kg, "value": self.value, "unit": self.unit, "net": self.net,
                "motion": self.motion, "zero": self.zero, "overload": self.overload,
                "underload": self.underload, "faults": list(self.faults),
                "raw": self.raw.decode("latin-1").encode("unicode_escape").decode("ascii")}


ReplyKind = Literal["reading", "ack", "error"]


@dataclass(frozen=True)
class Reply:
    """One decoded frame: a reading, an acknowledgement of a command, or an error reply.

    ``command`` names what the frame answers when the protocol says so (MT-SICS echoes it: ``"Z"``, ``"T"``…);
    ``ok`` is ``False`` for refusals (``Z I``, SCP-01 ``?``); ``code`` is the device's own token (``"ES"``).
    """

    kind: ReplyKind
    reading: Reading | None = None
    command: str = ""
    ok: bool = True
    code: str = ""
    text: str = ""
    raw: bytes = field(default=b"", repr=False)
