#!/bin/sh
# entratool's installer for one board: from the unpacked release tarball (`sudo ./install.sh`),
# from a tarball file (`--tarball FILE`) or from the .deb (`--deb FILE`). It produces the same
# system as the .deb: /usr/bin/entratool, the systemd units, the system user `entratool`, its
# directories, /usr/share/entratool/config.schema.json and a default /etc/entratool/config.json
# (only when there is none). Running it again changes nothing and says "already installed" for
# each step that is done. It enables and starts nothing unless asked (--enable, --provision).
#
# POSIX sh (dash) on purpose: it runs on minimal images and in image builders without bash.
#
# Exit codes: 0 done, 1 a step failed, 2 wrong usage, 3 this system (or this tarball) cannot run
# entratool, 4 not root.
#
# ENTRATOOL_INSTALL_SH_ELF (for testing): the file whose ELF header tells the architecture of the
# userland, /bin/sh by default (DIR/bin/sh with --root). The tests point it at a 32-bit ELF file.
set -eu

usage() {
  cat <<'EOF'
Usage: sudo ./install.sh [options]                  (from the unpacked tarball)
       sudo ./install.sh --tarball FILE [options]
       sudo ./install.sh --deb FILE [options]

Installs entratool: /usr/bin/entratool, the systemd units, the system user entratool and
/etc/entratool/config.json (only when there is none). Running it again changes nothing.

Options:
  --tarball FILE  install from entratool-<version>-linux-<arch>.tar.gz
  --deb FILE      install the .deb (apt-get install, or dpkg -i without apt)
  --enable        enable and start entratool-agent
  --provision     enable entratool-provision (first-boot setup from the boot partition)
  --dry-run       print every action and change nothing
  --root DIR      install into DIR (an image being built): no daemon-reload, no restart
  -h, --help      this text
EOF
}

say() { printf '%s\n' "$*"; }
fail() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}
usage_error() {
  printf 'install.sh: %s (see --help)\n' "$*" >&2
  exit 2
}
unsupported() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 3
}

# One argument quoted for a shell, so that printed commands can be pasted as they are.
quote() {
  case $1 in
    '' | *[!A-Za-z0-9_./:=@%+,-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}

# The command line as the user typed it, for the "run it with sudo" message.
ORIGINAL_ARGS=""
for arg in "$@"; do ORIGINAL_ARGS="$ORIGINAL_ARGS $(quote "$arg")"; done

DRY_RUN=0
ROOT_DIR=""
ROOT_MODE=0
ENABLE=0
PROVISION=0
TARBALL=""
DEB=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --enable) ENABLE=1 ;;
    --provision) PROVISION=1 ;;
    --root | --tarball | --deb)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case $1 in
        --root) ROOT_DIR=$2 ROOT_MODE=1 ;;
        --tarball) TARBALL=$2 ;;
        --deb) DEB=$2 ;;
      esac
      shift
      ;;
    --root=*) ROOT_DIR=${1#--root=} ROOT_MODE=1 ;;
    --tarball=*) TARBALL=${1#--tarball=} ;;
    --deb=*) DEB=${1#--deb=} ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) usage_error "unknown option: $1" ;;
  esac
  shift
done

[ -z "$TARBALL" ] || [ -z "$DEB" ] || usage_error "give --tarball or --deb, not both"
# dpkg's maintainer scripts would run inside DIR; an image takes the tarball (or its own dpkg).
[ -z "$DEB" ] || [ "$ROOT_MODE" = 0 ] || usage_error "--root works with the tarball, not with --deb"

# R prefixes every path written; empty for this machine.
R=""
if [ "$ROOT_MODE" = 1 ]; then
  [ -n "$ROOT_DIR" ] || usage_error "--root needs a directory"
  [ -d "$ROOT_DIR" ] || usage_error "--root $ROOT_DIR: no such directory"
  R=$(cd "$ROOT_DIR" && pwd -P)
  [ "$R" != / ] || R=""
fi

umask 022
CLEANUP_DIR=""
CLEANUP_FILE=""
cleanup() {
  [ -z "$CLEANUP_FILE" ] || rm -f "$CLEANUP_FILE"
  [ -z "$CLEANUP_DIR" ] || rm -rf "$CLEANUP_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- Architecture -------------------------------------------------------------------------------

# "CLASS MACHINE" of an ELF file (CLASS 32 or 64, MACHINE its e_machine number), or nothing.
elf_info() {
  [ -r "$1" ] || return 0
  # Word splitting on purpose: one byte a word.
  # shellcheck disable=SC2046
  set -- $(od -An -v -t u1 -N 20 "$1" 2>/dev/null)
  [ $# -ge 20 ] && [ "$1" = 127 ] && [ "$2" = 69 ] && [ "$3" = 76 ] && [ "$4" = 70 ] || return 0
  elf_class=$5 elf_data=$6
  shift 18
  if [ "$elf_data" = 2 ]; then elf_machine=$(($1 * 256 + $2)); else elf_machine=$(($2 * 256 + $1)); fi
  case $elf_class in
    1) printf '32 %s\n' "$elf_machine" ;;
    2) printf '64 %s\n' "$elf_machine" ;;
  esac
}

# A readable name for an ELF class and machine.
elf_name() {
  case "$1 $2" in
    "64 183") echo aarch64 ;;
    "64 62") echo x86_64 ;;
    "32 40") echo "32-bit arm" ;;
    "32 3") echo i386 ;;
    "32 62") echo x32 ;;
    "64 243") echo riscv64 ;;
    "32 243") echo riscv32 ;;
    "64 21") echo ppc64 ;;
    "64 22") echo s390x ;;
    "64 258") echo loongarch64 ;;
    "64 8") echo mips64 ;;
    *) echo "$1-bit ELF machine $2" ;;
  esac
}

