#!/usr/bin/env bash
# .ci/package_check.sh: dann as a user gets it from `cmake --install`.
#
# Builds dann (Release; tests, benchmarks and examples off) in a temporary
# folder, installs it into a temporary prefix with `cmake --install --prefix`
# (so the CMake package and dann.pc must be relocatable), then checks:
#   - the installed files (header, libdann.so.X.Y.Z + symlinks, libdann.a, the
#     tool, CMake package, dann.pc);
#   - SONAME libdann.so.MAJOR, no RPATH/RUNPATH in the installed library;
#   - libdann.so exports only dann_* symbols, and every function that
#     include/dann.h declares;
#   - tests/package/ (a small C program) built and run four ways: CMake
#     find_package + dann::dann, CMake + dann::dann_static, pkg-config, and
#     pkg-config --static (no libdann.so.0 among its NEEDED);
#   - the installed tool finds its photos in <prefix>/share/dann (beside
#     itself, not at the configure-time prefix nor in the source tree): `dann
#     data fmnist-m` builds Fashion-MNIST-M from them (checked against
#     data/SHA256SUMS), once in the prefix and once after moving the prefix;
#   - prints the installed sizes, and libdnnl.so.2's (the one libdann.so loads).
#
# Packages (Debian 12), besides the README's build line: pkgconf, binutils
# (readelf, nm; comes with g++), make; dataset-fashion-mnist (the README's
# install line) for the data check.
#
# Environment:
#   DANN_PKG_WORK=DIR   work in DIR (kept) instead of a temporary folder (removed)
#   DANN_CI_JOBS=2      parallel build jobs
#   CC                  C compiler for the pkg-config builds (default cc)
# Exit status 0 only if every check passed.
set -euo pipefail

repo=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
jobs=${DANN_CI_JOBS:-2}
export OMP_NUM_THREADS=1 LC_ALL=C

if [[ -n ${DANN_PKG_WORK:-} ]]; then
    work=$DANN_PKG_WORK
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/dann-package.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
build=$work/build
prefix=$work/prefix
failures=0

x() { echo "+ $*"; "$@"; }
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
human() { numfmt --to=iec-i --suffix=B --format='%.1f' "$1"; }
section() { printf '\n== %s\n' "$*"; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }

for tool in cmake make readelf nm pkg-config; do
    command -v "$tool" >/dev/null || { echo "package_check: $tool not found" >&2; exit 1; }
done

section "build and install dann"
x cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDANN_BUILD_TESTS=OFF \
    -DDANN_BUILD_BENCH=OFF -DDANN_BUILD_EXAMPLES=OFF -DDANN_BUILD_FUZZERS=OFF
x cmake --build "$build" -j"$jobs"
rm -rf "$prefix"
x cmake --install "$build" --prefix "$prefix" >"$work/install.log"
sed "s|$prefix/||" "$work/install.log" | grep -v '/share/dann/photos/' || true

section "installed files"
version=$(sed -n 's/^#define DANN_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$repo/include/dann.h" | paste -sd.)
major=${version%%.*}
libdir=$(dirname "$(find "$prefix" -name dann.pc -path '*/pkgconfig/*' | head -n1)")
libdir=${libdir%/pkgconfig}
[[ -d $libdir ]] || { fail "no dann.pc installed"; libdir=$prefix/lib; }
echo "version $version (dann.h), libdir ${libdir#"$prefix"/}"
for f in include/dann.h bin/dann "${libdir#"$prefix"/}/libdann.so.$version" \
    "${libdir#"$prefix"/}/libdann.a" "${libdir#"$prefix"/}/cmake/dann/dannConfig.cmake" \
    "${libdir#"$prefix"/}/cmake/dann/dannConfigVersion.cmake" \
    "${libdir#"$prefix"/}/cmake/dann/dannTargets.cmake" "${libdir#"$prefix"/}/pkgconfig/dann.pc"; do
    if [[ -f $prefix/$f && ! -L $prefix/$f ]]; then ok "$f"; else fail "$f missing"; fi
done
for l in "libdann.so.$major:libdann.so.$version" "libdann.so:libdann.so.$major"; do
    name=${l%%:*} target=${l#*:}
    if [[ -L $libdir/$name && $(readlink "$libdir/$name") == "$target" ]]; then
        ok "$name -> $target"
    else
        fail "$name is not a symlink to $target"
    fi
done

lib=$libdir/libdann.so.$version
section "SONAME, RPATH, dependencies"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ $soname == "libdann.so.$major" ]]; then ok "SONAME $soname"; else fail "SONAME '$soname', expected libdann.so.$major"; fi
if readelf -d "$lib" | grep -qE '\((RPATH|RUNPATH)\)'; then
    fail "installed library carries $(readelf -d "$lib" | grep -E '\((RPATH|RUNPATH)\)')"
