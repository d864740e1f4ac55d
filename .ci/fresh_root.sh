#!/usr/bin/env bash
# .ci/fresh_root.sh: prove the README's two commands on a brand-new Debian 12.
#
#   1. debootstrap --variant=minbase bookworm into a new folder (nothing else
#      installed: the README's install line must name every package);
#   2. clone the repository's committed HEAD into <root>/src/dann;
#   3. bind-mount /proc, /dev, /sys, copy /etc/resolv.conf;
#   4. inside chroot, in /src/dann, run the README's command after the marker
#      <!-- command:install-build-demo --> verbatim, then the one after
#      <!-- command:test --> verbatim;
#   5. always unmount everything and delete the folder on exit (trap), even on
#      failure or interruption.
#
# Usage: .ci/fresh_root.sh [REPO]            (REPO defaults to this checkout)
#        .ci/fresh_root.sh --print NAME [README]  (print one README command)
# Environment (all optional, for local use):
#   DANN_CI_MIRROR        Debian mirror (default http://deb.debian.org/debian)
#   DANN_CI_FRESH_BASE    folder the root is created under (default /var/tmp)
#   DANN_CI_KEEP_ROOT=1   keep the root folder after the run (still unmounted)
#   DANN_CI_DEBOOTSTRAP_TARBALL  a debootstrap --make-tarball file to unpack
#       instead of downloading; only honoured under /var/cache. With
#       DANN_CI_MAKE_TARBALL=1 it is created there first when missing.
#       Default: none, so every run downloads everything afresh.
set -euo pipefail

# CI may check the repository out as another user: let git read it anyway.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
log() { printf '%s\n' "$*"; }
die() { printf 'fresh-root: ERROR: %s\n' "$*" >&2; exit 1; }

# Print the fenced ```sh block that follows the line "<!-- command:NAME -->".
# Fails if the marker is missing or repeated, or the block is missing/empty.
readme_command() {
    local name=$1 readme=$2
    [[ -f $readme ]] || die "no README at $readme"
    awk -v marker="<!-- command:${name} -->" '
        function trim(s) { sub(/^[ \t\r]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
        state == 0 { if (trim($0) == marker) { state = 1; nmark++ } ; next }
        state == 1 { if (trim($0) == "") next
                     if (trim($0) == "```sh") { state = 2; next }
                     exit 3 }
        state == 2 { if (trim($0) == "```") { state = 3; next }
                     sub(/\r$/, ""); if (trim($0) != "") { print; n++ } ; next }
        state == 3 { if (trim($0) == marker) { nmark++ } }
        END { if (state != 3 || n == 0 || nmark != 1) exit 3 }
    ' "$readme" || die "README $readme: need exactly one '<!-- command:${name} -->' followed by a non-empty \`\`\`sh block"
}

if [[ ${1:-} == --print ]]; then
    [[ -n ${2:-} ]] || die "usage: $0 --print NAME [README]"
    readme_command "$2" "${3:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)/README.md}"
    exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, mount, chroot)"
for tool in debootstrap git chroot mount umount findmnt; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

repo=$(git -C "${1:-$(dirname "$0")/..}" rev-parse --show-toplevel)
mirror=${DANN_CI_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DANN_CI_SECURITY_MIRROR:-${mirror%/debian}/debian-security}
suite=bookworm
base=${DANN_CI_FRESH_BASE:-/var/tmp}
tarball=${DANN_CI_DEBOOTSTRAP_TARBALL:-}
arch=$(dpkg --print-architecture)

# The commands, taken from the committed README (what a reader of HEAD sees).
readme_tmp=$(mktemp)
git -C "$repo" show HEAD:README.md >"$readme_tmp" || die "README.md is not committed in $repo"
cmd_install=$(readme_command install-build-demo "$readme_tmp")
cmd_test=$(readme_command test "$readme_tmp")
rm -f "$readme_tmp"

if [[ -n $(git -C "$repo" status --porcelain --untracked-files=no) ]]; then
    log "fresh-root: note: $repo has uncommitted changes; only the committed HEAD is tested"
fi

mkdir -p "$base"
work=$(mktemp -d "$base/dann-fresh-root.XXXXXX")
root=$work/root
dlog=$work/debootstrap.log
mkdir "$root"

declare -A phase_s=()
phases=()
t_phase=0
cur_phase=
phase_begin() { cur_phase=$1; t_phase=$SECONDS; log "== fresh-root: $1 ($(date -u +%H:%M:%S) UTC)"; }
phase_end() { cur_phase=; phase_s[$1]=$((SECONDS - t_phase)); phases+=("$1"); log "== fresh-root: $1: ${phase_s[$1]} s"; }

# --- cleanup: kill what still runs in the root, unmount, delete -------------
mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r "/") == 1 || $0 == r' | sort -r; }

