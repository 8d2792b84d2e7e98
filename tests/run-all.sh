#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs what the
# tests need (php-fpm, php-cgi, flup, a C compiler, Chromium, playwright-core)
# when it is missing, then runs the lints, every Rust test and the browser
# tests of the demo site.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
# php-fpm: the demo site's PHP backend and tests/fastcgi_php.rs; php-cgi: the
# demo's fallback when php-fpm is missing (tested too).
if ! compgen -G "/usr/sbin/php-fpm*" >/dev/null && ! command -v php-fpm >/dev/null; then
  apt_packages+=(php-fpm)
fi
command -v php-cgi >/dev/null || apt_packages+=(php-cgi)
command -v cc >/dev/null || apt_packages+=(gcc)
command -v curl >/dev/null || apt_packages+=(curl)
# The browser tests drive Debian's Chromium (never a downloaded browser).
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
command -v chromedriver >/dev/null || apt_packages+=(chromium-driver)
command -v npm >/dev/null || apt_packages+=(nodejs npm)
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

# The demo site in a real browser: the debug binary cargo test just built,
# serving a temporary copy of htdocs/, cgi-bin/, apps/ and conf/gatehouse.yaml.
# Screenshots go to tests/browser/artifacts/.
cargo build --quiet
cd tests/browser
npm ci --no-audit --no-fund --loglevel=error
node --test --test-concurrency=1