else
    ok "no RPATH/RUNPATH"
fi
echo "NEEDED: $(needed "$lib")"

section "exported symbols"
nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | sort -u >"$work/exported.txt"
grep -v '^dann_' "$work/exported.txt" >"$work/leaked.txt" || true
n_dann=$(grep -c '^dann_' "$work/exported.txt" || true)
if [[ -s $work/leaked.txt ]]; then
    fail "$(wc -l <"$work/leaked.txt") exported symbols outside dann_*:"
    head -n 40 "$work/leaked.txt" | sed 's/^/    /'
else
    ok "$n_dann symbols exported, all dann_*"
fi
# Every function the header declares (DANN_API ... name( on one line) is exported.
grep -E '^DANN_API ' "$repo/include/dann.h" | grep -oE '\bdann_[a-z0-9_]+[[:space:]]*\(' |
    tr -d '( ' | sort -u >"$work/declared.txt"
missing=$(comm -23 "$work/declared.txt" "$work/exported.txt")
if [[ -n $missing ]]; then
    fail "declared in dann.h but not exported: $(echo "$missing" | tr '\n' ' ')"
else
    ok "all $(wc -l <"$work/declared.txt") functions declared in dann.h are exported"
fi
extra=$(comm -13 "$work/declared.txt" "$work/exported.txt")
[[ -z $extra ]] || echo "note: exported but not declared with DANN_API on one line: $(echo "$extra" | tr '\n' ' ')"

section "pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --validate dann && ok "dann.pc validates" || fail "pkg-config --validate dann"
echo "--modversion: $(pkg-config --modversion dann)"
echo "--cflags --libs: $(pkg-config --cflags --libs dann)"
echo "--static --libs: $(pkg-config --static --libs dann)"
[[ $(pkg-config --modversion dann) == "$version" ]] || fail "dann.pc version differs from dann.h's $version"

run_consumer() {   # name, program, expect-libdann-needed (yes/no)
    local name=$1 prog=$2 want=$3 out deps
    deps=$(needed "$prog")
    if [[ $want == yes && $deps != *"libdann.so.$major"* ]]; then
        fail "$name: libdann.so.$major not among NEEDED ($deps)"; return
    fi
    if [[ $want == no && $deps == *libdann.so* ]]; then
        fail "$name: links libdann.so although static ($deps)"; return
    fi
    if out=$("$prog" 2>&1); then
        ok "$name: $out"
        echo "    NEEDED: $deps"
    else
        fail "$name: exit status $?: $out"
    fi
}

section "consumer: CMake find_package, dann::dann (shared)"
if x cmake -S "$repo/tests/package" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >"$work/consumer-cmake.log" 2>&1 &&
    x cmake --build "$work/consumer-cmake" >>"$work/consumer-cmake.log" 2>&1; then
    run_consumer "cmake shared" "$work/consumer-cmake/dann_consumer" yes
else
    fail "cmake shared consumer did not build"; tail -n 30 "$work/consumer-cmake.log"
fi

section "consumer: CMake find_package, dann::dann_static"
if x cmake -S "$repo/tests/package" -B "$work/consumer-cmake-static" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release -DDANN_CONSUMER_STATIC=ON >"$work/consumer-cmake-static.log" 2>&1 &&
    x cmake --build "$work/consumer-cmake-static" >>"$work/consumer-cmake-static.log" 2>&1; then
    run_consumer "cmake static" "$work/consumer-cmake-static/dann_consumer" no