kill_root_processes() {
    local sig=$1 p pids=()
    for p in /proc/[0-9]*; do
        [[ $(readlink "$p/root" 2>/dev/null) == "$root" ]] && pids+=("${p#/proc/}")
    done
    ((${#pids[@]})) || return 1
    log "fresh-root: sending SIG$sig to processes still in the root: ${pids[*]}"
    kill -s "$sig" "${pids[@]}" 2>/dev/null || true
    return 0
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    set +e
    if [[ -n $cur_phase ]]; then
        phase_s["$cur_phase (FAILED)"]=$((SECONDS - t_phase)); phases+=("$cur_phase (FAILED)")
    fi
    local t_clean=$SECONDS
    if kill_root_processes TERM; then sleep 3; kill_root_processes KILL && sleep 1; fi
    local m
    for m in "$root/dev" "$root/sys" "$root/proc"; do
        mountpoint -q "$m" 2>/dev/null && { umount -R "$m" || umount -lR "$m"; }
    done
    for m in $(mounts_under_root); do umount "$m" 2>/dev/null || umount -l "$m"; done
    if [[ -n $(mounts_under_root) ]]; then
        log "fresh-root: ERROR: still mounted, NOT deleting $work:"; mounts_under_root
        ((rc != 0)) || rc=1
    elif [[ ${DANN_CI_KEEP_ROOT:-0} == 1 ]]; then
        log "fresh-root: kept $work (nothing mounted)"
    else
        rm -rf --one-file-system "$work"
    fi
    phase_s[cleanup]=$((SECONDS - t_clean)); phases+=(cleanup)
    if ((${#phases[@]})); then
        log "fresh-root: timings:"
        local p; for p in "${phases[@]}"; do printf '  %-30s %5d s\n' "$p" "${phase_s[$p]}"; done
    fi
    log "fresh-root: exit $rc (total ${SECONDS} s)"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "fresh-root: interrupted"; exit 130' INT TERM HUP

log "fresh-root: repo $repo at $(git -C "$repo" rev-parse --short HEAD); root $root"
log "fresh-root: mirror $mirror, suite $suite, arch $arch"

# --- 1. debootstrap ----------------------------------------------------------
phase_begin debootstrap
ds_args=(--variant=minbase --arch="$arch")
if [[ -n $tarball ]]; then
    case $(realpath -m "$tarball") in
        /var/cache/*) ;;
        *) die "DANN_CI_DEBOOTSTRAP_TARBALL must be under /var/cache" ;;
    esac
    if [[ ! -f $tarball && ${DANN_CI_MAKE_TARBALL:-0} == 1 ]]; then
        log "fresh-root: creating debootstrap tarball $tarball"
        mkdir -p "$(dirname "$tarball")"
        tb_dir=$(mktemp -d "$base/dann-fresh-tarball.XXXXXX")
        if ! debootstrap "${ds_args[@]}" --make-tarball="$tarball.part" "$suite" "$tb_dir" "$mirror" >"$dlog" 2>&1; then
            rm -rf --one-file-system "$tb_dir"; rm -f "$tarball.part"
            log "fresh-root: debootstrap --make-tarball failed; its log:"; cat "$dlog"; exit 1
        fi
        rm -rf --one-file-system "$tb_dir"; mv "$tarball.part" "$tarball"
    fi
    if [[ -f $tarball ]]; then
        log "fresh-root: reusing debootstrap tarball $tarball (packages only; installed afresh)"
        ds_args+=(--unpack-tarball="$(realpath "$tarball")")
    fi
fi
if ! debootstrap "${ds_args[@]}" "$suite" "$root" "$mirror" >"$dlog" 2>&1; then
    log "fresh-root: debootstrap failed; its log:"
    cat "$dlog"
    [[ -f $root/debootstrap/debootstrap.log ]] && { log "--- $root/debootstrap/debootstrap.log:"; tail -n 100 "$root/debootstrap/debootstrap.log"; }
    exit 1
fi
log "fresh-root: debootstrap ok ($(grep -c '^I: Unpacking' "$dlog" || true) packages unpacked; log has $(wc -l <"$dlog") lines)"
# What a freshly installed Debian 12 lists: the release, its updates, security.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
EOF
phase_end debootstrap

# --- 2. clone the committed HEAD --------------------------------------------
phase_begin clone
mkdir -p "$root/src"
git -c advice.detachedHead=false clone -q --no-local --no-hardlinks \
    --upload-pack="git -c safe.directory='*' upload-pack" "$repo" "$root/src/dann"
want=$(git -C "$repo" rev-parse HEAD)
got=$(git -C "$root/src/dann" rev-parse HEAD)
[[ $want == "$got" ]] || die "clone checked out $got, expected the repository's HEAD $want"
git -C "$root/src/dann" log -1 --format='fresh-root: cloned %h %s'
phase_end clone

# --- 3. mounts ----------------------------------------------------------------
mount -t proc proc "$root/proc" 2>/dev/null || mount --bind /proc "$root/proc"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# chrooted commands run with nothing from the host's environment but these:
in_root() {
    chroot "$root" /usr/bin/env -i -C /src/dann \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb \
        CI=true DEBIAN_FRONTEND=noninteractive \
        ${http_proxy:+http_proxy=$http_proxy} \
        /bin/bash -e -o pipefail -c "$1" </dev/null
}

# --- 4. the README's commands, verbatim ---------------------------------------
phase_begin install-build-demo
log "fresh-root: \$ $cmd_install"
in_root "$cmd_install"
phase_end install-build-demo

phase_begin test
log "fresh-root: \$ $cmd_test"
in_root "$cmd_test"
phase_end test

log "fresh-root: both README commands succeeded on a fresh Debian $suite"
