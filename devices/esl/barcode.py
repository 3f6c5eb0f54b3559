"""EAN-13: encode to the 95 modules, draw crisp bars on a palette image, and decode modules back (tests).

Pure functions, no dependency. Bars are drawn with an integer module width so every edge falls on a pixel:
no grey, nothing for the panel to dither.

Example::

    modules = ean13_modules("4006381333931")   # "101" + 42 + "01010" + 42 + "101", 95 characters
    decode_ean13(modules)                        # "4006381333931"
"""

from __future__ import annotations

from PIL import ImageDraw

_L = ("0001101", "0011001", "0010011", "0111101", "0100011", "0110001", "0101111", "0111011", "0110111", "0001011")
_R = tuple("".join("1" if b == "0" else "0" for b in code) for code in _L)
_G = tuple(code[::-1] for code in _R)
#: Parity of the six left digits (L = odd, G = even) selected by the first digit.
_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG", "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")
START, MIDDLE, END = "101", "01010", "101"
MODULES = 95
QUIET_LEFT, QUIET_RIGHT = 11, 7  # quiet zones in modules (GS1)


class BarcodeError(ValueError):
    """Not a valid EAN-13 (wrong length, not digits, bad check digit, unreadable modules)."""


def check_digit(digits12: str) -> int:
    """EAN-13 check digit of the first 12 digits."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits12))
    return (10 - total % 10) % 10


def normalize(code: str) -> str:
    """13 digits with a correct check digit (12 digits get theirs appended)."""
    if not code.isascii() or not code.isdigit() or len(code) not in (12, 13):
        raise BarcodeError(f"EAN-13 needs 12 or 13 digits, got {code!r}")
    if len(code) == 12:
        return code + str(check_digit(code))
    if int(code[12]) != check_digit(code[:12]):
        raise BarcodeError(f"bad EAN-13 check digit in {code}: expected {check_digit(code[:12])}")
    return code


def ean13_modules(code: str) -> str:
    """The 95 modules of ``code`` as a string of ``1`` (bar) and ``0`` (space)."""
    code = normalize(code)
    parity = _PARITY[int(code[0])]
    left = "".join((_L if p == "L" else _G)[int(d)] for p, d in zip(parity, code[1:7]))
    right = "".join(_R[int(d)] for d in code[7:13])
    return START + left + MIDDLE + right + END


def decode_ean13(modules: str) -> str:
    """Digits of 95 modules (inverse of :func:`ean13_modules`); ``BarcodeError`` if guards/codes/check fail."""
    if len(modules) != MODULES:
        raise BarcodeError(f"expected {MODULES} modules, got {len(modules)}")
    if modules[:3] != START or modules[45:50] != MIDDLE or modules[92:] != END:
        raise BarcodeError("guard patterns not found")
    parity, digits = "", ""
    for i in range(6):
        chunk = modules[3 + 7 * i: 10 + 7 * i]
        if chunk in _L:
            parity, digits = parity + "L", digits + str(_L.index(chunk))
        elif chunk in _G:
            parity, digits = parity + "G", digits + str(_G.index(chunk))
        else:
            raise BarcodeError(f"left digit {i + 1} unreadable: {chunk}")
    for i in range(6):
        chunk = modules[50 + 7 * i: 57 + 7 * i]
        if chunk not in _R:
            raise BarcodeError(f"right digit {i + 1} unreadable: {chunk}")
        digits += str(_R.index(chunk))
    if parity not in _PARITY:
        raise BarcodeError(f"parity pattern {parity} is not EAN-13")
    return normalize(str(_PARITY.index(parity)) + digits)


def modules_from_row(dark: list[bool]) -> str:
    """Sample a scan line (True = dark pixel) into 95 modules: the span from the first to the last bar is
    95 modules wide (both ends are bars), each module read at its centre."""
    first = next((i for i, d in enumerate(dark) if d), None)
    last = next((i for i in range(len(dark) - 1, -1, -1) if dark[i]), None)
    if first is None or last is None or last - first + 1 < MODULES:
        raise BarcodeError("no barcode on this row")
    width = (last - first + 1) / MODULES
    return "".join("1" if dark[int(first + (k + 0.5) * width)] else "0" for k in range(MODULES))


def module_width(box_width: int) -> int:
    """The largest integer module width (px) that fits ``box_width`` with quiet zones; 0 if none does."""
    return box_width // (MODULES + QUIET_LEFT + QUIET_RIGHT)


def draw_ean13(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], code: str, color: int,
               digits_font: object | None = None) -> tuple[int, int]:
    """Draw ``code`` centred in ``box`` (x, y, w, h) with colour index ``color``; returns (x0, module px).

    With ``digits_font`` the human-readable digits go under the bars and the guard bars run longer.
    """
    x, y, w, h = box
    m = module_width(w)
    if m < 1:
        raise BarcodeError(f"a box {w} px wide cannot hold an EAN-13 (needs {MODULES + QUIET_LEFT + QUIET_RIGHT})")
    modules = ean13_modules(code)
    digits = normalize(code)
    text_h = 0
    if digits_font is not None:
        text_h = int(digits_font.getbbox("0")[3]) + 1
    bars_h = h - text_h
    x0 = x + (w - MODULES * m) // 2
    guards = {*range(0, 3), *range(45, 50), *range(92, 95)}
    for k, bit in enumerate(modules):
        if bit == "1":
            bottom = y + (h - 1 if (k in guards and text_h) else bars_h - 1)
            draw.rectangle((x0 + k * m, y, x0 + (k + 1) * m - 1, bottom), fill=color)
    if digits_font is not None:
        ty = y + bars_h
        draw.text((x0 - QUIET_LEFT * m + m, ty), digits[0], font=digits_font, fill=color)
        for start, group in ((3, digits[1:7]), (50, digits[7:])):
            gx = x0 + start * m
            gw = 42 * m
            tw = digits_font.getlength(group)
            draw.text((gx + (gw - tw) / 2, ty), group, font=digits_font, fill=color)
    return x0, m
