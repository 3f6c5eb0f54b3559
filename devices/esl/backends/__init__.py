"""Shelf-label gateway backends. The interface is :class:`~devices.esl.backends.base.GatewayBackend`; a new
vendor is one module plus one line in :data:`BACKENDS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from devices.esl.backends.base import GatewayBackend


def _openepaperlink(url: str, **kw: Any) -> GatewayBackend:
    from devices.esl.backends.openepaperlink import OpenEPaperLinkBackend

    return OpenEPaperLinkBackend(url, **kw)


def _vendor_rest(url: str, **kw: Any) -> GatewayBackend:
    from devices.esl.backends.vendor_rest import VendorRestBackend

    return VendorRestBackend(url, **kw)


#: backend name (``[[esl_gateways]] backend``) → factory(url, **options)
BACKENDS: dict[str, Callable[..., GatewayBackend]] = {
    "openepaperlink": _openepaperlink,
    "vendor-rest": _vendor_rest,
}


def build_backend(name: str, url: str, **kw: Any) -> GatewayBackend:
    """The backend ``name`` for the gateway at ``url`` (raises ``ValueError`` for an unknown name)."""
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown ESL backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return factory(url, **kw)
