#!/bin/bash
# The package under a real systemd: boots a Debian 12 (bookworm) container three times with
# systemd-nspawn and checks what the tests can only check statically (they run without systemd
# as PID 1):
#   boot 0: a bad entratool.json: the unit fails with the reasons in the journal, the file stays
#           with entratool-error.txt beside it, the agent is not enabled.
#   boot 1: entratool-provision.service finds /boot/firmware/entratool.json, seals the store key
#           (systemd-creds), enables and starts entratool-agent (Type=notify: READY, then STATUS
#           "waiting for sign-in: code …"), the code is approved at the local Entra emulator and
#           the agent reports "signed in"; the key reached it through LoadCredentialEncrypted; the
#           file has left the boot partition; nothing failed, nothing restarted.
#   boot 2: provisioning is skipped (no file) and the agent signs in from its saved sign-in.
#
# Not part of `npm test`: it needs root, systemd-nspawn (Debian: systemd-container), debootstrap
# and a Debian mirror to build the container once (about a minute; kept in the cache directory).
#
#   sudo bash scripts/boot-check.sh [--deb FILE] [--cache DIR]
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${TMPDIR:-/tmp}/entratool-boot-check"
DEB=""
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) DEB=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    *) echo "usage: sudo bash scripts/boot-check.sh [--deb FILE] [--cache DIR]" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "boot-check needs root (it boots a container): sudo bash scripts/boot-check.sh" >&2
  exit 2
fi
for tool in systemd-nspawn debootstrap journalctl; do
  command -v "$tool" >/dev/null || {
    echo "$tool is missing: apt-get install -y systemd-container debootstrap" >&2
    exit 2
  }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/entratool-boot-check-run-XXXXXX")
emulator_pid=""
cleanup() {
  [ -z "$emulator_pid" ] || kill "$emulator_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The container's root, made once.
base="$CACHE/bookworm"
if [ ! -x "$base/lib/systemd/systemd" ]; then
  echo "== building a Debian 12 root in $base (once)"
  mkdir -p "$CACHE"
  rm -rf "$base.partial"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$base.partial" "$MIRROR" >"$CACHE/debootstrap.log"
  mv "$base.partial" "$base"
fi

arch=$(dpkg --print-architecture)
if [ -z "$DEB" ]; then
  echo "== packaging (scripts/package.ts --fast)"
  (cd "$ROOT_DIR" && npx bun scripts/package.ts --out "$work/dist" --fast >/dev/null)
  DEB=$(ls "$work"/dist/entratool_*_"$arch".deb)
fi

echo "== the Entra emulator"
port=$((20000 + RANDOM % 20000))
(cd "$ROOT_DIR" && exec npx bun scripts/emulator/main.ts --port "$port" --dir "$work/emulator" --auto-approve 3) \
  >"$work/emulator.out" 2>"$work/emulator.err" &
emulator_pid=$!
for _ in $(seq 1 100); do
  grep -q "authority host" "$work/emulator.out" 2>/dev/null && break
  sleep 0.2
done
tenant=$(sed -n 's/^  tenant id: *//p' "$work/emulator.out")
client=$(sed -n 's/.*--client-id \([^ ]*\).*/\1/p' "$work/emulator.out")
if [ -z "$tenant" ] || [ -z "$client" ]; then
  echo "the emulator did not start" >&2
  cat "$work/emulator.err" >&2
  exit 1
fi

echo "== the board: $(basename "$DEB") into a copy of the root"
board="$work/board"
cp -a "$base" "$board"
nspawn() { systemd-nspawn -D "$board" --register=no --keep-unit -q "$@"; }
# Not /tmp: systemd-nspawn mounts a fresh tmpfs there.
cp "$DEB" "$board/var/tmp/entratool.deb"
nspawn dpkg -i /var/tmp/entratool.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; exit 1; }
mkdir -p "$board/boot/firmware"
cat >"$board/boot/firmware/entratool.json" <<EOF
// The operator's file, as on the SD card.
{
  "profile": { "tenantId": "$tenant", "clientId": "$client", "authorityHost": "https://127.0.0.1:$port" },
  "device": "pi-{hostname}",
  "sources": [{ "type": "system", "intervalSeconds": 60 }]
}
EOF
# The emulator's throwaway CA, for the agent only.
install -m 0644 "$work/emulator/ca.pem" "$board/etc/emulator-ca.pem"
mkdir -p "$board/etc/systemd/system/entratool-agent.service.d"
printf '[Service]\nEnvironment=NODE_EXTRA_CA_CERTS=/etc/emulator-ca.pem\n' \
  >"$board/etc/systemd/system/entratool-agent.service.d/emulator-ca.conf"
# What a person would look at, then power off.
cat >"$board/usr/local/bin/boot-check" <<'EOF'
#!/bin/sh
echo "CHECK enabled: $(systemctl is-enabled entratool-agent)"
echo "CHECK boot partition: $(ls -A /boot/firmware | tr '\n' ' ')"
if [ "$(systemctl is-enabled entratool-agent)" != enabled ]; then
  systemctl poweroff
  exit 0
fi
for i in $(seq 1 60); do
  s=$(systemctl show -p StatusText --value entratool-agent)
  echo "CHECK status: $(systemctl is-active entratool-agent) / $s"
  case "$s" in *"signed in"*) break ;; esac
  sleep 1