# entratool's name for an architecture (arm64, x64), or nothing when there is no binary for it.
release_arch() {
  case $1 in
    aarch64 | arm64) echo arm64 ;;
    x86_64 | amd64) echo x64 ;;
  esac
}

is_32bit_dpkg_arch() {
  case $1 in
    armhf | armel | arm | i386 | mips | mipsel | powerpc | hppa | m68k | sh4 | x32) return 0 ;;
  esac
  return 1
}

# The architecture of the system being installed to, from its userland: a Raspberry Pi OS
# 32-bit often runs a 64-bit kernel, so `uname -m` says aarch64 while every program is armhf.
# Sets MACHINE_ARCH (arm64, x64) or refuses; empty only with --root into a directory without
# a /bin/sh (then the tarball's binary decides).
MACHINE_ARCH=""
check_machine() {
  kernel="" long_bit="" dpkg_arch=""
  elf_file=${ENTRATOOL_INSTALL_SH_ELF:-}
  if [ "$ROOT_MODE" = 1 ]; then
    # This machine's getconf, dpkg and uname describe the build host, not DIR.
    [ -n "$elf_file" ] || elf_file="$R/bin/sh"
  else
    [ -n "$elf_file" ] || elf_file=/bin/sh
    kernel=$(uname -m 2>/dev/null || true)
    long_bit=$(getconf LONG_BIT 2>/dev/null || true)
    if command -v dpkg >/dev/null 2>&1; then dpkg_arch=$(dpkg --print-architecture 2>/dev/null || true); fi
  fi
  elf=$(elf_info "$elf_file")
  elf_arch=""
  # shellcheck disable=SC2086 # "CLASS MACHINE": two arguments
  [ -z "$elf" ] || elf_arch=$(elf_name $elf)

  userland=""
  case $elf in 32\ *) userland=$elf_arch ;; esac
  if [ -z "$userland" ] && [ -n "$dpkg_arch" ] && is_32bit_dpkg_arch "$dpkg_arch"; then userland=$dpkg_arch; fi
  if [ -z "$userland" ] && [ "$long_bit" = 32 ]; then userland="32-bit"; fi
  if [ -n "$userland" ]; then
    [ -z "$dpkg_arch" ] || ! is_32bit_dpkg_arch "$dpkg_arch" || userland=$dpkg_arch
    on_kernel=""
    case $kernel in aarch64 | arm64 | x86_64) on_kernel=" on a 64-bit $kernel kernel" ;; esac
    unsupported "this system runs a 32-bit userland ($userland$on_kernel), and entratool needs a 64-bit one: Bun, which entratool is built with, has no 32-bit ARM build. Replace Raspberry Pi OS 32-bit with Raspberry Pi OS (64-bit) (Raspberry Pi Imager has it; Pi 3, 4, 5, Zero 2 W, CM4 and CM5 run it), then install again."
  fi

  # The userland's own binaries say best what runs here; dpkg and uname when there is no ELF.
  seen=$elf_arch
  [ -n "$seen" ] || seen=$dpkg_arch
  [ -n "$seen" ] || seen=$kernel
  if [ -z "$seen" ]; then
    [ "$ROOT_MODE" = 1 ] || unsupported "cannot tell this machine's architecture (no /bin/sh, dpkg or uname)."
    return 0
  fi
  MACHINE_ARCH=$(release_arch "$seen")
  [ -n "$MACHINE_ARCH" ] ||
    unsupported "there is no entratool for $seen: it is built for linux-arm64 (Raspberry Pi 3, 4, 5, Zero 2 W, CM4/CM5 with a 64-bit OS) and linux-x64."
}

