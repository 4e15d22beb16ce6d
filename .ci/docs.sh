#!/usr/bin/env bash
# corio's documentation checks:   bash .ci/docs.sh
#
#   1. the API reference: doxygen (Doxyfile) into build/docs/html; any warning fails
#   2. every docs/snippets/*.cpp compiles (g++ -std=c++20 -Wall -Wextra -Werror) and runs; if
#      the file has `// out: ...` lines, its standard output must be exactly those lines
#   3. scripts/check-readme-examples: the C++ blocks of README.md and docs/*.md are the marked
#      regions of real files
#
# Installs nothing: needs doxygen, g++ (or $CXX) and python3 (scripts/install-deps ci).
set -euo pipefail
cd "$(dirname "$0")/.."

cxx="${CXX:-g++}"
out_dir=build/docs
for tool in doxygen "$cxx" python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "docs: $tool not found (Debian: scripts/install-deps ci)" >&2
        exit 1
    fi
done

echo "-- API reference (doxygen $(doxygen --version))"
# The version shown in the reference is the one CMakeLists.txt declares.
CORIO_VERSION="$(python3 -c '
import re, sys
m = re.search(r"project\(\s*corio\b[^)]*?\bVERSION\s+([0-9][0-9.]*)", open("CMakeLists.txt").read())
print(m.group(1) if m else "")')"
export CORIO_VERSION
rm -rf "$out_dir/html"
if ! doxygen Doxyfile; then
    echo "docs: doxygen reported warnings (above); fix the /// comments or the Doxyfile" >&2
    exit 1
fi
echo "   $out_dir/html/index.html"

echo "-- snippets ($cxx)"
mkdir -p "$out_dir/snippets"
shopt -s nullglob
snippets=(docs/snippets/*.cpp)
if [ ${#snippets[@]} -eq 0 ]; then
    echo "docs: no docs/snippets/*.cpp" >&2
    exit 1
fi
failed=0
for src in "${snippets[@]}"; do
    name="$(basename "$src" .cpp)"
    exe="$out_dir/snippets/$name"
    if ! "$cxx" -std=c++20 -Wall -Wextra -Werror -pthread -Iinclude "$src" -o "$exe"; then
        echo "   FAILED to compile: $src" >&2
        failed=$((failed + 1))
        continue
    fi
    if ! timeout 60 "$exe" >"$exe.out" </dev/null; then
        echo "   FAILED to run: $src (exit status above)" >&2
        cat "$exe.out" >&2
        failed=$((failed + 1))
        continue
    fi
    if grep -q '^// out:' "$src"; then
        sed -n 's|^// out: \{0,1\}||p' "$src" >"$exe.expected"
        if ! diff -u --label "$src (// out: lines)" --label "$name's output" \
                "$exe.expected" "$exe.out" >&2; then
            echo "   FAILED: $src printed something else than its // out: lines" >&2
            failed=$((failed + 1))
            continue
        fi
    fi
    echo "   ok  $src"
done
if [ "$failed" -ne 0 ]; then
    echo "docs: $failed of ${#snippets[@]} snippet(s) failed" >&2
    exit 1
fi

echo "-- README and docs code blocks"
python3 scripts/check-readme-examples

echo "docs: all checks passed"
