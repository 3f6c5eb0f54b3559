#!/usr/bin/env bash
# Set up a fresh machine for Store Edge Agent: mosquitto (Debian package) and a virtualenv with the agent.
# Idempotent; safe to run again. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    echo "mosquitto is missing and this user cannot install it; ask for: apt-get install mosquitto" >&2
  else
    echo "installing mosquitto (Debian package)…" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
  fi
fi

# Fonts for shelf labels (devices/esl/fonts.py): DejaVu for Latin, WenQuanYi Micro Hei for CJK.
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" = none ]; then
    echo "fonts-wqy-microhei is missing (CJK on shelf labels); ask for: apt-get install fonts-wqy-microhei" >&2
  else
    echo "installing fonts-wqy-microhei and fonts-dejavu-core (Debian packages)…" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-wqy-microhei fonts-dejavu-core >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip_install() {  # quiet on success, the whole log on failure
  if ! .venv/bin/python -m pip install -q "$@" > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "pip install $* failed" >&2
    exit 1
  fi
}
pip_install --upgrade pip
pip_install -e ".[test,eval]"
# trackeval (HOTA) and trackers (the library ByteTrack we compare against) declare opencv-python; the parts we
# use need only numpy/scipy/supervision, so they go in without their declared dependencies, pinned.
pip_install --no-deps "trackeval==1.3.0" "trackers==2.6.1"
.venv/bin/python -c "import agent, sync, paho.mqtt, cv2, onnxruntime" # fail loudly if the install did not work
