#!/usr/bin/env bash
# Installs what trustee needs on Debian 12 (idempotent; needs root or sudo).
#   scripts/install-deps.sh            build + run dependencies (Debian packages only)
#   scripts/install-deps.sh --tests    + the test-time references: Debian's python3-torch (the
#                                      eager PyTorch peer, safetensors checks), python3-msgpack
#                                      (msgpack cross-check), clang + libclang-rt-14-dev (libFuzzer
#                                      targets of comm/msg), slurm-wlm + munge (the one-node
#                                      Slurm of tests/slurm.sh, slurm/local-slurm.sh) and a Python venv
#                                      (.venv) with HF tokenizers, numpy, jinja2 from PyPI
#   scripts/install-deps.sh --bench    the same as --tests (the benchmarks use the same peers)
# The product itself never needs Python; the venv only feeds differential tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_tests=0
for a in "$@"; do
  case "$a" in
    --tests) want_tests=1 ;;
    --bench) want_tests=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$a' (expected --tests or --bench)" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

pkgs=(build-essential cmake pkg-config
      libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libmsgpack-dev
      libopenblas-dev libutf8proc-dev libonig-dev libjansson-dev liblua5.4-dev
      python3 python3-h5py python3-numpy python3-matplotlib python3-venv)
[ "$want_tests" = 1 ] && pkgs+=(python3-torch python3-msgpack clang libclang-rt-14-dev slurm-wlm munge)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: Debian packages already present"
fi

if [ "$want_tests" = 1 ]; then
  venv="$here/.venv"
  if ! "$venv/bin/python" -c 'import tokenizers, numpy, jinja2' 2>/dev/null; then
    echo "install-deps: creating $venv with tokenizers + numpy + jinja2 (PyPI)"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'tokenizers==0.23.3' 'numpy' 'jinja2'
  else
    echo "install-deps: $venv already has tokenizers + numpy"
  fi
fi
