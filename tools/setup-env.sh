# Sourced by the other scripts: create .venv (Python 3.11) and install the
# project with the extras given in MKDBOOK_EXTRAS, reinstalling only when
# pyproject.toml or tools/constraints.txt changed. pyproject.toml admits a
# range of torch releases; tools/constraints.txt pins the one used here.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python_bin" --version)"
  "$python_bin" -m venv .venv
fi
stamp=".venv/.mkdbook-$(cat pyproject.toml tools/constraints.txt | sha256sum | cut -c1-16)-${MKDBOOK_EXTRAS}"
if [ ! -f "$stamp" ]; then
  echo "installing mkdbook[${MKDBOOK_EXTRAS}] into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet --progress-bar off -c tools/constraints.txt -e ".[${MKDBOOK_EXTRAS}]"
  rm -f .venv/.mkdbook-*
  touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
