#!/usr/bin/env bash
# Installs graft's build and test dependencies from Debian's archive (as root).
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libboost-context-dev
  libeigen3-dev libstb-dev zlib1g-dev libturbojpeg0-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libopenmpi-dev openmpi-bin
  python3 python3-numpy python3-torch python3-torchvision
  dataset-fashion-mnist
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
