#!/usr/bin/env bash
# Package tests: install corio to a temporary prefix (with CMake and with
# meson), then build and run one tiny consumer per way of getting corio. Each
# must print "corio consumer: 42". Stops at the first failure.
#
#   tests/package/run.sh
#
# Environment: CXX (compiler for every consumer, default: each tool's choice),
# CORIO_JOBS (default 2). Needs cmake, ninja, meson, pkg-config, make, python3.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/tests/package"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/corio-package.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
jobs="${CORIO_JOBS:-2}"
expected="corio consumer: 42"
passed=0
skipped=()

fail() {
    echo "package test FAILED: $*" >&2
    exit 1
}

for tool in cmake ninja meson pkg-config make python3 "${CXX:-g++}"; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "'$tool' not found (scripts/install-deps ci installs the tools)"
done

now_ms() { date +%s%3N; }
secs_since() { awk -v ms=$(($(now_ms) - $1)) 'BEGIN { printf "%.1f", ms / 1000 }'; }

# run <name> <command...>: quiet on success; on failure, the log and a clear stop.
run() {
    local name="$1"; shift
    local log="$tmp/log.$name"
    if ! "$@" >>"$log" 2>&1; then
        echo "---- $name: output of: $*" >&2
        tail -n 40 "$log" >&2
        fail "$name: command failed: $*"
    fi
}

ok() {   # ok <name> <start_ms>
    passed=$((passed + 1))
    printf 'ok    %-22s %6ss\n' "$1" "$(secs_since "$2")"
}

expect_output() {   # expect_output <name> <executable>
    local out rc=0
    out="$("$2")" || rc=$?
    [ "$rc" -eq 0 ] || fail "$1: $2 exited with status $rc (output: '$out')"
    [ "$out" = "$expected" ] || fail "$1: $2 printed '$out', expected '$expected'"
}

# Every flag separated by one space, without leading or trailing blanks.
words() { echo $*; }   # unquoted on purpose: collapse whitespace

cmake_gen=(-G Ninja)

# ---------------------------------------------------------------------------
# CMake install. Configured with the default prefix, installed with --prefix:
# corio.pc must follow the install-time prefix.
t=$(now_ms)
prefix="$tmp/prefix"
run cmake-install cmake -S "$repo" -B "$tmp/corio-build" "${cmake_gen[@]}" \
    -DCORIO_BUILD_TESTS=OFF -DCORIO_BUILD_EXAMPLES=OFF \
    -DCORIO_BUILD_BENCHMARKS=OFF -DCORIO_HEADER_CHECK=OFF
run cmake-install cmake --install "$tmp/corio-build" --prefix "$prefix"
[ "$(ls "$prefix/include")" = corio ] ||
    fail "cmake-install: $prefix/include holds more than corio/: $(ls "$prefix/include" | tr '\n' ' ')"
stray="$(cd "$prefix/include" && find . ! -type d ! -name '*.hpp')"
[ -z "$stray" ] || fail "cmake-install: non-header files installed: $stray"
diff <(cd "$repo/include" && find . -name '*.hpp' | sort) \
     <(cd "$prefix/include" && find . -type f | sort) >/dev/null ||
    fail "cmake-install: installed headers differ from include/**/*.hpp"
for f in share/cmake/corio/corioConfig.cmake share/cmake/corio/corioConfigVersion.cmake \
         share/cmake/corio/corioTargets.cmake share/pkgconfig/corio.pc; do
    [ -f "$prefix/$f" ] || fail "cmake-install: $prefix/$f was not installed"
done
ok cmake-install "$t"

# ---------------------------------------------------------------------------
# find_package version rules: SameMajorVersion (0.1.0 satisfies 0.1 and 0.0.5,
# not 0.2 nor 1.0).
t=$(now_ms)
mkdir "$tmp/version-src"
cat >"$tmp/version-src/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.21)
project(corio_version_check LANGUAGES CXX)
foreach(v 0.1 0.1.0 0.0.5)
    find_package(corio ${v} CONFIG QUIET)
    if(NOT corio_FOUND)
        message(FATAL_ERROR "find_package(corio ${v}) failed")
    endif()
endforeach()
foreach(v 0.2 1.0)
    find_package(corio ${v} CONFIG QUIET)
    if(corio_FOUND)
        message(FATAL_ERROR "find_package(corio ${v}) accepted corio ${corio_VERSION}")
    endif()
endforeach()
EOF
run find_package-version cmake -S "$tmp/version-src" -B "$tmp/version-build" \
    "${cmake_gen[@]}" -DCMAKE_PREFIX_PATH="$prefix"
ok find_package-version "$t"

# ---------------------------------------------------------------------------
# pkg-config: exact flags, no -l (header-only), then a plain Makefile build.
t=$(now_ms)
export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
cflags="$(words "$(pkg-config --cflags corio)")"
libs="$(words "$(pkg-config --libs corio)")"
echo "      pkg-config --cflags corio: $cflags"
echo "      pkg-config --libs corio:   $libs"
[ "$cflags" = "-I$prefix/include -pthread" ] ||
    fail "pkg-config: --cflags gave '$cflags', expected '-I$prefix/include -pthread'"
case " $libs " in *" -l"*) fail "pkg-config: --libs has a -l flag: '$libs'" ;; esac
[ "$libs" = "-pthread" ] || fail "pkg-config: --libs gave '$libs', expected '-pthread'"
run pkg-config pkg-config --validate corio
cp -r "$here/pkg-config" "$tmp/pkg-config"
run pkg-config make -C "$tmp/pkg-config"
expect_output pkg-config "$tmp/pkg-config/app"
unset PKG_CONFIG_PATH
ok pkg-config "$t"

