# Shared by scripts/demo and scripts/test: create or reuse .venv and install fastbp with the
# given extra. Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

pick_python() {
  for candidate in "${PYTHON:-}" python3 python; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "fastbp needs Python >= 3.10 (set PYTHON=/path/to/python3)" >&2
  return 1
}

ensure_venv() {  # $1: the extra to install (demo, test)
  local extra="$1" stamp=".venv/.installed-$1"
  if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing fastbp[$extra] into .venv (first run only)..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
    touch "$stamp"
  fi
}
