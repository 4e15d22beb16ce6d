#!/usr/bin/env bash
# Interop test of examples/sort_service against a client no one here wrote: Python's asyncio
# (tests/interop/sort_client.py, standard library only), plus the example's own --client.
#
# usage: tests/interop/sort_service.sh EXAMPLES_DIR     (the directory of the built examples)
#
# Starts the server on a free port, then checks: the article's request and exact Python-format
# answers; 20 concurrent Python clients; the C++ client; refused requests (garbage, nested
# arrays, strings, NaN, over the size limit, cut short, hang-ups), each answered by closing the
# connection while the server keeps serving; a short request answered while a long sort runs
# (the sort is off the loop); SIGTERM during a long sort and SIGINT both exit 0 promptly.
# Needs: python3 (3.7+), timeout (coreutils).
set -euo pipefail

examples=${1:?usage: $0 EXAMPLES_DIR}
server_bin="$examples/sort_service"
client_py="$(cd "$(dirname "$0")" && pwd)/sort_client.py"
work=$(mktemp -d)
server_pid=""
bg_pids=()

fail() {
    echo "sort_service interop: FAIL: $*" >&2
    for f in "$work"/server*.out "$work"/server*.err; do
        [ -s "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}
cleanup() {
    local p
    for p in "$server_pid" "${bg_pids[@]}"; do
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    [ -n "${KEEP_WORK:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

[ -x "$server_bin" ] || fail "$server_bin is not built"
command -v python3 >/dev/null || fail "python3 is needed"

# start_server NAME ARGS...: starts the server, sets server_pid and port.
start_server() {
    local name=$1
    shift
    "$server_bin" --port 0 "$@" >"$work/$name.out" 2>"$work/$name.err" &
    server_pid=$!
    local i line=""
    for ((i = 0; i < 100; i++)); do
        line=$(grep -m1 '^Serving on ' "$work/$name.out" || true)
        [ -n "$line" ] && break
        kill -0 "$server_pid" 2>/dev/null || fail "$name exited before serving"
        sleep 0.1
    done
    [ -n "$line" ] || fail "$name printed no 'Serving on HOST:PORT' in 10 s"
    port=${line##*:}
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] || fail "bad 'Serving on' line: $line"
    host=${line#Serving on }
    host=${host%:*}
    [ "$host" = 127.0.0.1 ] || fail "expected host 127.0.0.1 by default, got $host"
}

# stop_server SIGNAL: sends it, expects exit 0 within 10 s.
stop_server() {
    local sig=$1 i rc
    kill "-$sig" "$server_pid"
    for ((i = 0; i < 100; i++)); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$server_pid" 2>/dev/null && fail "the server did not exit within 10 s of SIG$sig"
    rc=0
    wait "$server_pid" || rc=$?
    server_pid=""
    [ "$rc" -eq 0 ] || fail "the server exited $rc after SIG$sig (expected 0)"
}

py() { timeout 120 python3 "$client_py" 127.0.0.1 "$port" "$@" || fail "sort_client.py $*"; }

# --- --help and usage errors -----------------------------------------------------------------
"$server_bin" --help | grep -q -- '--client' || fail "--help"
rc=0; "$server_bin" --bogus 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "an unknown argument exits $rc (expected 2)"

# --- the server, Python clients ------------------------------------------------------------
start_server server
echo "sort_service listening on port $port"
py check
py concurrent 20

# --- the C++ client ------------------------------------------------------------------------
out=$(echo '[5, 3, 9, 1, -2.5, 1e3]' | timeout 30 "$server_bin" --client --port "$port") ||
    fail "sort_service --client failed"
[ "$out" = "[-2.5, 1, 3, 5, 9, 1000.0]" ] || fail "--client printed '$out'"
out=$(printf ' [ ]\n' | timeout 30 "$server_bin" --client --host 127.0.0.1 --port "$port") ||
    fail "--client with []"
[ "$out" = "[]" ] || fail "--client [] printed '$out'"
rc=0
echo '[1, [2]]' | timeout 30 "$server_bin" --client --port "$port" >/dev/null 2>"$work/client.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "not a JSON array of numbers" "$work/client.err" ||
    fail "--client with a nested array: exit $rc, $(cat "$work/client.err")"
echo "C++ client: ok"

# --- refused requests: the connection closes, the server keeps serving -----------------------
for kind in garbage nested string nan trailing empty binary short oversize:16777216; do
    py refused "$kind"
done
py hangup
py check
grep -q "bad request at offset 4: expected a number, found '\['" "$work/server.err" ||
    fail "no error line for the nested array on the server's stderr"
grep -q "16777217 bytes refused" "$work/server.err" || fail "no error line for the oversize request"
grep -q "hung up" "$work/server.err" || fail "no error line for the hang-ups"
grep -q '^Received connection$' "$work/server.out" && grep -q '^Sorted list$' "$work/server.out" &&
    grep -q '^Connection closed$' "$work/server.out" || fail "the article's prints are missing"

# --- the loop stays responsive while a sort runs ---------------------------------------------
py responsive 2000

# --- SIGTERM while a long sort runs: exit 0, promptly ------------------------------------------
# (200000 numbers in reverse: hours of gnome sort, so exiting at all shows the sort was abandoned)
received=$(grep -c '^Received connection$' "$work/server.out")
timeout 60 python3 "$client_py" 127.0.0.1 "$port" long 200000 &
bg_pids+=($!)
for ((i = 0; i < 100; i++)); do
    [ "$(grep -c '^Received connection$' "$work/server.out")" -gt "$received" ] && break
    sleep 0.1
done
[ "$i" -lt 100 ] || fail "the long request did not reach the server within 10 s"
sleep 0.5 # it is read, parsed, and being sorted
stop_server TERM
echo "SIGTERM during a long sort: exit 0"

# --- the C++ client against a port nothing listens on ----------------------------------------
rc=0
echo '[1]' | timeout 30 "$server_bin" --client --port "$port" >/dev/null 2>"$work/client.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "connecting to 127.0.0.1:$port" "$work/client.err" ||
    fail "--client without a server: exit $rc, $(cat "$work/client.err")"

# --- SIGINT, and a smaller --max-size --------------------------------------------------------
start_server server2 --max-size 10
py refused oversize:10
out=$(echo '[3,2,1]' | timeout 30 "$server_bin" --client --port "$port") || fail "--client, --max-size 10"
[ "$out" = "[1, 2, 3]" ] || fail "--client printed '$out'"
stop_server INT

echo "sort_service interop: all passed"
