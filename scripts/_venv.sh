# Shared by scripts/run and scripts/test: create .venv with Python >= 3.11 and install
# the project (editable) with the given extras, skipping pip when nothing changed.
set -euo pipefail

koe_find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Koe needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

koe_venv() {
  local extras="$1"
  local python
  if [ ! -x .venv/bin/python ]; then
    python=$(koe_find_python)
    echo "==> creating .venv with $("$python" --version)"
    "$python" -m venv .venv
  fi
  local stamp=".venv/.koe-installed-$extras"
  local digest
  # The editable install maps each package under platform/ by name: a new package
  # there needs a reinstall as much as a changed pyproject.toml does.
  digest=$( (cat pyproject.toml requirements/no-deps.txt; ls -d platform/*/) | .venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "==> installing Koe${extras:+ [$extras]} into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    .venv/bin/python -m pip install --quiet --no-deps -r requirements/no-deps.txt
    echo "$digest" > "$stamp"
  fi
}