# ---------------------------------------------------------------------------
# CMake consumers. Built in place (sources in the repo, build dirs in $tmp).
t=$(now_ms)
run find_package cmake -S "$here/find_package" -B "$tmp/find_package" \
    "${cmake_gen[@]}" -DCMAKE_PREFIX_PATH="$prefix"
run find_package cmake --build "$tmp/find_package" -j "$jobs"
expect_output find_package "$tmp/find_package/app"
ok find_package "$t"

# add_subdirectory and FetchContent: corio is not the top-level project, so its
# options are all OFF and installing the consumer installs nothing of corio's.
for consumer in add_subdirectory fetchcontent; do
    t=$(now_ms)
    build="$tmp/$consumer"
    run "$consumer" cmake -S "$here/$consumer" -B "$build" "${cmake_gen[@]}"
    run "$consumer" cmake --build "$build" -j "$jobs"
    expect_output "$consumer" "$build/app"
    for opt in TESTS EXAMPLES BENCHMARKS; do
        grep -qx "CORIO_BUILD_$opt:BOOL=OFF" "$build/CMakeCache.txt" ||
            fail "$consumer: CORIO_BUILD_$opt is not OFF for a non-top-level corio"
    done
    for opt in WERROR INSTALL HEADER_CHECK; do
        grep -qx "CORIO_$opt:BOOL=OFF" "$build/CMakeCache.txt" ||
            fail "$consumer: CORIO_$opt is not OFF for a non-top-level corio"
    done
    run "$consumer" cmake --install "$build" --prefix "$tmp/$consumer-prefix"
    [ ! -e "$tmp/$consumer-prefix/include" ] && [ ! -e "$tmp/$consumer-prefix/share" ] ||
        fail "$consumer: installing the consumer installed corio's files too"
    ok "$consumer" "$t"
done

# ---------------------------------------------------------------------------
# meson install: the same headers and, but for the prefix, the same corio.pc.
t=$(now_ms)
mprefix="$tmp/meson-prefix"
run meson-install meson setup "$tmp/corio-meson" "$repo" --prefix "$mprefix" \
    -Dtests=false -Dexamples=false -Dbenchmarks=disabled
run meson-install meson install -C "$tmp/corio-meson"
diff <(cd "$prefix/include" && find . | sort) <(cd "$mprefix/include" && find . | sort) >/dev/null ||
    fail "meson-install: installs other headers than CMake does"
diff <(sed "s|$prefix|PREFIX|" "$prefix/share/pkgconfig/corio.pc") \
     <(sed "s|$mprefix|PREFIX|" "$mprefix/share/pkgconfig/corio.pc") >/dev/null ||
    fail "meson-install: its corio.pc differs from CMake's"
ok meson-install "$t"

# An installed corio (meson's), found through corio.pc only.
t=$(now_ms)
run meson-installed env PKG_CONFIG_PATH="$mprefix/share/pkgconfig" \
    meson setup "$tmp/meson-installed" "$here/meson-installed" --wrap-mode=nofallback
run meson-installed meson compile -C "$tmp/meson-installed"
expect_output meson-installed "$tmp/meson-installed/app"
ok meson-installed "$t"

# corio as a subproject: the example wrap plus subprojects/corio -> this repo.
# Fallback forced, so that an installed corio cannot stand in for it.
t=$(now_ms)
src="$tmp/meson-subproject-src"
cp -r "$here/meson-subproject" "$src"
mkdir "$src/subprojects"
cp "$repo/packaging/meson/corio.wrap" "$src/subprojects/corio.wrap"
ln -s "$repo" "$src/subprojects/corio"
run meson-subproject meson setup "$tmp/meson-subproject" "$src" --force-fallback-for=corio
run meson-subproject meson compile -C "$tmp/meson-subproject"
expect_output meson-subproject "$tmp/meson-subproject/app"
targets="$(meson introspect "$tmp/meson-subproject" --targets |
    python3 -c 'import json, sys; print(" ".join(t["name"] for t in json.load(sys.stdin)))')"
[ "$targets" = app ] || fail "meson-subproject: corio built targets of its own: $targets"
installed="$(meson introspect "$tmp/meson-subproject" --installed)"
[ "$installed" = "{}" ] || fail "meson-subproject: corio installs files as a subproject: $installed"
ok meson-subproject "$t"

# ---------------------------------------------------------------------------
# The single header (scripts/amalgamate, maintained separately): only -I of
# the directory holding corio.hpp, nothing from include/.
t=$(now_ms)
if [ -f "$repo/scripts/amalgamate" ]; then
    mkdir "$tmp/single"
    run single-header python3 "$repo/scripts/amalgamate" --output "$tmp/single/corio.hpp"
    [ -s "$tmp/single/corio.hpp" ] || fail "single-header: scripts/amalgamate wrote no $tmp/single/corio.hpp"
    # An installed corio on the default include path could satisfy these.
    ! grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]corio/' "$tmp/single/corio.hpp" ||
        fail "single-header: corio.hpp still includes corio's own headers (above)"
    run single-header "${CXX:-g++}" -std=c++20 -pthread -I "$tmp/single" \
        "$here/single-header/main.cpp" -o "$tmp/single/app"
    expect_output single-header "$tmp/single/app"
    ok single-header "$t"
else
    echo "skip  single-header          (scripts/amalgamate does not exist yet)"
    skipped+=(single-header)
fi

echo
[ ${#skipped[@]} -eq 0 ] || echo "skipped: ${skipped[*]}"
echo "$passed passed, 0 failed"
