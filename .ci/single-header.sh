#!/usr/bin/env bash
# CI stage for what packaging/ ships besides the CMake/Meson builds:
#   - the checked-in single header is current and equivalent to <corio/corio.hpp>,
#     and a program using only it builds (-Werror) and runs with g++ and clang++-16;
#   - the Conan recipe runs (offline, against stubs: CI cannot install Conan);
#   - the vcpkg port's manifest is valid and its portfile's assumptions hold.
#   bash .ci/single-header.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "-- single_include/corio.hpp is up to date"
python3 scripts/amalgamate --check

echo "-- it preprocesses to the same code as <corio/corio.hpp>"
# Catches an amalgamation that reorders or drops code even when it still compiles. Blank
# lines are the only expected difference (line markers are off with -P).
printf '#include <corio/corio.hpp>\n' >"$tmp/headers.cpp"
printf '#include <corio.hpp>\n' >"$tmp/single.cpp"
g++ -std=c++20 -E -P -I include "$tmp/headers.cpp" | grep -v '^[[:space:]]*$' >"$tmp/headers.i"
g++ -std=c++20 -E -P -I single_include "$tmp/single.cpp" | grep -v '^[[:space:]]*$' >"$tmp/single.i"
if ! cmp -s "$tmp/headers.i" "$tmp/single.i"; then
    echo "single-header: single_include/corio.hpp and include/corio/ preprocess differently:" >&2
    diff "$tmp/headers.i" "$tmp/single.i" | head -n 20 >&2
    exit 1
fi

for cxx in g++ clang++-16; do
    echo "-- smoke program with $cxx, only -I single_include"
    "$cxx" -std=c++20 -Wall -Wextra -Werror -pthread -I single_include \
        packaging/single_header_smoke.cpp -o "$tmp/smoke-$cxx"
    "$tmp/smoke-$cxx"
done

echo "-- conan recipe and vcpkg port (offline)"
# Syntax of the Python files first, without leaving __pycache__ in the tree.
python3 -c 'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' \
    packaging/conan/conanfile.py packaging/conan/test_package/conanfile.py \
    packaging/check_recipes.py
python3 -m json.tool packaging/vcpkg/ports/corio/vcpkg.json >/dev/null
python3 packaging/check_recipes.py

echo "-- install as the vcpkg port does; build the conan test_package against it"
# The config must land where the portfile's vcpkg_cmake_config_fixup looks for it; the
# test_package uses the names the Conan recipe promises, the same as corio's own install.
cmake -S . -B "$tmp/build" -DCMAKE_INSTALL_PREFIX="$tmp/prefix" \
    -DCORIO_BUILD_TESTS=OFF -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCHMARKS=OFF \
    -DCORIO_INSTALL=ON >/dev/null
cmake --install "$tmp/build" >/dev/null
config="$tmp/prefix/share/cmake/corio/corioConfig.cmake"
if [ ! -f "$config" ]; then
    echo "single-header: no share/cmake/corio/corioConfig.cmake after install:" \
         "update CONFIG_PATH in packaging/vcpkg/ports/corio/portfile.cmake" >&2
    exit 1
fi
cmake -S packaging/conan/test_package -B "$tmp/test_package" \
    -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/test_package" >/dev/null
"$tmp/test_package/test_package"

echo "single-header: ok"
