"""Store Edge Agent: the per-store edge daemon (config, CLI, supervisor, local store, pipelines)."""

import os as _os

__version__ = "0.1.0"

# OpenCV's FFmpeg backend prints every failed reconnect of a camera to stderr; the agent logs its own
# structured line instead. Set before anything imports cv2; an operator's own setting wins.
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
