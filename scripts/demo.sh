#!/usr/bin/env bash
# README command 1: set everything up, then run the agent's main job on its built-in default.
# Extra arguments go to `store-agent demo` (e.g. --duration 30 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/store-agent demo "$@"
