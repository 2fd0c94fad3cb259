#!/usr/bin/env bash
# One entry point that sets everything up first (a .venv with the CPU build of torch and
# this project), then runs:
#   bash run.sh               train on the built-in synthetic data (about a minute)
#   bash run.sh train ARGS    gcsan-pyg train ARGS (e.g. ../shared/data/diginetica)
#   bash run.sh test          the test suite
#   bash run.sh gcsan-pyg ... any gcsan-pyg command
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import gcsan_pyg, pytest, hypothesis, matplotlib" 2>/dev/null; then
    python -m pip install --quiet --upgrade pip
    # The CPU wheel first, so that nothing pulls a multi-GB CUDA build of torch.
    python -m pip install --quiet torch==2.13.0
    python -m pip install --quiet -e ".[test,bench]"
fi

command="${1:-train}"
[ $# -gt 0 ] && shift
case "$command" in
    test) exec python -m pytest -q "$@" ;;
    train) exec gcsan-pyg train "$@" ;;
    gcsan-pyg) exec gcsan-pyg "$@" ;;
    *) echo "usage: bash run.sh [train ARGS | test | gcsan-pyg ARGS]" >&2; exit 2 ;;
esac
