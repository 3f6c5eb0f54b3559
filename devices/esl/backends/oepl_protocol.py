"""Pure helpers of the OpenEPaperLink AP web protocol, shared by the backend and the simulator.

- MACs: 16 upper-case hex digits (12-digit input is widened with ``0000`` in front, as the AP does).
- Image hash: the AP reports ``hash`` as 32 hex digits of which the first 16 are an MD5 prefix of the
  tag's image buffer and the rest zeros. Our buffer is the image quantised to white/black/red/yellow and packed
  as two bit planes (black plane, colour plane) — the 2-bpp layout of the AP's raw format. A real AP hashes its
  own (possibly compressed) buffer, which may differ: the agent then confirms by ``updatecount``.
- LED: ``GET /led_flash?mac=&pattern=`` takes 12 bytes as 24 hex digits: byte 0 = mode (low nibble, 1 = flash)
  | flash on-time (high nibble); then three phases of (RGB332 colour, count | speed << 4, delay); byte 10 =
  repeats. We read speed and delay in units of 100 ms (our interpretation; the firmware's exact timing is not
  documented), so a pattern has a duration the simulator can honour.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
from PIL import Image

SLEEP_SENTINEL = 3216153600
_MAC_RE = re.compile(r"^[0-9A-Fa-f]{12}([0-9A-Fa-f]{4})?$")
#: The quantisation palette of the hash buffer (index order = pixel value: white, black, red, yellow).
HASH_PALETTE = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [255, 255, 0]], dtype=np.int32)

# Nearest-colour quantisation in PIL's C code; padded with yellow so no padding entry duplicates black.
_HASH_PALETTE_IMAGE = Image.new("P", (1, 1))
_HASH_PALETTE_IMAGE.putpalette([int(c) for rgb in HASH_PALETTE for c in rgb] + [255, 255, 0] * 252)

#: Named LED colours in RGB332 (3 bits red, 3 green, 2 blue).
LED_RGB332: dict[str, int] = {"red": 0xE0, "green": 0x1C, "blue": 0x03, "yellow": 0xFC, "cyan": 0x1F,
                              "magenta": 0xE3, "white": 0xFF}
#: pattern → (count, speed, delay) of phase 1 (phases 2 and 3 are unused).
LED_SHAPES: dict[str, tuple[int, int, int]] = {"blink": (1, 5, 5), "fast": (3, 2, 4), "double": (2, 2, 10)}
LED_UNIT_S = 0.1


def normalise_mac(mac: str) -> str:
    """The AP's 16-digit upper-case form of ``mac`` (raises ``ValueError`` for anything else)."""
    mac = mac.strip().replace(":", "")
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"invalid label MAC {mac!r}: expected 12 or 16 hex digits")
    mac = mac.upper()
    return mac if len(mac) == 16 else "0000" + mac


def image_buffer_hash(image: Image.Image) -> str:
    """The AP-style hash of an image: MD5 prefix of its 2-bpp plane buffer, padded to 32 hex digits."""
    index = np.asarray(image.convert("RGB").quantize(palette=_HASH_PALETTE_IMAGE, dither=Image.Dither.NONE))
    black = np.packbits((index == 1).ravel())
    colour = np.packbits((index >= 2).ravel())
    digest = hashlib.md5(np.array(image.size, dtype="<u2").tobytes() + black.tobytes() + colour.tobytes())
    return digest.hexdigest()[:16] + "0" * 16


def jpeg_bytes(image: Image.Image) -> bytes:
    """What ``/imgupload`` takes: a baseline RGB JPEG, quality 100 and no chroma subsampling so palette
    colours survive and quantise back to themselves."""
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=100, subsampling=0)
    return out.getvalue()


def encode_led_pattern(colour: str, pattern: str, duration_s: float) -> str:
    """24 hex digits for ``/led_flash``: ``pattern`` in ``colour`` repeated for about ``duration_s``."""
    count, speed, delay = LED_SHAPES[pattern]
    cycle_s = (count * speed + delay) * LED_UNIT_S
    repeats = max(1, min(255, round(duration_s / cycle_s)))
    data = bytes([0x21, LED_RGB332[colour], count | speed << 4, delay, 0, 0, 0, 0, 0, 0, repeats, 0])
    return data.hex().upper()


def decode_led_pattern(hex_pattern: str) -> dict[str, object] | None:
    """``{"colour", "pattern", "duration_s"}`` of a pattern (None = mode 0, i.e. stop). Raises ``ValueError``."""
    data = bytes.fromhex(hex_pattern)
    if len(data) != 12:
        raise ValueError("an LED pattern is 12 bytes (24 hex digits)")
    if data[0] & 0x0F == 0:
        return None
    rgb = data[1]
    colour = min(LED_RGB332, key=lambda name: _rgb332_distance(LED_RGB332[name], rgb))
    cycle_units = 0
    for phase in range(3):
        c, cs, delay = data[1 + 3 * phase], data[2 + 3 * phase], data[3 + 3 * phase]
        if c or cs:
            cycle_units += (cs & 0x0F) * (cs >> 4) + delay
    count, speed, delay = data[2] & 0x0F, data[2] >> 4, data[3]
    shape = next((name for name, s in LED_SHAPES.items() if s == (count, speed, delay)), "custom")
    return {"colour": colour, "pattern": shape, "duration_s": round(cycle_units * LED_UNIT_S * data[10], 2)}


def _rgb332_distance(a: int, b: int) -> int:
    return sum((((a >> s) & m) - ((b >> s) & m)) ** 2 for s, m in ((5, 7), (2, 7), (0, 3)))
