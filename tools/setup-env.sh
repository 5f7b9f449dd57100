# Sourced by the other scripts: create .venv (Python 3.11) and install into it
# every release of tools/requirements.lock, checking each file's hash, then
# the project itself (editable); again only when pyproject.toml or the lock
# file changed. The lock file (written by tools/lock) holds the package's
# dependencies and all its extras. Its torch is PyTorch's CPU build, which
# pip finds on PyTorch's CPU index: the book's workflow sets
# PIP_EXTRA_INDEX_URL to it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null || python_bin=python3
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python_bin" --version)"
  "$python_bin" -m venv .venv
fi
stamp=".venv/.mkdbook-$(cat pyproject.toml tools/requirements.lock | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing tools/requirements.lock and mkdbook into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  if ! .venv/bin/python -m pip install --quiet --progress-bar off --require-hashes --no-deps \
      -r tools/requirements.lock; then
    echo "tools/setup-env.sh: error: pip could not install tools/requirements.lock" \
         "(its torch comes from PyTorch's CPU index:" \
         "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)" >&2
    return 1 2>/dev/null || exit 1
  fi
  .venv/bin/python -m pip install --quiet --progress-bar off --no-deps -e .
  rm -f .venv/.mkdbook-*
  touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
