"""Byte-exact scale simulator on a pseudo-terminal (for tests, the demo and ``store-agent scale simulate``)."""

from devices.scale.sim.devices import ScaleState, make_responder
from devices.scale.sim.pty_sim import Faults, ScaleSimulator
from devices.scale.sim.script import Step, WeightScript

__all__ = ["Faults", "ScaleSimulator", "ScaleState", "Step", "WeightScript", "make_responder"]