# --- Actions ------------------------------------------------------------------------------------

# Every change goes through run: printed in a dry run, done otherwise.
CHANGES=0
run() {
  CHANGES=$((CHANGES + 1))
  if [ "$DRY_RUN" = 1 ]; then
    line="would run:"
    for word in "$@"; do line="$line $(quote "$word")"; done
    say "$line"
  else
    "$@" || fail "this step failed (exit $?): $*"
  fi
}

already() { say "already installed: $*"; }
done_() { [ "$DRY_RUN" = 1 ] || say "$*"; }

IS_ROOT=0
[ "$(id -u)" != 0 ] || IS_ROOT=1

# Users and groups of the system being installed: with --root, DIR's own files (this machine's
# may differ, and its user entratool may have another id).
user_exists() {
  if [ "$ROOT_MODE" = 1 ]; then
    [ -f "$R/etc/passwd" ] && grep -q "^$1:" "$R/etc/passwd"
  else
    getent passwd "$1" >/dev/null 2>&1
  fi
}
group_field() { # NAME FIELD
  if [ "$ROOT_MODE" = 1 ]; then
    [ -f "$R/etc/group" ] || return 0
    awk -F: -v name="$1" -v field="$2" '$1 == name { print $field; exit }' "$R/etc/group"
  else
    getent group "$1" 2>/dev/null | cut -d: -f"$2"
  fi
}
in_group() { # USER GROUP
  case ",$(group_field "$2" 4)," in *",$1,"*) return 0 ;; esac
  return 1
}

# The owner root:entratool as chown takes it: by number with --root (this machine's names mean
# nothing in DIR), by name otherwise.
group_owner() { # GID
  if [ "$ROOT_MODE" = 1 ] && [ -n "$1" ]; then echo "0:$1"; else echo root:entratool; fi
}

# Ownership is set only as root; without it (--root as a user) files keep the user's own.
chown_if_root() {
  [ "$IS_ROOT" = 1 ] || return 0
  run chown "$@"
}

