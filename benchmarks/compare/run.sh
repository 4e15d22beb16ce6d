#!/usr/bin/env bash
# Side-by-side core benchmarks: corio (optional), Asio, Tokio, asyncio, uvloop.
#
#   benchmarks/compare/run.sh [path/to/bench_core]
#
# $1, if given, is corio's Google Benchmark binary (e.g.
# build/bench/benchmarks/bench_core); its output is printed as is.
# Tokio is skipped (with a note) when there is no cargo on PATH; it is built
# offline against Debian's crate sources (librust-tokio-dev), see README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/build/compare"
py=/usr/bin/python3   # Debian's Python: the one that sees python3-uvloop

have_cargo=1
command -v cargo >/dev/null 2>&1 || have_cargo=0
pkgs=(g++ libasio-dev python3 python3-uvloop)
if [ "$have_cargo" -eq 1 ]; then pkgs+=(librust-tokio-dev); fi

# Install what is missing (Debian packages only).
missing=()
for pkg in "${pkgs[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
fi

echo "== building $out/asio_core"
mkdir -p "$out"
g++ -std=c++20 -O2 -DNDEBUG -pthread "$here/asio_core.cpp" -o "$out/asio_core"

if [ "$have_cargo" -eq 1 ]; then
    echo "== building $out/tokio/release/tokio_core (cargo, offline)"
    # In tokio_core/: cargo reads tokio_core/.cargo/config.toml (the Debian
    # source replacement) from the current directory, not from --manifest-path.
    (cd "$here/tokio_core" && cargo build --release --offline --quiet --target-dir "$out/tokio")
    tokio_version="$(awk '/^name = "tokio"$/ { getline; gsub(/"/, "", $3); print $3 }' \
                     "$here/tokio_core/Cargo.lock")"
    tokio_note="Tokio $tokio_version ($(rustc --version | cut -d' ' -f1-2));"
else
    echo "== no cargo on PATH: skipping Tokio (install Rust, e.g. rustup or apt-get install cargo)"
    tokio_note=""
fi

asio_version="$(sed -n 's/^#define ASIO_VERSION [0-9]* \/\/ //p' /usr/include/asio/version.hpp)"
echo "== $(uname -m), $(nproc) cores; g++ $(g++ -dumpfullversion); Asio $asio_version;" ${tokio_note:+"$tokio_note"} \
     "$("$py" --version); uvloop $("$py" -c 'import uvloop; print(uvloop.__version__)')"

if [ $# -ge 1 ]; then
    echo "== corio: $1"
    "$1" --benchmark_format=console
fi

# Result lines go to stdout (also kept in $log for the summary); per-run
# notes ("# ...") go to stderr.
log="$out/results.txt"
: >"$log"
echo "== asio"
"$out/asio_core" | tee -a "$log"
if [ "$have_cargo" -eq 1 ]; then
    echo "== tokio"
    "$out/tokio/release/tokio_core" | tee -a "$log"
fi
echo "== asyncio"
"$py" "$here/asyncio_core.py" --loop asyncio | tee -a "$log"
echo "== uvloop"
"$py" "$here/asyncio_core.py" --loop uvloop | tee -a "$log"

echo "== summary (best of 3; compare ratios within one run)"
for w in spawn switch timers; do grep " $w " "$log"; done
