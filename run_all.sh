#!/usr/bin/env bash
# cilf: the two set-up commands.
#   ./run_all.sh          main job: run every notebook (FAST mode) and regenerate figures/, offline
#   ./run_all.sh --full   the same with FAST=False (executed copies go to runs/notebooks-full/)
#   ./run_all.sh test     the whole test suite
# Both create the Python environment on first use (.venv, or $CILF_VENV) and reuse it afterwards;
# CILF_NO_INSTALL=1 uses $CILF_VENV as it is (nothing installed; bench-speed's whole-job timing on a clone).
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0
# this checkout's cilf first, also in the notebook kernels, whichever checkout the environment was installed from
export PYTHONPATH="$(pwd -P)${PYTHONPATH:+:$PYTHONPATH}"
VENV="${CILF_VENV:-.venv}"
PY="$VENV/bin/python"

ensure_env() {
  local stamp
  if [[ "${CILF_NO_INSTALL:-}" == 1 ]]; then
    [[ -x "$PY" ]] && return 0
    echo "error: CILF_NO_INSTALL=1 but $PY does not exist; set CILF_VENV to an existing environment, or unset CILF_NO_INSTALL" >&2
    exit 1
  fi
  # the editable install points at one checkout: another checkout reusing this environment re-installs
  stamp="$(cat pyproject.toml | sha256sum | cut -c1-16)-$(python3 -c 'import sys; print(sys.version_info[:2])' | tr -d ' ()' | tr , .)-$(pwd -P)"
  if [[ -x "$PY" && -f "$VENV/.cilf-stamp" && "$(cat "$VENV/.cilf-stamp")" == "$stamp" ]]; then
    return 0
  fi
  python3 -c 'import sys; assert sys.version_info >= (3, 11), "cilf needs Python >= 3.11"' \
    || { echo "error: python3 is $(python3 --version 2>&1); cilf needs Python >= 3.11" >&2; exit 1; }
  echo "== setting up the environment in $VENV (first run only) =="
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  # pip prints a warning for each missing local index folder on some machines; keep the log readable
  "$PY" -m pip install -q --upgrade pip 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  "$PY" -m pip install -q -e ".[notebooks,test,peers,align]" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cilf)" >/dev/null
  echo "$stamp" > "$VENV/.cilf-stamp"
}

run_tests() {
  shift || true
  # the toolbox first: lint and format (pyproject.toml [tool.ruff]); the layers are checked by tests/test_architecture.py
  "$PY" -m ruff check cilf tests tools notebooks/*.py
  "$PY" -m ruff format --check cilf tests tools notebooks/*.py
  local nbs=()
  shopt -s nullglob
  for nb in notebooks/[0-9]*.ipynb; do nbs+=("$nb"); done
  if ((${#nbs[@]})); then
    "$PY" -m pytest tests --nbval "${nbs[@]}" --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg "$@"
  else
    "$PY" -m pytest tests "$@"
  fi
}

main_job() {
  # every numbered notebook, in order: sync inputs from the .py, execute with papermill, write figures/
  if [[ "${1:-}" == "--full" ]]; then "$PY" -m tools.run_notebooks run --full; else "$PY" -m tools.run_notebooks run; fi
}

case "${1:-}" in
  test) ensure_env; run_tests "$@" ;;
  ""|--full) ensure_env; main_job "${1:-}" ;;
  -h|--help) sed -n '2,6p' "$0" ;;
  *) echo "usage: ./run_all.sh [--full | test [pytest args]]" >&2; exit 2 ;;
esac
