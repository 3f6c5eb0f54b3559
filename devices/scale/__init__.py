"""Serial weighing scales: wire protocols (Toledo 8217, MT-SICS, SCP-01), driver, stability detector and a
byte-exact pseudo-terminal simulator. Never imports ``agent``.
"""

from __future__ import annotations

from devices.scale.mtsics import MtSics
from devices.scale.protocol import FrameParser, ScaleProtocol, SerialSettings
from devices.scale.reading import Reading, Reply, to_kg
from devices.scale.scp01 import Scp01
from devices.scale.toledo8217 import Toledo8217

#: Protocol name (as in the config's ``protocol``) → protocol.
PROTOCOLS: dict[str, ScaleProtocol] = {p.name: p for p in (Toledo8217(), MtSics(), Scp01())}


def get_protocol(name: str) -> ScaleProtocol:
    """The protocol called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown scale protocol {name!r}: expected one of {', '.join(PROTOCOLS)}") from None


__all__ = ["PROTOCOLS", "FrameParser", "MtSics", "Reading", "Reply", "ScaleProtocol", "Scp01", "SerialSettings",
           "Toledo8217", "get_protocol", "to_kg"]
