#!/usr/bin/env bash
# Install the system packages the tests need, if missing: a PostgreSQL server, and Chromium
# (driven by Playwright, no browser download) plus curl and jq for the index-site tests.
# Idempotent and quiet when everything is already there.
set -euo pipefail

need=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done

if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
