# Sourced by the tools/ scripts: make .venv with lagwatch and its dev tools installed.
# Reinstalls only when pyproject.toml changes.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_py="${PYTHON:-python3}"
if ! "$_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "lagwatch: Python 3.11 or newer is required (tried '$_py'; set PYTHON=...)" >&2
  exit 3
fi
if [ ! -x "$_root/.venv/bin/python" ]; then
  echo "lagwatch: creating $_root/.venv ..." >&2
  "$_py" -m venv "$_root/.venv"
fi
_stamp="$_root/.venv/.lagwatch-installed"
_want="$(sha256sum "$_root/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "lagwatch: installing lagwatch and its dependencies into .venv ..." >&2
  _log="$_root/.venv/pip-install.log"
  if ! { "$_root/.venv/bin/python" -m pip install --upgrade pip &&
         "$_root/.venv/bin/python" -m pip install -e "$_root[dev]"; } >"$_log" 2>&1; then
    tail -n 20 "$_log" >&2
    echo "lagwatch: installing dependencies failed; full log: $_log" >&2
    exit 3
  fi
  echo "$_want" > "$_stamp"
fi