else
    fail "cmake static consumer did not build"; tail -n 30 "$work/consumer-cmake-static.log"
fi

section "consumer: pkg-config (shared)"
mkdir -p "$work/consumer-pc"
if x make -s -B -C "$repo/tests/package" OUT="$work/consumer-pc" shared; then
    run_consumer "pkg-config shared" "$work/consumer-pc/dann_consumer_pc" yes
else
    fail "pkg-config shared consumer did not build"
fi

section "consumer: pkg-config --static (libdann.a)"
if x make -s -B -C "$repo/tests/package" OUT="$work/consumer-pc" static; then
    run_consumer "pkg-config static" "$work/consumer-pc/dann_consumer_static" no
else
    fail "pkg-config static consumer did not build"
fi

section "the installed tool"
if "$prefix/bin/dann" --help >/dev/null 2>&1; then ok "bin/dann --help"; else fail "bin/dann --help"; fi

# The tool finds its photos beside itself (bin/../share/dann), not at the
# configure-time prefix nor in the source tree, also once the prefix has moved:
# `dann data fmnist-m` builds the data set from them and reports the folder.
section "the installed tool finds its data (prefix other than the configure-time one, then moved)"
configured=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
echo "configure-time prefix: $configured; installed into: $prefix"
[[ $configured != "$prefix" ]] || fail "the install prefix equals the configure-time one: nothing to prove"
fmnist_dir=/usr/share/datasets/fashion-mnist
check_photos() {   # prefix: its dann builds Fashion-MNIST-M from <prefix>/share/dann/photos
    local p=$1 out json photos
    out=$work/fmnist-m
    rm -rf "$out"
    if ! json=$(env -u DANN_DATA_DIR "$p/bin/dann" data fmnist-m --fmnist "$fmnist_dir" --out "$out" \
        --quiet --json 2>"$work/fmnist-m.err" | tail -n1); then
        fail "$p/bin/dann data fmnist-m: $(cat "$work/fmnist-m.err")"; return
    fi
    photos=$(sed -n 's/.*"photos": "\([^"]*\)".*/\1/p' <<<"$json")
    if [[ -n $photos && $(readlink -f "$photos") == "$(readlink -f "$p/share/dann/photos")" ]]; then
        ok "dann data fmnist-m read the photos from ${photos}"
    else
        fail "dann data fmnist-m read the photos from '${photos}', not $p/share/dann/photos"
    fi
    if (cd "$out" && sha256sum --quiet -c "$repo/data/SHA256SUMS"); then
        ok "the data set it built matches data/SHA256SUMS"
    else
        fail "the data set built from $photos differs from data/SHA256SUMS"
    fi
    rm -rf "$out"
}
if [[ -f $fmnist_dir/train-images-idx3-ubyte.gz ]]; then
    check_photos "$prefix"
    moved=$work/moved-prefix
    rm -rf "$moved"
    mv "$prefix" "$moved"
    check_photos "$moved"
    mv "$moved" "$prefix"
else
    fail "$fmnist_dir (package dataset-fashion-mnist) is missing: cannot check the data folder"
fi

section "sizes (bytes; stripped in parentheses)"
dnnl=$(ldd "$lib" | sed -n 's/.*libdnnl\.so\.[0-9]* => \([^ ]*\).*/\1/p')
dnnl=$(readlink -f "${dnnl:-/nonexistent}")
for f in "$lib" "$libdir/libdann.a" "$prefix/bin/dann" "$dnnl"; do
    [[ -f $f ]] || { echo "  (missing) $f"; continue; }
    size=$(stat -c %s "$f")
    # debug info only for the archive: its symbol table is what links
    if [[ $f == *.a ]]; then strip -g -o "$work/stripped" "$f"; else strip -o "$work/stripped" "$f"; fi
    stripped=$(stat -c %s "$work/stripped")
    printf '  %-22s %10s %9s (%s)\n' "$(basename "$f")" "$size" "$(human "$size")" "$(human "$stripped")"
done
echo "  (libdnnl: $dnnl, the copy libdann.so resolves here)"

echo
if ((failures)); then
    echo "package_check: $failures check(s) FAILED"
    exit 1
fi
echo "package_check: all checks passed"
