#!/usr/bin/env bash
# Side-by-side networking benchmark: TCP echo ping-pong on loopback against echo servers
# written for corio (protocols, streams), Asio, Tokio, asyncio and uvloop (Protocol, streams).
#
#   benchmarks/compare/run_net.sh [--duration S] [--warmup S] [--reps N] [NAME...]
#
# NAMEs pick rows by substring (e.g. `run_net.sh corio tokio`); default: every server.
# One load generator, echo_client.cpp (raw epoll, no runtime), drives every server: C
# connections, each sending a 64-byte message and waiting for its echo before the next.
# Each server is single-threaded, started once, given C=1 then C=100, each `--reps` times
# (default 3) for `--duration` seconds (default 2) after `--warmup` seconds (default 0.3);
# the summary keeps the best of the runs for each figure (highest rt/s, lowest p99, lowest
# server CPU), as run.sh does. With taskset (util-linux) and 2+ cores the server runs on
# CPU 1 and the client on CPU 0. The whole run takes about 2 minutes.
#
# Server CPU time is the time the server's threads ran (/proc/PID/task/*/schedstat) over the
# measured window, per round trip: the fairest figure on a small machine, where the client
# competes for the CPU. The client's own CPU share is printed too: near 100 % the client, not
# the server, limits the rate (compare the servers' CPU per round trip then).
#
# Tokio is skipped (with a note) when there is no cargo on PATH (see README.md: built offline
# from Debian's librust-tokio-dev). A server that fails to build or start gives a "failed" row;
# the other rows still run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/build/compare"
py=/usr/bin/python3   # Debian's Python: the one that sees python3-uvloop

duration=2
warmup=0.3
reps=3
filters=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --warmup) warmup="$2"; shift 2 ;;
        --reps) reps="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "run_net.sh: unknown option $1" >&2; exit 2 ;;
        *) filters+=("$1"); shift ;;
    esac
done

have_cargo=1
command -v cargo >/dev/null 2>&1 || have_cargo=0
pkgs=(g++ libasio-dev python3 python3-uvloop)
if [ "$have_cargo" -eq 1 ]; then pkgs+=(librust-tokio-dev); fi

# Install what is missing (Debian packages only), as run.sh does.
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

# ---- the servers: "name|command", in table order --------------------------------------------
servers=(
    "corio (protocol)|$out/corio_echo"
    "corio (streams)|$out/corio_echo --streams"
    "Asio|$out/asio_echo"
    "Tokio|$out/tokio/release/tokio_echo"
    "uvloop (protocol)|$py $here/asyncio_echo.py --loop uvloop"
    "uvloop (streams)|$py $here/asyncio_echo.py --loop uvloop --streams"
    "asyncio (protocol)|$py $here/asyncio_echo.py --loop asyncio"
    "asyncio (streams)|$py $here/asyncio_echo.py --loop asyncio --streams"
)
wanted() {
    [ "${#filters[@]}" -eq 0 ] && return 0
    local f
    for f in "${filters[@]}"; do
        case "${1,,}" in *"${f,,}"*) return 0 ;; esac
    done
    return 1
}
wants_any() {  # is any selected row's name matching $1?
    local s
    for s in "${servers[@]}"; do
        case "${s%%|*}" in *"$1"*) wanted "${s%%|*}" && return 0 ;; esac
    done
    return 1
}

# ---- build --------------------------------------------------------------------------------------
mkdir -p "$out"
declare -A build_failed=()
build() {  # build NAME-PATTERN COMMAND...: on failure, mark the rows matching NAME-PATTERN failed
    local pattern="$1"; shift
    if ! "$@"; then
        echo "== build failed: $pattern (its rows are skipped)" >&2
        build_failed[$pattern]=1
    fi
}
echo "== building $out/echo_client"
g++ -std=c++20 -O2 -DNDEBUG "$here/echo_client.cpp" -o "$out/echo_client"
if wants_any corio; then
    echo "== building $out/corio_echo"
    build corio g++ -std=c++20 -O2 -DNDEBUG -pthread -I "$root/include" "$here/corio_echo.cpp" -o "$out/corio_echo"
fi
if wants_any Asio; then
    echo "== building $out/asio_echo"
    build Asio g++ -std=c++20 -O2 -DNDEBUG -pthread "$here/asio_echo.cpp" -o "$out/asio_echo"
fi
tokio_note=""
if wants_any Tokio; then
    if [ "$have_cargo" -eq 1 ]; then
        echo "== building $out/tokio/release/tokio_echo (cargo, offline)"
        # In tokio_echo/: cargo reads .cargo/config.toml (the Debian source replacement) from the
        # current directory, not from --manifest-path.
        build Tokio bash -c "cd '$here/tokio_echo' && cargo build --release --offline --quiet --target-dir '$out/tokio'"
        if [ -f "$here/tokio_echo/Cargo.lock" ]; then
            tokio_version="$(awk '/^name = "tokio"$/ { getline; gsub(/"/, "", $3); print $3 }' \
                             "$here/tokio_echo/Cargo.lock")"
            tokio_note="Tokio $tokio_version ($(rustc --version | cut -d' ' -f1-2));"
        fi
    else
        echo "== no cargo on PATH: skipping Tokio (install Rust, e.g. rustup or apt-get install cargo)"
        build_failed[Tokio]=1
    fi
fi

asio_version="$(sed -n 's/^#define ASIO_VERSION [0-9]* \/\/ //p' /usr/include/asio/version.hpp)"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    pin_server=(taskset -c 1)
    pin_client=(taskset -c 0)
    pin_note="server on CPU 1, client on CPU 0"
else
    pin_server=()
    pin_client=()
    pin_note="not pinned (no taskset or 1 core)"
