#!/usr/bin/env bash
# Set up everything jepa_agent needs on a fresh Debian machine, idempotently:
#   bash scripts/setup.sh            -> .venv/ with ROS 2 Kilted wheels, torch (CPU), MuJoCo, and jepa_agent (editable)
# System packages: EGL/GL libraries for MuJoCo's offscreen rendering (MUJOCO_GL=egl).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p | grep -q 'libEGL.so.1' || ! ldconfig -p | grep -q 'libOpenGL.so.0'; then
  echo "[setup] installing EGL/OpenGL libraries for offscreen MuJoCo rendering"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libegl1 libopengl0 libgl1 libegl-mesa0 libgles2 >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.jepa_agent_requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp" ; then
  echo "[setup] installing requirements (about a minute)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  cp requirements.txt "$stamp"
fi
.venv/bin/python -m pip install -q --no-deps -e .
echo "[setup] ready: .venv/bin/jepa-agent, .venv/bin/python -m pytest"
