#!/usr/bin/env bash
# Interop: examples/hello_http against clients no one here wrote: curl, wrk (Debian's curl and
# wrk packages) and raw sockets from python3.
#   tests/interop/hello_http.sh EXAMPLES_DIR
# Starts hello_http on a free port, then checks: the article's two routes (curl), HEAD, 404 and
# 405; keep-alive (curl reuses one connection for two URLs); HTTP/1.0 closing; pipelining
# (three requests in one packet answered in order); garbage answered with 400 and the
# connection closed; wrk with 100 keep-alive connections for 3 s without a socket error or a
# non-2xx answer; nothing reported on stderr; SIGTERM makes it exit 0.
set -euo pipefail

examples_dir=${1:?usage: $0 EXAMPLES_DIR}
server_bin="$examples_dir/hello_http"
work=$(mktemp -d)
server_pid=""
fail() {
    echo "hello_http interop: FAIL: $*" >&2
    if [[ -s $work/err ]]; then sed 's/^/  server stderr: /' "$work/err" >&2; fi
    exit 1
}
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
[[ -x $server_bin ]] || fail "$server_bin not found (build the examples first)"
for tool in curl wrk python3; do
    command -v "$tool" >/dev/null || fail "$tool not found (apt-get install -y curl wrk python3)"
done

"$server_bin" --port 0 >"$work/out" 2>"$work/err" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^Serving on .*:\([0-9][0-9]*\)$/\1/p' "$work/out" | head -n1)
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited early"
    sleep 0.1
done
[[ -n $port ]] || fail "no 'Serving on HOST:PORT' line: $(cat "$work/out")"
base="http://127.0.0.1:$port"
echo "hello_http interop: server on 127.0.0.1:$port"

curl_() { curl --silent --show-error --max-time 10 "$@"; }

# 1. The article's routes.
got=$(curl_ "$base/") || fail "curl / failed"
[[ $got == "Hello, Anonymous" ]] || fail "GET /: expected 'Hello, Anonymous', got '$got'"
got=$(curl_ "$base/John") || fail "curl /John failed"
[[ $got == "Hello, John" ]] || fail "GET /John: expected 'Hello, John', got '$got'"
got=$(curl_ "$base/J%C3%B6rg%20Z") || fail "curl /J%C3%B6rg%20Z failed"
[[ $got == "Hello, Jörg Z" ]] || fail "GET /J%C3%B6rg%20Z: expected 'Hello, Jörg Z', got '$got'"

# 2. Headers: Content-Type and Content-Length; HEAD has them without a body; 404; 405.
curl_ -D "$work/h" -o "$work/b" "$base/John" || fail "curl -D failed"
grep -qi '^Content-Type: text/plain; charset=utf-8' "$work/h" || fail "no text/plain Content-Type: $(cat "$work/h")"
grep -qi '^Content-Length: 11' "$work/h" || fail "no Content-Length: 11: $(cat "$work/h")"
curl_ --head -o "$work/head" "$base/John" || fail "curl --head failed"
grep -q '^HTTP/1.1 200 OK' "$work/head" || fail "HEAD: not 200: $(cat "$work/head")"
grep -qi '^Content-Length: 11' "$work/head" || fail "HEAD: no Content-Length: 11: $(cat "$work/head")"
code=$(curl_ -o /dev/null -w '%{http_code}' "$base/a/b") || fail "curl /a/b failed"
[[ $code == 404 ]] || fail "GET /a/b: expected 404, got $code"
code=$(curl_ -o /dev/null -w '%{http_code}' -X POST -d x=1 "$base/John") || fail "curl POST failed"
[[ $code == 405 ]] || fail "POST /John: expected 405, got $code"

# 3. Keep-alive: two URLs on one curl command line share one connection.
got=$(curl_ -v -w '|%{num_connects}\n' "$base/John" "$base/Anna" 2>"$work/verbose") ||
    fail "curl keep-alive failed"
[[ $got == $'Hello, John|1\nHello, Anna|0' ]] || fail "keep-alive: expected one connect, got '$got'"
grep -qi 're-using existing connection' "$work/verbose" || fail "keep-alive: curl did not reuse the connection"

# 4. Raw sockets: pipelining, HTTP/1.0, garbage.
python3 - "$port" <<'EOF' || fail "raw socket checks failed (see above)"
import socket, sys
port = int(sys.argv[1])

def exchange(payload):
    """Sends payload in one packet; returns everything until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(payload)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data

def check(cond, what, data):
    if not cond:
        print("FAIL:", what, repr(data[:600]), file=sys.stderr)
        sys.exit(1)

# Three pipelined requests in one packet; the last asks to close.
data = exchange(b"GET /One HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /Two HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /Three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
check(data.count(b"HTTP/1.1 200 OK\r\n") == 3, "pipelining: three 200 responses", data)
i1, i2, i3 = (data.find(b"\r\n\r\nHello, " + n) for n in (b"One", b"Two", b"Three"))
check(0 < i1 < i2 < i3, "pipelining: answers in order", data)
check(data.endswith(b"Hello, Three"), "pipelining: nothing after the last answer", data)

# HTTP/1.0 without keep-alive: one answer, then the server closes.
data = exchange(b"GET /Old HTTP/1.0\r\n\r\n")
check(data.startswith(b"HTTP/1.0 200 OK\r\n") and data.endswith(b"\r\n\r\nHello, Old"), "HTTP/1.0", data)

# Garbage: 400, then the server closes (exchange returns only once it has).
data = exchange(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http at all\r\n\r\n")
check(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), "garbage: 400", data)
check(b"Connection: close\r\n" in data, "garbage: Connection: close", data)
data = exchange(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
check(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), "bad header line: 400", data)
data = exchange(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
check(data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), "request line over 8190 bytes: 400", data)
data = exchange(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
check(data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), "header over 8190 bytes: 431", data)
EOF

# 5. Load: wrk, 100 keep-alive connections for 3 s. wrk prints "Socket errors: ..." and
#    "Non-2xx or 3xx responses: N" only when there are some.
wrk -c 100 -t 2 -d 3s --timeout 5s "$base/John" >"$work/wrk" 2>&1 || fail "wrk failed: $(cat "$work/wrk")"
cat "$work/wrk"
grep -q 'requests in' "$work/wrk" || fail "wrk: no summary"
! grep -q 'Socket errors' "$work/wrk" || fail "wrk reported socket errors"
! grep -q 'Non-2xx' "$work/wrk" || fail "wrk got non-2xx answers"
requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' "$work/wrk")
((requests > 100)) || fail "wrk: only $requests requests"
got=$(curl_ "$base/After") || fail "curl after wrk failed"
[[ $got == "Hello, After" ]] || fail "after wrk: got '$got'"

# 6. SIGTERM: exits 0, promptly, having reported nothing.
kill -TERM "$server_pid"
for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "still running 10 s after SIGTERM"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
[[ $rc == 0 ]] || fail "exit status $rc after SIGTERM"
[[ ! -s $work/err ]] || fail "the server reported errors"
echo "hello_http interop: ok ($requests requests from wrk)"
