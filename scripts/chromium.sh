#!/usr/bin/env bash
# Make sure a Chromium is there for the browser tests (tests/browser): the one on PATH, else
# Debian's package when this machine can install it. Playwright's own browser download is not
# used: it is not reachable from every machine, and the tests pass Chromium's path themselves.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null; then
    exit 0
  fi
done

if [ -n "${TASKCAST_CHROMIUM:-}" ] && [ -x "$TASKCAST_CHROMIUM" ]; then
  exit 0
fi

if command -v apt-get >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  echo "chromium: installing Debian's chromium package for the browser tests"
  if $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }; then
    exit 0
  fi
fi

# Not fatal here: the rest of the project installs; the browser tests fail and say what to do.
echo "chromium: no Chromium found and none could be installed; the browser tests will fail." >&2
echo "  Install one (apt-get install -y chromium) or set TASKCAST_CHROMIUM to its binary." >&2
