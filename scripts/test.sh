#!/usr/bin/env bash
# `npm test`: the whole test suite, on a fresh Debian machine too.
# Installs the Debian packages the tests use (as root), or prints the one command to run (otherwise),
# runs vitest under Bun, and ends with one line: "N passed, N failed" (", N skipped" if any).
# Extra arguments go to vitest (e.g. `npm test -- test/store`).
set -euo pipefail
cd "$(dirname "$0")/.."

# jq, curl and python3 run the README's script examples verbatim; util-linux gives `script` (a
# pseudo-terminal for prompts) and `unshare`; qemu-user-static with libc6:arm64 runs the
# linux-arm64 binary on an x86_64 machine; xfonts-base holds the public-domain misc-fixed fonts
# that scripts/gen-font.ts converts (its test regenerates them and compares). Mosquitto is the real
# broker of the telemetry tests; gcc with the mosquitto, OpenSSL and cJSON headers compiles its
# token-checking plugin (scripts/broker/jwt_auth.c). systemd gives systemd-analyze (the units'
# checks) and libsystemd0 the agent's sd_notify. dpkg-dev, fakeroot and lintian build and check the
# .deb packages; ansible-core and ansible-lint check the fleet playbook.
DEB_PACKAGES=(jq curl python3 ca-certificates util-linux qemu-user-static libc6:arm64 xfonts-base
  dpkg-dev fakeroot lintian ansible-core ansible-lint
  mosquitto mosquitto-dev libmosquitto-dev libcjson-dev libssl-dev gcc libc6-dev systemd libsystemd0)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing Debian packages: ${missing[*]}" >&2
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${DEB_PACKAGES[@]}" >/dev/null
  else
    echo "The tests need Debian packages that are missing (${missing[*]}). Run:" >&2
    echo "  sudo dpkg --add-architecture arm64 && sudo apt-get update && sudo apt-get install -y ${DEB_PACKAGES[*]}" >&2
    exit 1
  fi
fi

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
status=0
npx bun --bun vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" 2>/dev/null || echo "0 passed, 1 failed"
exit "$status"
