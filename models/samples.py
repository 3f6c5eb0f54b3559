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
    #: Face identity demo and benchmark: a woman and a man seated facing the camera, turning their heads (56 frames,
    #: 4.7 s; faces 55-85 px).
    "faces-video": _video("faces-video", "head-pose-face-detection-female-and-male.gif",
                          "f51c743e43848014811ad5f3daddc417754cdeb55a16d46002e0d2ccd4541b0f", 2258640),
    #: Two people walking towards the camera down a corridor (35 frames, 2.9 s; faces only 12-28 px).
    "faces-walking-video": _video("faces-walking-video", "face-demographics-walking.gif",
                                  "d85689169bdf1735b75c31b5cdf985f25a3fa92a6448e25f529f655002f22b3c", 1222837),
}