done
sleep 3
echo "CHECK agent: $(entratool status --output json)"
for p in Type NRestarts WatchdogUSec ProcSubset; do echo "CHECK $p: $(systemctl show -p "$p" --value entratool-agent)"; done
echo "CHECK credential: $(stat -c %s /run/credentials/entratool-agent.service/entratool.key 2>&1)"
echo "CHECK boot partition after: $(ls -A /boot/firmware | tr '\n' ' ')"
echo "CHECK failed units: $(systemctl list-units --failed --plain --no-legend | wc -l)"
systemctl poweroff
EOF
chmod 0755 "$board/usr/local/bin/boot-check"
cat >"$board/etc/systemd/system/boot-check.service" <<'EOF'
[Unit]
After=entratool-provision.service
[Service]
Type=oneshot
ExecStart=/usr/local/bin/boot-check
[Install]
WantedBy=multi-user.target
EOF
nspawn systemctl enable entratool-provision.service boot-check.service >/dev/null 2>&1

boot() {
  # stdin held open by a writer that is killed afterwards: the container would halt at its end.
  rm -f "$work/console" && mkfifo "$work/console"
  sleep 300 >"$work/console" &
  local holder=$!
  timeout 180 systemd-nspawn -D "$board" -b --register=no --keep-unit --console=passive \
    <"$work/console" >"$work/boot-$1.log" 2>&1 || true
  kill "$holder" 2>/dev/null || true
  journalctl -D "$board/var/log/journal" --no-pager -o cat -b -0 2>/dev/null >"$work/journal-$1.txt" ||
    journalctl -D "$board/var/log/journal" --no-pager -o cat >"$work/journal-$1.txt"
}

failures=0
expect() { # BOOT PATTERN WHAT
  if grep -qaE "$2" "$work/journal-$1.txt"; then
    echo "  ok    boot $1: $3"
  else
    echo "  FAIL  boot $1: $3 (no line matching: $2)"
    failures=$((failures + 1))
  fi
}

refute() { # BOOT PATTERN WHAT
  if grep -qaE "$2" "$work/journal-$1.txt"; then
    echo "  FAIL  boot $1: $3 (found: $(grep -aE "$2" "$work/journal-$1.txt" | head -1 | cut -c1-200))"
    failures=$((failures + 1))
  else
    echo "  ok    boot $1: $3"
  fi
}

echo "== boot 0: a bad entratool.json on the boot partition"
good=$(cat "$board/boot/firmware/entratool.json")
printf '{ "profile": { "tenantId": "%s" }, "device": "pi-{mac}" }\n' "$tenant" >"$board/boot/firmware/entratool.json"
boot 0
expect 0 "has 2 errors: device: \{mac\} is not a placeholder" "the reason is in the journal"
expect 0 "CHECK boot partition: entratool-error.txt entratool.json ?$" "the file stays, with entratool-error.txt beside it"
expect 0 "CHECK enabled: disabled" "the agent is not enabled"
expect 0 "entratool-provision.service: Main process exited, code=exited, status=2" "the unit failed (exit 2), for systemctl --failed"
printf '%s\n' "$good" >"$board/boot/firmware/entratool.json"

echo "== boot 1: first boot with entratool.json on the boot partition"
boot 1
expect 1 "sealed a new store key into /etc/credstore.encrypted/entratool.key" "provisioning sealed the store key"
expect 1 "enabled entratool-agent.service" "provisioning enabled the agent"
expect 1 "moved /boot/firmware/entratool.json to /var/lib/entratool-provision/" "the file left the boot partition"
expect 1 "CHECK status: active / waiting for sign-in: code [A-Z0-9]+-[A-Z0-9]+ at https://127.0.0.1:$port/devicelogin" "STATUS showed the code (Type=notify)"
expect 1 "CHECK status: active / signed in as " "the agent signed in"
expect 1 '"state":"signed-in"' "entratool status over the socket"
expect 1 "CHECK Type: notify$" "Type=notify"
expect 1 "CHECK NRestarts: 0$" "no restart"
expect 1 "CHECK WatchdogUSec: 1min$" "the watchdog armed (60 s)"
expect 1 "CHECK credential: 32$" "the sealed key reached the agent (LoadCredentialEncrypted)"
# journald drops the line's trailing space.
expect 1 "CHECK boot partition after: ?$" "nothing left on the boot partition"
expect 1 "CHECK failed units: 0$" "no failed unit (the failed provisioning of boot 0 succeeded now)"
expect 1 "CHECK ProcSubset: all$" "/proc stays whole for the system source"
refute 1 '"level":"(warn|error|fatal)"' "the agent logged no warning or error"

echo "== boot 2: the same board again"
boot 2
expect 2 "entratool-provision.service.*skipped because no trigger condition checks were met" "provisioning did nothing"
expect 2 "signed in \(saved sign-in\)" "the agent signed in from its saved sign-in, with the sealed key"
expect 2 "CHECK failed units: 0$" "no failed unit"

if [ "$failures" -gt 0 ]; then
  echo "boot-check: $failures failed (the journals: $work, kept)"
  trap - EXIT
  kill "$emulator_pid" 2>/dev/null || true
  exit 1
fi
echo "boot-check: all passed"