# Sets mode and owner of PATH when they differ. MODE octal (0640), GID a number ("" = unknown).
fix_mode_owner() { # PATH MODE OWNER_SPEC UID GID
  [ -e "$1" ] || return 0
  want_mode=${2#0}
  # shellcheck disable=SC2046
  set -- "$1" "$2" "$3" "$4" "$5" $(stat -c '%a %u %g' "$1")
  changed=0
  if [ "$6" != "$want_mode" ]; then
    run chmod "$2" "$1"
    changed=1
  fi
  if [ "$IS_ROOT" = 1 ] && { [ "$7" != "$4" ] || { [ -n "$5" ] && [ "$8" != "$5" ]; }; }; then
    run chown "$3" "$1"
    changed=1
  fi
  [ "$changed" = 0 ] || done_ "permissions set: $1 ($2 $3)"
}

# A dry run remembers the directories it would have made, to list each mkdir once.
MADE_DIRS=""
make_dir() {
  [ ! -d "$1" ] || return 0
  case $MADE_DIRS in *"
$1
"*) return 0 ;; esac
  run mkdir -p "$1"
  MADE_DIRS="$MADE_DIRS
$1
"
}

# Copies SRC to DST with MODE through a temporary name beside DST and a rename: whoever runs or
# reads DST sees the old file or the new one, never half of one. Sets PUT to "same", "new" or
# "replaced".
PUT=same
put_file() { # SRC DST MODE
  PUT=same
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    already "$2"
    fix_mode_owner "$2" "$3" 0:0 0 0
    return 0
  fi
  PUT=new
  [ ! -e "$2" ] || PUT=replaced
  dir=$(dirname "$2")
  make_dir "$dir"
  tmp="$dir/.$(basename "$2").install-$$"
  CLEANUP_FILE=$tmp
  if [ "$IS_ROOT" = 1 ]; then
    run install -m "$3" -o 0 -g 0 "$1" "$tmp"
  else
    run install -m "$3" "$1" "$tmp"
  fi
  run mv -f "$tmp" "$2"
  CLEANUP_FILE=""
  if [ "$PUT" = replaced ]; then done_ "updated: $2"; else done_ "installed: $2"; fi
}

systemd_running() { [ "$ROOT_MODE" = 0 ] && [ -d /run/systemd/system ]; }
systemctl_root() {
  if [ "$ROOT_MODE" = 1 ]; then systemctl --root="$R" "$@"; else systemctl "$@"; fi
}

enable_unit() { # UNIT START(0|1)
  if [ "$DRY_RUN" = 0 ] && [ ! -f "$R/lib/systemd/system/$1" ] && [ ! -f "$R/usr/lib/systemd/system/$1" ]; then
    fail "$1 is not installed, so it cannot be enabled."
  fi
  if [ "$(systemctl_root is-enabled "$1" 2>/dev/null || true)" = enabled ]; then
    say "already enabled: $1"
  elif [ "$ROOT_MODE" = 1 ]; then
    run systemctl --root="$R" enable "$1"
    done_ "enabled: $1"
  else
    run systemctl enable "$1"
    done_ "enabled: $1"
  fi
  [ "$2" = 1 ] || return 0
  if ! systemd_running; then
    [ "$ROOT_MODE" = 1 ] || say "not started: $1 (systemd is not running here; it starts at the next boot)"
  elif systemctl is-active --quiet "$1"; then
    say "already running: $1"
  elif [ "$DRY_RUN" = 0 ] && ! /usr/bin/entratool check-config --config /etc/entratool/config.json >/dev/null 2>&1; then
    # The packaged configuration names no profile yet: starting would only fail. Enabled, it
    # starts at the next boot, or once the file is filled in.
    say "not started: $1 (/etc/entratool/config.json is not complete yet: fill it in, check it with 'entratool check-config', then: sudo systemctl start $1)"
  else
    run systemctl start "$1"
    done_ "started: $1"
  fi
}

enable_requested() {
  [ "$ENABLE" = 0 ] || enable_unit entratool-agent.service 1
  [ "$PROVISION" = 0 ] || enable_unit entratool-provision.service 0
}

agent_pid() {
  systemd_running || return 0
  systemctl show -p MainPID --value entratool-agent.service 2>/dev/null || true
}

need_root() {
  [ "$IS_ROOT" = 0 ] || return 0
  [ "$ROOT_MODE" = 0 ] || return 0
  [ "$DRY_RUN" = 0 ] || return 0
  case $0 in */*) self=$0 ;; *) self="sh $0" ;; esac
  printf 'install.sh: installing needs root (it writes /usr/bin, /lib/systemd/system and /etc). Run:\n  sudo %s%s\n' \
    "$self" "$ORIGINAL_ARGS" >&2
  exit 4
}

finish() {
  if [ "$DRY_RUN" = 1 ]; then
    say "dry run: nothing was changed."
  elif [ "$CHANGES" = 0 ]; then
    say "entratool is already installed: nothing changed."
  else
    say "entratool is installed."
  fi
  if [ "$ENABLE" = 0 ] && [ "$(systemctl_root is-enabled entratool-agent.service 2>/dev/null || true)" != enabled ]; then
    if [ "$ROOT_MODE" = 1 ]; then
      say "Nothing is enabled; to start the agent at boot: systemctl --root=$(quote "$R") enable entratool-agent (or install.sh --enable)."
    else
      say "Nothing is enabled. Write the profile into /etc/entratool/config.json, then: sudo systemctl enable --now entratool-agent"
    fi
  fi
}

# --- From the .deb ------------------------------------------------------------------------------

install_deb() {
  [ -f "$DEB" ] || usage_error "--deb $DEB: no such file"
  command -v dpkg-deb >/dev/null 2>&1 || unsupported "--deb needs dpkg; use the tarball on this system."
  check_machine
  deb_arch=$(dpkg-deb -f "$DEB" Architecture)
  deb_version=$(dpkg-deb -f "$DEB" Version)
  deb_package=$(dpkg-deb -f "$DEB" Package)
  if [ "$(release_arch "$deb_arch")" != "$MACHINE_ARCH" ]; then
    want=amd64
    [ "$MACHINE_ARCH" != arm64 ] || want=arm64
    unsupported "$DEB is for $deb_arch, and this machine is $want: use ${deb_package}_${deb_version}_$want.deb."
  fi
  need_root
  deb_path=$(cd "$(dirname "$DEB")" && pwd -P)/$(basename "$DEB")
  installed=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$deb_package" 2>/dev/null || true)
  if [ "$installed" = "ii  $deb_version" ]; then
    already "package $deb_package $deb_version"
  else
    pid_before=$(agent_pid)
    # The admin's /etc/entratool/config.json is kept without asking (confold), like the tarball does.
    if command -v apt-get >/dev/null 2>&1; then
      run apt-get install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$deb_path"
    else
      run dpkg --force-confdef --force-confold -i "$deb_path"
    fi
    done_ "installed: package $deb_package $deb_version"
    # An upgrade restarts a running agent; when the package's scripts did not, this does.
    if [ -n "$pid_before" ] && [ "$pid_before" != 0 ] && [ "$(agent_pid)" = "$pid_before" ]; then
      run systemctl try-restart entratool-agent.service
      done_ "restarted: entratool-agent.service (it was running)"
    fi
  fi
  enable_requested
  finish
}

# --- From the tarball ---------------------------------------------------------------------------

# SRC: the unpacked tarball's directory.
find_source() {
  if [ -n "$TARBALL" ]; then
    [ -f "$TARBALL" ] || usage_error "--tarball $TARBALL: no such file"
    CLEANUP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/entratool-install.XXXXXX")
    tar -xf "$TARBALL" -C "$CLEANUP_DIR" || fail "$TARBALL is not a readable tarball."
    set -- "$CLEANUP_DIR"/*/
    if [ $# != 1 ] || [ ! -d "$1" ]; then
      fail "$TARBALL does not hold one entratool-<version>-linux-<arch>/ directory."
    fi
    SRC=${1%/}
  else
    SRC=$(cd "$(dirname "$0")" && pwd -P)
    [ -f "$SRC/entratool" ] ||
      usage_error "there is no entratool binary next to install.sh ($SRC): run it from the unpacked tarball's directory, or give --tarball FILE or --deb FILE"
  fi
  for file in entratool systemd/entratool-agent.service sysusers.d/entratool.conf tmpfiles.d/entratool.conf config.json; do
    [ -f "$SRC/$file" ] || fail "the tarball is incomplete: $file is missing."
  done
}

# The binary must be one this machine runs (a 64-bit arm64 or x64 ELF, the machine's own).
check_binary() {
  bin=$(elf_info "$SRC/entratool")
  bin_arch=""
  # shellcheck disable=SC2086 # "CLASS MACHINE": two arguments
  [ -z "$bin" ] || bin_arch=$(release_arch "$(elf_name $bin)")
  [ -n "$bin_arch" ] || unsupported "$SRC/entratool is not a linux-arm64 or linux-x64 program."
  name=$(basename "$SRC")
  VERSION=""
  case $name in
    entratool-*-linux-*)
      VERSION=${name#entratool-}
      VERSION=${VERSION%-linux-*}
      ;;
  esac
  [ -n "$MACHINE_ARCH" ] || MACHINE_ARCH=$bin_arch
  if [ "$bin_arch" != "$MACHINE_ARCH" ]; then
    if [ -n "$VERSION" ]; then want="entratool-$VERSION-linux-$MACHINE_ARCH.tar.gz"; else want="the linux-$MACHINE_ARCH tarball"; fi
    unsupported "this tarball holds the linux-$bin_arch binary, and this machine is $MACHINE_ARCH: use $want."
  fi
}

install_tarball() {
  check_machine
  need_root
  find_source
  check_binary
  where=/
  [ -z "$R" ] || where=$R
  say "entratool ${VERSION:-(unknown version)} (linux-$MACHINE_ARCH) from $SRC into $where"
  if [ "$ROOT_MODE" = 1 ] && [ "$IS_ROOT" = 0 ]; then
    say "note: not root, so the files keep your user as owner, and DIR/etc/passwd must be writable to you (run as root, or under fakeroot, for an image)."
  fi

  # The binary, under a running agent: a rename leaves its open file alone.
  put_file "$SRC/entratool" "$R/usr/bin/entratool" 0755
  binary_replaced=0
  [ "$PUT" != replaced ] || binary_replaced=1
  units_changed=0
  for unit in "$SRC"/systemd/*.service; do
    put_file "$unit" "$R/lib/systemd/system/$(basename "$unit")" 0644
    [ "$PUT" = same ] || units_changed=1
  done
  put_file "$SRC/sysusers.d/entratool.conf" "$R/usr/lib/sysusers.d/entratool.conf" 0644
  put_file "$SRC/tmpfiles.d/entratool.conf" "$R/usr/lib/tmpfiles.d/entratool.conf" 0644
  # The configuration's JSON Schema, where the default config.json says editors find it.
  if [ -f "$SRC/config.schema.json" ]; then
    put_file "$SRC/config.schema.json" "$R/usr/share/entratool/config.schema.json" 0644
  fi

  # The user, as the package makes it: sysusers.d where systemd has it, useradd or adduser else.
  if user_exists entratool; then
    already "user entratool"
  else
    if command -v systemd-sysusers >/dev/null 2>&1; then
      if [ "$ROOT_MODE" = 1 ]; then run systemd-sysusers --root="$R" entratool.conf; else run systemd-sysusers entratool.conf; fi
    elif command -v useradd >/dev/null 2>&1; then
      if [ "$ROOT_MODE" = 1 ]; then set -- --root "$R"; else set --; fi
      run useradd "$@" --system --user-group --home-dir /var/lib/entratool --no-create-home \
        --shell /usr/sbin/nologin --comment "entratool agent" entratool
    elif command -v adduser >/dev/null 2>&1 && [ "$ROOT_MODE" = 0 ]; then
      run adduser --system --group --home /var/lib/entratool --no-create-home --shell /usr/sbin/nologin entratool
    else
      fail "cannot create the user entratool: there is no systemd-sysusers, useradd or adduser."
    fi
    [ "$DRY_RUN" = 1 ] || user_exists entratool || fail "the user entratool was not created."
    done_ "created: user entratool"
  fi

  # The displays' devices belong to these groups; they are joined, never created.
  added="" present="" absent=""
  for group in gpio i2c spi video; do
    if [ -z "$(group_field "$group" 3)" ]; then
      absent="$absent $group"
    elif in_group entratool "$group"; then
      present="$present $group"
    else
      if [ "$ROOT_MODE" = 1 ]; then
        run usermod --root "$R" -a -G "$group" entratool
      elif command -v usermod >/dev/null 2>&1; then
        run usermod -a -G "$group" entratool
      else
        run adduser entratool "$group"
      fi
      added="$added $group"
    fi
  done
  [ -z "$present" ] || already "user entratool in the groups$present"
  [ -z "$added" ] || done_ "added: user entratool to the groups$added"
  [ -z "$absent" ] || say "no such group here (not needed without that hardware):$absent"

  # The directories of tmpfiles.d/entratool.conf.
  gid=$(group_field entratool 3)
  owner=$(group_owner "$gid")
  etc_state=$(stat -c '%a %u %g' "$R/etc/entratool" 2>/dev/null || true)
  creds_state=$(stat -c '%a %u %g' "$R/etc/credstore.encrypted" 2>/dev/null || true)
  if [ -n "$gid" ] && [ "$etc_state" = "750 0 $gid" ] && [ "$creds_state" = "700 0 0" ]; then
    already "$R/etc/entratool and $R/etc/credstore.encrypted (tmpfiles.d/entratool.conf)"
  elif command -v systemd-tmpfiles >/dev/null 2>&1; then
    if [ "$ROOT_MODE" = 1 ]; then
      run systemd-tmpfiles --root="$R" --create entratool.conf
    else
      run systemd-tmpfiles --create entratool.conf
    fi
    done_ "created: $R/etc/entratool and $R/etc/credstore.encrypted (tmpfiles.d/entratool.conf)"
  else
    [ -d "$R/etc/entratool" ] || run mkdir -p "$R/etc/entratool"
    [ -d "$R/etc/credstore.encrypted" ] || run mkdir -p "$R/etc/credstore.encrypted"
    run chmod 0750 "$R/etc/entratool"
    chown_if_root "$owner" "$R/etc/entratool"
    run chmod 0700 "$R/etc/credstore.encrypted"
    chown_if_root 0:0 "$R/etc/credstore.encrypted"
    done_ "created: $R/etc/entratool and $R/etc/credstore.encrypted"
  fi
  # Whatever tmpfiles.d says, the agent must be able to read its directory.
  [ "$DRY_RUN" = 1 ] || fix_mode_owner "$R/etc/entratool" 0750 "$owner" 0 "$gid"

  # The configuration is the admin's once it exists: never overwritten, only made readable to
  # the agent (0640 root:entratool, as the package's postinst does).
  config=$R/etc/entratool/config.json
  if [ -e "$config" ] || [ -L "$config" ]; then
    if cmp -s "$SRC/config.json" "$config"; then
      already "$config"
    else
      say "kept: $config (it exists and is never overwritten; the shipped default is $SRC/config.json)"
    fi
  else
    tmp="$R/etc/entratool/.config.json.install-$$"
    CLEANUP_FILE=$tmp
    run install -m 0640 "$SRC/config.json" "$tmp"
    chown_if_root "$owner" "$tmp"
    run mv -f "$tmp" "$config"
    CLEANUP_FILE=""
    done_ "installed: $config"
  fi
  fix_mode_owner "$config" 0640 "$owner" 0 "$gid"

  # systemd reads the units again, and a running agent gets the new binary.
  if systemd_running; then
    need_reload=$(systemctl show -p NeedDaemonReload --value entratool-agent.service 2>/dev/null || true)
    if [ "$units_changed" = 1 ] || [ "$need_reload" = yes ]; then
      run systemctl daemon-reload
      done_ "reloaded: systemd's units"
    fi
    if [ "$binary_replaced" = 1 ] || [ "$units_changed" = 1 ]; then
      if [ -n "$(systemctl list-units --state=active --plain --no-legend 'entratool-agent*.service' 2>/dev/null)" ]; then
        run systemctl try-restart entratool-agent.service 'entratool-agent@*.service'
        done_ "restarted: entratool-agent (it was running)"
      fi
    fi
  fi

  enable_requested
  finish
}

if [ -n "$DEB" ]; then install_deb; else install_tarball; fi
