#!/usr/bin/env bash
# Installs what torchfits needs to build and test, when it is missing:
#   build: a C toolchain, pkg-config, cfitsio and wcslib (headers + pkg-config files), Rust (cargo)
#   test:  python3 with venv (the conformance check makes its own virtual environment), fitsverify,
#          Mesa's software Vulkan driver (lavapipe) and the Vulkan loader, for the wgpu kernel tests;
#          nginx, the HTTP server of the remote tests
# On Debian/Ubuntu it uses apt-get (as root, else through sudo); elsewhere it says what to install.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have cc || missing+=(build-essential)
have pkg-config || missing+=(pkg-config)
if ! have pkg-config || ! pkg-config --exists cfitsio; then missing+=(libcfitsio-dev); fi
if ! have pkg-config || ! pkg-config --exists wcslib; then missing+=(wcslib-dev); fi
if [ "$want_test" = 1 ]; then
  have python3 || missing+=(python3)
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
  have fitsverify || missing+=(fitsverify)
  if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then missing+=(mesa-vulkan-drivers); fi
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then missing+=(libvulkan1); fi
  # the remote tests serve files over HTTP with nginx (scripts/remote_servers.py)
  if ! have nginx && [ ! -x /usr/sbin/nginx ]; then missing+=(nginx); fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "torchfits setup: installing ${missing[*]}" >&2
  if have apt-get && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif have apt-get && have sudo; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    cat >&2 <<MSG
torchfits setup: these are missing and this system has no apt-get (or no root/sudo): ${missing[*]}
Install them with your package manager, then run this again:
  Debian/Ubuntu: sudo apt-get install build-essential pkg-config libcfitsio-dev wcslib-dev python3-venv fitsverify mesa-vulkan-drivers libvulkan1 nginx
  Homebrew:      brew install pkg-config cfitsio wcslib python
  conda:         conda install -c conda-forge compilers pkg-config cfitsio wcslib python
MSG
    exit 1
  fi
fi

if ! have cargo; then
  cat >&2 <<MSG
torchfits setup: Rust is missing. torchfits needs Rust 1.95 or newer (edition 2024); install it
with rustup (https://rustup.rs), then run this again. Debian's own cargo package is too old.
MSG
  exit 1
fi
