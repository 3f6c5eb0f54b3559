"""Sample media the demo and the benchmarks run on: pinned like models (upstream URL + sha256), installed
with :func:`models.registry.install` from the URL or from a mirror directory laid out as ``videos/<file>``."""

from __future__ import annotations

from models.spec import ModelSpec

_INTEL = "intel-iot-devkit/sample-videos@57978890822836f2b4743852f04f62fc511757e4"
_ATTRIBUTION = ("Sample video by Intel Corporation, from github.com/intel-iot-devkit/sample-videos, "
                "licensed CC BY 4.0.")


def _video(name: str, filename: str, sha256: str, size: int) -> ModelSpec:
    return ModelSpec(
        name=name, task="sample_media", relpath=f"videos/{filename}",
        url=f"https://github.com/intel-iot-devkit/sample-videos/raw/57978890822836f2b4743852f04f62fc511757e4/"
            f"preview/{filename}",
        sha256=sha256, size=size, licence="CC-BY-4.0", licence_caveat=_ATTRIBUTION, input_size=(480, 270),
        preprocessing="animated GIF; per-frame durations from the file", decoder="none", runtime="none",
        source=f"{_INTEL}:preview/{filename}")


#: The demo camera's default footage: one worker walking across a warehouse floor (71 frames, 4.7 s).
SAMPLES: dict[str, ModelSpec] = {
    "worker-zone-video": _video("worker-zone-video", "worker-zone-detection.gif",
                                "258a1df000dfdb488f2992ecc02ed262e7ecf03f638c3f5d1736b26718783447", 3285006),
}
