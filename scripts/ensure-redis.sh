#!/usr/bin/env bash
# Make sure redis-server is installed: the test suite and the demo start their own.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
install() {
  "$@" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "$@" apt-get install -y -qq --no-install-recommends redis-server >/dev/null
}
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    install env
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    install sudo
  fi
fi
if ! command -v redis-server >/dev/null 2>&1; then
  cat >&2 <<'MSG'
redis-server is needed and could not be installed automatically.
Install it and run the command again:
  Debian/Ubuntu: sudo apt-get install redis-server
  macOS:         brew install redis
MSG
  exit 1
fi
