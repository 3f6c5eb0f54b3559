"""What a label should show: a cheap content key from the price book, then the rendered image only when the
key changes (rendering costs milliseconds; the key costs microseconds, so a timer can re-evaluate every label).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from PIL import Image

from agent.pricebook.article import Article

#: render(article, label_type, template, at_ts) -> (content hash, image in the label's palette)
Renderer = Callable[[Article, str, "str | None", float], tuple[str, Image.Image]]


def content_key(article: Article, label_type: str, template: str | None, at_ts: float) -> str:
    """Identity of what the label must show at ``at_ts``: the article's fields, whether its promo runs, the
    label type and the template. Equal keys render to equal images."""
    data = article.to_dict()
    data.pop("version", None)
    payload = json.dumps([data, article.promo_active(at_ts), label_type, template], sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()


def article_payload(article: Article, at_ts: float) -> dict[str, Any]:
    """Article data for vendor backends that render on their side (price = the one in force)."""
    data = article.to_dict()
    data.pop("version", None)
    data["price_now"] = article.price_at(at_ts)
    data["promo_active"] = article.promo_active(at_ts)
    return data


def default_renderer() -> Renderer:
    """The product renderer (:func:`devices.esl.render.render_label`) adapted to :data:`Renderer`."""
    from devices.esl.model import label_type as find_label_type
    from devices.esl.render import render_label
    from devices.esl.templates import load_template

    def render(article: Article, label_type: str, template: str | None, at_ts: float) -> tuple[str, Image.Image]:
        lt = find_label_type(label_type)
        rendered = render_label(article, lt, load_template(template or lt.default_template, lt), at_ts)
        return rendered.hash, rendered.image

    return render


class ImageCache:
    """A small LRU of rendered images by content hash (pushes right after rendering hit it; a restart or an
    evicted entry re-renders)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[str, Image.Image] = OrderedDict()

    def get(self, key: str) -> Image.Image | None:
        image = self._items.get(key)
        if image is not None:
            self._items.move_to_end(key)
        return image

    def put(self, key: str, image: Image.Image) -> None:
        self._items[key] = image
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
