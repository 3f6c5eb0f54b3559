"""Shelf-label data model: hardware types and palettes, labels on shelves, label ↔ article links.

No agent imports: the gateway backends, the simulator and the renderer share these plain dataclasses.
OpenEPaperLink ``hwType`` ids are the AP's tag-type numbers (its ``tagtypes/XX.json`` files); a type the AP
does not know has ``hw_type = None`` and is served by a vendor backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Palettes in the order of the panel's colour table (index 0 = white, 1 = black, 2 = the accent colour).
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "bw": ((255, 255, 255), (0, 0, 0)),
    "bwr": ((255, 255, 255), (0, 0, 0), (255, 0, 0)),
    "bwy": ((255, 255, 255), (0, 0, 0), (255, 255, 0)),
}
COLOR_NAMES: dict[str, tuple[str, ...]] = {"bw": ("white", "black"), "bwr": ("white", "black", "red"),
                                           "bwy": ("white", "black", "yellow")}
_MAC_RE = re.compile(r"^[0-9A-F]{12}([0-9A-F]{4})?$")


@dataclass(frozen=True, slots=True)
class LabelType:
    """A label hardware type: panel size in pixels (landscape as rendered), palette, AP type id."""

    name: str
    width: int
    height: int
    colors: str  # key of PALETTES
    diagonal_in: float
    hw_type: int | None = None
    default_template: str = "standard"

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        """RGB colours, index = panel colour number."""
        return PALETTES[self.colors]

    @property
    def accent(self) -> int:
        """Palette index of the highlight colour (red/yellow), or black on a two-colour panel."""
        return 2 if len(self.palette) > 2 else 1

    @property
    def accent_is_light(self) -> bool:
        """Yellow cannot carry text on white: it is used as a highlight behind black text instead."""
        return self.colors == "bwy"

    def color_index(self, name: str) -> int:
        """Palette index of ``white|black|accent|red|yellow|on_accent`` (red/yellow fall back to the accent,
        then black; ``on_accent`` is the colour that reads on an accent background)."""
        if name == "white":
            return 0
        if name == "black":
            return 1
        if name in ("accent", "red", "yellow"):
            return self.accent
        if name == "on_accent":
            return 1 if self.accent_is_light else 0
        raise ValueError(f"unknown colour {name!r}; use white, black, accent, red, yellow or on_accent")


LABEL_TYPES: dict[str, LabelType] = {t.name: t for t in (
    LabelType("154bwr", 152, 152, "bwr", 1.54, hw_type=0x00, default_template="compact"),
    LabelType("29bwr", 296, 128, "bwr", 2.9, hw_type=0x01),
    LabelType("29bw", 296, 128, "bw", 2.9),
    LabelType("29bwy", 296, 128, "bwy", 2.9),
    LabelType("42bwr", 400, 300, "bwr", 4.2, hw_type=0x02, default_template="large"),
)}
HW_TYPES: dict[int, LabelType] = {t.hw_type: t for t in LABEL_TYPES.values() if t.hw_type is not None}


def label_type(name: str) -> LabelType:
    """The label type ``name``; ``KeyError`` lists the known ones."""
    try:
        return LABEL_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown label type {name!r}; known: {', '.join(LABEL_TYPES)}") from None


def normalize_mac(mac: str) -> str:
    """A label id as the AP writes it: 12 or 16 upper-case hex digits, separators removed."""
    cleaned = re.sub(r"[:\-\s]", "", str(mac)).upper()
    if not _MAC_RE.match(cleaned):
        raise ValueError(f"label id {mac!r} is not a MAC of 12 or 16 hex digits")
    return cleaned


@dataclass(frozen=True, slots=True)
class Position:
    """Where a label hangs: aisle / shelf (from the floor, 1-based) / slot (from the left, 1-based)."""

    aisle: str
    shelf: int = 1
    slot: int = 1

    def text(self) -> str:
        """Human form for staff: ``aisle 4, shelf 2, slot 7``."""
        return f"aisle {self.aisle}, shelf {self.shelf}, slot {self.slot}"


@dataclass(frozen=True, slots=True)
class Label:
    """One physical label. ``fridge_group`` names the cooler whose temperature its sensor reports."""

    mac: str
    type: str  # key of LABEL_TYPES
    position: Position | None = None
    fridge_group: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", normalize_mac(self.mac))
        if self.type not in LABEL_TYPES:
            raise ValueError(f"label {self.mac}: unknown label type {self.type!r}; known: {', '.join(LABEL_TYPES)}")

    @property
    def label_type(self) -> LabelType:
        return LABEL_TYPES[self.type]


@dataclass(frozen=True, slots=True)
class Link:
    """Label ↔ article: what the label shows, with which template (None = the type's default)."""

    mac: str
    plu: str
    template: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", normalize_mac(self.mac))


@dataclass(slots=True)
class Planogram:
    """Labels and links of a store, with look-ups both ways (in memory; the agent persists them)."""

    labels: dict[str, Label] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)  # by mac

    def add(self, label: Label, plu: str | None = None, template: str | None = None) -> None:
        self.labels[label.mac] = label
        if plu is not None:
            self.links[label.mac] = Link(label.mac, plu, template)

    def labels_of(self, plu: str) -> list[Label]:
        """Every label showing ``plu`` (an article may hang in several places)."""
        return [self.labels[m] for m, link in self.links.items() if link.plu == plu and m in self.labels]
