"""Find label fonts by path, with fallbacks and a clear error (no fontconfig needed).

Font names used by templates: ``sans``, ``sans-bold``, ``mono`` (DejaVu, Debian ``fonts-dejavu-core``) and
``cjk`` (WenQuanYi Micro Hei, ``fonts-wqy-microhei``). Text with CJK characters is drawn with ``cjk`` whatever
the template asks, since DejaVu has no Han glyphs. ``$STORE_AGENT_FONT_DIR`` is searched first.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

FONT_DIR_ENV = "STORE_AGENT_FONT_DIR"
_SYSTEM_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/wqy", "/usr/share/fonts/truetype",
                "/usr/share/fonts/opentype", "/usr/local/share/fonts", "/System/Library/Fonts", "/Library/Fonts")
#: Candidate files per font name, best first; the first one found wins.
FONT_FILES: dict[str, tuple[str, ...]] = {
    "sans": ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf"),
    "sans-bold": ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf"),
    "mono": ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf"),
    "cjk": ("wqy-microhei.ttc", "wqy-zenhei.ttc", "NotoSansCJK-Regular.ttc", "NotoSansSC-Regular.otf",
            "PingFang.ttc"),
}
_PACKAGES = {"sans": "fonts-dejavu-core", "sans-bold": "fonts-dejavu-core", "mono": "fonts-dejavu-core",
             "cjk": "fonts-wqy-microhei"}


class FontError(RuntimeError):
    """A font the template needs is not installed."""


def _search_dirs() -> list[Path]:
    extra = os.environ.get(FONT_DIR_ENV, "").strip()
    return ([Path(extra)] if extra else []) + [Path(d) for d in _SYSTEM_DIRS]


@lru_cache(maxsize=None)
def font_path(name: str) -> Path:
    """The file of font ``name``; ``FontError`` says what was searched and which package to install."""
    if name not in FONT_FILES:
        raise FontError(f"unknown font {name!r}; known: {', '.join(FONT_FILES)}")
    dirs = _search_dirs()
    for filename in FONT_FILES[name]:
        for d in dirs:
            candidate = d / filename
            if candidate.is_file():
                return candidate
    raise FontError(f"font {name!r} not found (looked for {', '.join(FONT_FILES[name])} in "
                    f"{', '.join(str(d) for d in dirs)}); install it: apt-get install {_PACKAGES[name]}, "
                    f"or put the file in ${FONT_DIR_ENV}")


@lru_cache(maxsize=512)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A loaded font at ``size`` px (cached per process)."""
    # BASIC layout: no HarfBuzz shaping (not needed for Latin/CJK price labels), several times faster.
    return ImageFont.truetype(str(font_path(name)), size, layout_engine=ImageFont.Layout.BASIC)


def needs_cjk(text: str) -> bool:
    """Whether ``text`` has characters DejaVu lacks (CJK ideographs, kana, hangul, full-width forms)."""
    return any(ord(ch) >= 0x2E80 for ch in text)


def font_for(name: str, size: int, text: str) -> ImageFont.FreeTypeFont:
    """Font ``name`` at ``size``, switched to ``cjk`` when the text needs it."""
    return font("cjk" if needs_cjk(text) and name != "cjk" else name, size)
