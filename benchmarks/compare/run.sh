#!/usr/bin/env bash
# Side-by-side core benchmarks: corio (optional), Asio, asyncio, uvloop.
#
#   benchmarks/compare/run.sh [path/to/bench_core]
#
# $1, if given, is corio's Google Benchmark binary (e.g.
# build/bench/benchmarks/bench_core); its output is printed as is.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/build/compare"
py=/usr/bin/python3   # Debian's Python: the one that sees python3-uvloop

# Install what is missing (Debian packages only).
missing=()
for pkg in g++ libasio-dev python3 python3-uvloop; do
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

asio_version="$(sed -n 's/^#define ASIO_VERSION [0-9]* \/\/ //p' /usr/include/asio/version.hpp)"
echo "== $(uname -m), $(nproc) cores; g++ $(g++ -dumpfullversion); Asio $asio_version;" \
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
echo "== asyncio"
"$py" "$here/asyncio_core.py" --loop asyncio | tee -a "$log"
echo "== uvloop"
"$py" "$here/asyncio_core.py" --loop uvloop | tee -a "$log"

echo "== summary (best of 3; compare ratios within one run)"
for w in spawn switch timers; do grep " $w " "$log"; done
