#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test of the built book (tests/test_book_html.py),
# where that is possible (root with apt-get). Elsewhere it says so; the test then skips, except
# in CI (CI=true), where it fails.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "== env: installing chromium (Debian package) for the browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null \
    || echo "== env: could not install chromium; the browser test will skip (and fail in CI)"
else
  echo "== env: chromium not found and cannot be installed here (needs root and apt-get);"
  echo "         the browser test of the built book will be skipped"
fi
exit 0