fi
echo "== $(uname -m), $(nproc) cores; g++ $(g++ -dumpfullversion); Asio $asio_version;" ${tokio_note:+"$tokio_note"} \
     "$("$py" --version); uvloop $("$py" -c 'import uvloop; print(uvloop.__version__)')"
echo "== echo ping-pong, 64 bytes; ${duration} s after ${warmup} s warm-up, best of $reps; $pin_note"

# ---- run ----------------------------------------------------------------------------------------
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        sleep 0.2
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Starts a server (command in $1) in the background; sets server_pid and port, or returns 1.
start_server() {
    local portfile="$out/echo_port.txt"
    : >"$portfile"
    # shellcheck disable=SC2086  # the command is split into words on purpose
    "${pin_server[@]}" $1 >"$portfile" 2>"$out/echo_server.err" &
    server_pid=$!
    local i
    for i in $(seq 100); do  # up to 10 s
        port="$(head -n1 "$portfile")"
        if [[ "$port" =~ ^[0-9]+$ ]]; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "# server did not start: $1" >&2
    sed 's/^/#   /' "$out/echo_server.err" >&2
    cleanup
    server_pid=""
    return 1
}
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    local i
    for i in $(seq 20); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# best[name,C,metric]: rt (max), mean, p99, cpu (min)
declare -A best=()
keep_best() {  # keep_best KEY VALUE max|min: keeps VALUE if better; true if it did
    local key="$1" v="$2" how="$3"
    [ "$v" = "-" ] && return 1
    if [ -z "${best[$key]:-}" ] ||
       awk -v a="$v" -v b="${best[$key]}" -v h="$how" 'BEGIN { exit !((h == "max") ? a > b : a < b) }'; then
        best[$key]="$v"
        return 0
    fi
    return 1
}

log="$out/net_results.txt"
: >"$log"
for entry in "${servers[@]}"; do
    name="${entry%%|*}"
    cmd="${entry#*|}"
    wanted "$name" || continue
    skip=""
    for pattern in "${!build_failed[@]}"; do
        case "$name" in *"$pattern"*) skip=1 ;; esac
    done
    if [ -n "$skip" ]; then best["$name,failed"]=1; continue; fi
    echo "== $name: $cmd"
    if ! start_server "$cmd"; then best["$name,failed"]=1; continue; fi
    for c in 1 100; do
        for r in $(seq "$reps"); do
            if ! line="$("${pin_client[@]}" "$out/echo_client" --port "$port" --connections "$c" \
                         --duration "$duration" --warmup "$warmup" --server-pid "$server_pid")"; then
                echo "# $name C=$c: the client failed" >&2
                best["$name,failed"]=1
                break 2
            fi
            echo "# $name run $r: $line" >&2
            # echo C=100 size=64 2.00 s: 123456 rt/s, mean 801.2 us, p99 1502.3 us, server_cpu 12.34 us/rt, client_cpu 97%
            read -r rt mean p99 cpu client < <(sed -E 's/.*: ([0-9.]+) rt\/s, mean ([0-9.]+) us, p99 ([0-9.]+) us, server_cpu ([0-9.]+|-)( us\/rt)?, client_cpu ([0-9]+)%.*/\1 \2 \3 \4 \6/' <<<"$line")
            # The client's CPU share in the run with the best rate: near 100 % it is the limit.
            if keep_best "$name,$c,rt" "$rt" max; then best["$name,$c,client"]="$client"; fi
            keep_best "$name,$c,mean" "$mean" min || true
            keep_best "$name,$c,p99" "$p99" min || true
            keep_best "$name,$c,cpu" "$cpu" min || true
        done
        if [ -n "${best[$name,$c,rt]:-}" ]; then
            echo "$name C=$c: ${best[$name,$c,rt]} rt/s, mean ${best[$name,$c,mean]} us, p99 ${best[$name,$c,p99]} us, server CPU ${best[$name,$c,cpu]:--} us/rt (client CPU ${best[$name,$c,client]:--} %)" | tee -a "$log"
        fi
    done
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "# $name: the server died" >&2
        sed 's/^/#   /' "$out/echo_server.err" >&2
        best["$name,failed"]=1
    fi
    stop_server
done

# ---- summary ------------------------------------------------------------------------------------
echo "== summary (best of $reps; compare ratios within one run; server CPU = µs per round trip)"
fmt() { [ -n "${1:-}" ] && printf "%'.0f" "$1" 2>/dev/null || printf -- "-"; }
fmt1() { [ -n "${1:-}" ] && printf "%'.1f" "$1" 2>/dev/null || printf -- "-"; }
printf '| %-18s | %10s | %10s | %12s | %12s | %14s | %16s |\n' runtime "C=1 rt/s" "C=100 rt/s" "C=1 p99 us" "C=100 p99 us" "CPU us/rt C=1" "CPU us/rt C=100"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..20})" "---:" "---:" "---:" "---:" "---:" "---:"
for entry in "${servers[@]}"; do
    name="${entry%%|*}"
    wanted "$name" || continue
    if [ -n "${best[$name,failed]:-}" ] && [ -z "${best[$name,100,rt]:-}" ]; then
        printf '| %-18s | %10s | %10s | %12s | %12s | %14s | %16s |\n' "$name" failed - - - - -
        continue
    fi
    printf '| %-18s | %10s | %10s | %12s | %12s | %14s | %16s |\n' "$name" \
        "$(fmt "${best[$name,1,rt]:-}")" "$(fmt "${best[$name,100,rt]:-}")" \
        "$(fmt "${best[$name,1,p99]:-}")" "$(fmt "${best[$name,100,p99]:-}")" \
        "$(fmt1 "${best[$name,1,cpu]:-}")" "$(fmt1 "${best[$name,100,cpu]:-}")"
done
