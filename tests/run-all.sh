#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs what the
# tests need (php-fpm, flup, a C compiler) when it is missing, then runs the
# lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
if ! compgen -G "/usr/sbin/php-fpm*" >/dev/null && ! command -v php-fpm >/dev/null; then
  apt_packages+=(php-fpm)
fi
command -v cc >/dev/null || apt_packages+=(gcc)
command -v curl >/dev/null || apt_packages+=(curl)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "installing: ${apt_packages[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
if ! python3 -c 'import flup' 2>/dev/null; then
  echo "installing: flup (PyPI)"
  python3 -m pip install --quiet flup || python3 -m pip install --quiet --break-system-packages flup
fi

cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets
