#!/usr/bin/env bash
# platform/fetch-arm64-sysroot.sh: Debian 12 (bookworm) arm64 libraries that
# dann builds against and runs on, unpacked into a sysroot folder for
# platform/aarch64-linux-gnu.cmake and qemu-aarch64.
#
#   platform/fetch-arm64-sysroot.sh [SYSROOT]
#
# SYSROOT defaults to $DANN_ARM64_SYSROOT, else build-sysroot-arm64/ in the
# repository root (ignored by git, kept when build folders are deleted).
#
# The host's apt configuration is left alone: a private sources list, package
# lists, cache and empty dpkg status live in SYSROOT/.apt, and `apt-get
# download` fetches the .debs, which `dpkg-deb -x` unpacks. Running it again
# reuses what is there (the lists are refreshed once a day); delete SYSROOT
# to start over.
#
# Needs (host, amd64): apt, dpkg, ca-certificates not required (plain HTTP,
# checked against debian-archive-keyring). Environment:
#   DANN_ARM64_MIRROR  default http://deb.debian.org/debian
#   DANN_ARM64_SUITE   default bookworm
#
# Unpacked: oneDNN (libdnnl2, libdnnl-dev), OpenBLAS's OpenMP build
# (libopenblas0-openmp, libopenblas-openmp-dev, and its Fortran runtime
# libgfortran5), zlib (zlib1g, zlib1g-dev), doctest-dev (headers and CMake
# config), and the C/C++/OpenMP runtime (libc6, libgcc-s1, libstdc++6, libgomp1)
# so that `qemu-aarch64 -L SYSROOT` runs a program with exactly the libraries a
# Debian 12 arm64 board would load. On a board, update-alternatives links
# /usr/lib/aarch64-linux-gnu/libopenblas.so.0 to the installed OpenBLAS
# variant; dpkg-deb -x runs no maintainer scripts, so this script makes that
# link to the OpenMP variant itself.
# Compiling and linking use the cross toolchain's own headers and libraries
# (g++-aarch64-linux-gnu, /usr/aarch64-linux-gnu); the versions match.
set -euo pipefail

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
sysroot=${1:-${DANN_ARM64_SYSROOT:-$repo/build-sysroot-arm64}}
mirror=${DANN_ARM64_MIRROR:-http://deb.debian.org/debian}
suite=${DANN_ARM64_SUITE:-bookworm}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

packages=(libdnnl2 libdnnl-dev libopenblas0-openmp libopenblas-openmp-dev libgfortran5 zlib1g zlib1g-dev
    doctest-dev libc6 libgcc-s1 libstdc++6 libgomp1)

mkdir -p "$sysroot"
sysroot=$(cd "$sysroot" && pwd)
apt_dir=$sysroot/.apt
mkdir -p "$apt_dir"/lists/partial "$apt_dir"/cache/archives/partial "$apt_dir"/debs \
    "$apt_dir"/sources.list.d "$apt_dir"/preferences.d
touch "$apt_dir"/status

echo "deb [arch=arm64 signed-by=$keyring] $mirror $suite main" >"$apt_dir"/sources.list

apt_opts=(
    -q -o APT::Architecture=arm64 -o APT::Architectures::=arm64
    -o Dir::Etc::SourceList="$apt_dir"/sources.list
    -o Dir::Etc::SourceParts="$apt_dir"/sources.list.d
    -o Dir::Etc::PreferencesParts="$apt_dir"/preferences.d
    -o Dir::State="$apt_dir" -o Dir::State::Lists="$apt_dir"/lists
    -o Dir::State::Status="$apt_dir"/status
    -o Dir::Cache="$apt_dir"/cache
    -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)"
    -o Acquire::Retries=3 -o Acquire::Languages=none
)

# Refresh the package lists when missing or older than a day.
stamp=$apt_dir/lists/.updated
if [[ ! -f $stamp ]] || [[ -n $(find "$stamp" -mmin +1440) ]]; then
    echo "fetch-arm64-sysroot: apt-get update ($mirror $suite, arm64)"
    apt-get "${apt_opts[@]}" update
    touch "$stamp"
fi

# Download what is missing (apt-get download names files pkg_version_arch.deb).
cd "$apt_dir"/debs
want=()
declare -A version=()
while read -r key value; do
    case $key in
    Package:) pkg=$value ;;
    Version:) version[$pkg]=$value ;;
    esac
done < <(apt-cache "${apt_opts[@]}" show --no-all-versions "${packages[@]}")
for p in "${packages[@]}"; do
    v=${version[$p]:-}
    [[ -n $v ]] || { echo "fetch-arm64-sysroot: $p not found in $suite arm64" >&2; exit 1; }
    if ! compgen -G "${p}_${v//:/%3a}_*.deb" >/dev/null; then
        want+=("$p")
    fi
done
if ((${#want[@]})); then
    echo "fetch-arm64-sysroot: downloading ${want[*]}"
    apt-get "${apt_opts[@]}" download "${want[@]}"
fi

# Unpack each .deb once (a stamp per file name, i.e. per version).
for deb in *.deb; do
    if [[ ! -f $apt_dir/unpacked.$deb ]]; then
        echo "fetch-arm64-sysroot: unpacking $deb"
        dpkg-deb -x "$deb" "$sysroot"
        touch "$apt_dir/unpacked.$deb"
    fi
done

# Debian's packages carry absolute symlinks (usr/lib/…/libz.so ->
# /lib/…/libz.so.1.2.13): make them relative, so that they point inside the
# sysroot and not at the host's amd64 files.
while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    [[ $target == /* ]] || continue
    rel=$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")
    ln -sfn "$rel" "$link"
done < <(find "$sysroot" -path "$apt_dir" -prune -o -type l -print0)

# The alternatives links of the OpenMP OpenBLAS (what its postinst would make).
blas_dir=usr/lib/aarch64-linux-gnu/openblas-openmp
for name in libopenblas.so.0 libopenblas.so libblas.so.3 liblapack.so.3; do
    if [[ -e $sysroot/$blas_dir/$name ]]; then
        ln -sfn "openblas-openmp/$name" "$sysroot/usr/lib/aarch64-linux-gnu/$name"
    fi
done

for f in usr/lib/aarch64-linux-gnu/libdnnl.so.2 usr/lib/aarch64-linux-gnu/cmake/dnnl/dnnl-config.cmake \
    usr/lib/aarch64-linux-gnu/libopenblas.so.0 usr/include/aarch64-linux-gnu/openblas-openmp/cblas.h \
    usr/lib/aarch64-linux-gnu/libgfortran.so.5 usr/include/zlib.h lib/ld-linux-aarch64.so.1 usr/lib/cmake/doctest/doctestConfig.cmake; do
    [[ -e $sysroot/$f ]] || { echo "fetch-arm64-sysroot: missing $sysroot/$f" >&2; exit 1; }
done
echo "fetch-arm64-sysroot: $sysroot ready ($(cd "$apt_dir"/debs && ls ./*.deb | sed 's|^\./||; s|_arm64.deb$||; s|_all.deb$||' | tr '\n' ' '))"
