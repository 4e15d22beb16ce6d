#!/usr/bin/env bash
# Interop: examples/fetch_http against python3's http.server, a server no one here wrote.
#   tests/interop/fetch_http.sh EXAMPLES_DIR
# Serves a temporary directory with `python3 -m http.server` and checks that fetch_http prints
# a known file byte for byte, follows http.server's redirect of a directory (/dir -> /dir/), and
# exits non-zero with a message for a 404, a refused connection, an https:// URL and, with
# --timeout 1, a server that accepts and never answers ("timed out"). A raw python3 server adds
# the two other ways a body can be framed: chunked transfer-encoding and end of connection.
set -euo pipefail

examples_dir=${1:?usage: $0 EXAMPLES_DIR}
fetch_bin="$examples_dir/fetch_http"
work=$(mktemp -d)
pids=()
fail() { echo "fetch_http interop: FAIL: $*" >&2; exit 1; }
cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        { wait "$p"; } 2>/dev/null || true # no "Terminated" job message
    done
    rm -rf "$work"
}
trap cleanup EXIT
[[ -x $fetch_bin ]] || fail "$fetch_bin not found (build the examples first)"
command -v python3 >/dev/null || fail "python3 not found"

# Waits for a line matching a sed pattern that captures the port in file $1; prints the port.
wait_port() {
    local file=$1 pattern=$2 pid=$3 port=""
    for _ in $(seq 1 150); do
        port=$(sed -n "$pattern" "$file" | head -n1)
        [[ -n $port ]] && break
        kill -0 "$pid" 2>/dev/null || fail "server exited early: $(cat "$file")"
        sleep 0.1
    done
    [[ -n $port ]] || fail "no port line in: $(cat "$file")"
    echo "$port"
}

# The served tree: a text file, a binary file, a directory (its index gets a redirect).
mkdir -p "$work/www/dir"
printf 'Hello from http.server\nline two\n' >"$work/www/hello.txt"
head -c 300000 /dev/urandom >"$work/www/random.bin"
printf 'index of dir\n' >"$work/www/dir/index.html"

(cd "$work/www" && exec python3 -u -m http.server --bind 127.0.0.1 0) >"$work/httpd.out" 2>&1 &
pids+=($!)
port=$(wait_port "$work/httpd.out" 's/^Serving HTTP on .* port \([0-9][0-9]*\) .*/\1/p' "${pids[-1]}")
base="http://127.0.0.1:$port"
echo "fetch_http interop: http.server on 127.0.0.1:$port"

run() { timeout 30 "$fetch_bin" "$@"; }

# 1. The known files, byte for byte.
run "$base/hello.txt" >"$work/got" 2>"$work/err" || fail "hello.txt: exit $?: $(cat "$work/err")"
cmp -s "$work/got" "$work/www/hello.txt" || fail "hello.txt: printed '$(cat "$work/got")'"
run "$base/random.bin" --timeout 20 >"$work/got" 2>"$work/err" || fail "random.bin: $(cat "$work/err")"
cmp -s "$work/got" "$work/www/random.bin" || fail "random.bin differs"
# http.server answers /dir with 301 Location: /dir/ (aiohttp's get follows redirects; so do we).
run "$base/dir" >"$work/got" 2>"$work/err" || fail "dir: $(cat "$work/err")"
cmp -s "$work/got" "$work/www/dir/index.html" || fail "dir: printed '$(cat "$work/got")'"

# 2. A 404: non-zero, the status on stderr, nothing on stdout.
rc=0
run "$base/missing.txt" >"$work/got" 2>"$work/err" || rc=$?
[[ $rc != 0 ]] || fail "404: exit status 0"
grep -q '404' "$work/err" || fail "404: no status in the message: $(cat "$work/err")"
[[ ! -s $work/got ]] || fail "404: printed a body"

# 3. A refused connection: a port that was free a moment ago.
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
rc=0
run "http://127.0.0.1:$free_port/" >/dev/null 2>"$work/err" || rc=$?
[[ $rc != 0 ]] || fail "refused: exit status 0"
grep -qi 'refused' "$work/err" || fail "refused: unexpected message: $(cat "$work/err")"

# 4. https:// and a bad URL: a clear error, no connection attempted.
rc=0
run "https://127.0.0.1:$port/" >/dev/null 2>"$work/err" || rc=$?
[[ $rc != 0 ]] || fail "https: exit status 0"
grep -q 'https' "$work/err" || fail "https: unexpected message: $(cat "$work/err")"
rc=0
run "not a url" >/dev/null 2>"$work/err" || rc=$?
[[ $rc != 0 ]] || fail "bad URL: exit status 0"

# 5. A server that accepts and never answers: --timeout 1 gives up saying so.
python3 -u -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print("port", s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)  # read nothing, answer nothing
' >"$work/silent.out" 2>&1 &
pids+=($!)
silent_port=$(wait_port "$work/silent.out" 's/^port \([0-9][0-9]*\)$/\1/p' "${pids[-1]}")
start=$(date +%s)
rc=0
run "http://127.0.0.1:$silent_port/" --timeout 1 >/dev/null 2>"$work/err" || rc=$?
elapsed=$(($(date +%s) - start))
[[ $rc != 0 && $rc != 124 ]] || fail "silent server: exit status $rc"
grep -q 'timed out' "$work/err" || fail "silent server: no 'timed out' in: $(cat "$work/err")"
((elapsed < 15)) || fail "silent server: took ${elapsed}s with --timeout 1"

# 6. Chunked transfer-encoding and a body ended by closing the connection.
python3 -u -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)
print("port", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    req = b""
    while b"\r\n\r\n" not in req:
        d = c.recv(4096)
        if not d: break
        req += d
    if req.startswith(b"GET /chunked "):
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"6;ext=1\r\nchunk \r\n5\r\none, \r\nA\r\nchunk two\n\r\n0\r\nX-Trailer: t\r\n\r\n")
    else:
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\n")
    c.close()
' >"$work/raw.out" 2>&1 &
pids+=($!)
raw_port=$(wait_port "$work/raw.out" 's/^port \([0-9][0-9]*\)$/\1/p' "${pids[-1]}")
got=$(run "http://127.0.0.1:$raw_port/chunked" 2>"$work/err") || fail "chunked: $(cat "$work/err")"
[[ $got == $'chunk one, chunk two' ]] || fail "chunked: got '$got'"
got=$(run "http://127.0.0.1:$raw_port/eof" 2>"$work/err") || fail "until EOF: $(cat "$work/err")"
[[ $got == "until the end" ]] || fail "until EOF: got '$got'"

echo "fetch_http interop: ok"
