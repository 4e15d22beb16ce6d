#!/usr/bin/env bash
# Interop: examples/dns_server against dig (Debian's dnsutils), a client no one here wrote.
#   tests/interop/dns_server.sh EXAMPLES_DIR
# Starts dns_server on a free port with a temporary zone file, then checks with dig: the right
# A record (+short), NXDOMAIN for an unknown name, NODATA for AAAA of a known name, a
# case-insensitive name; garbage datagrams (short, a loop of compression pointers, random
# bytes) do not kill it; SIGTERM makes it exit 0.
set -euo pipefail

examples_dir=${1:?usage: $0 EXAMPLES_DIR}
server_bin="$examples_dir/dns_server"
fail() { echo "dns_server interop: FAIL: $*" >&2; exit 1; }
[[ -x $server_bin ]] || fail "$server_bin not found (build the examples first)"
command -v dig >/dev/null || fail "dig not found (apt-get install -y dnsutils)"
command -v python3 >/dev/null || fail "python3 not found"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/zone" <<'EOF'
# name        IPv4
corio.test    10.1.2.3
Mixed.Test.   192.0.2.77
EOF

"$server_bin" --port 0 --zone "$work/zone" >"$work/out" 2>"$work/err" &
server_pid=$!

port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^Serving on .*:\([0-9][0-9]*\)$/\1/p' "$work/out" | head -n1)
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || fail "server exited early: $(cat "$work/err")"
    sleep 0.1
done
[[ -n $port ]] || fail "no 'Serving on HOST:PORT' line: $(cat "$work/out" "$work/err")"
echo "dns_server interop: server on 127.0.0.1:$port"

dig_() { timeout 10 dig @127.0.0.1 -p "$port" +tries=1 +time=2 "$@"; }

# 1. The right A record.
got=$(dig_ corio.test A +short) || fail "dig corio.test failed"
[[ $got == "10.1.2.3" ]] || fail "corio.test A: expected 10.1.2.3, got '$got'"
# Case-insensitive, and with EDNS off too.
got=$(dig_ MIXED.test A +short +noedns) || fail "dig MIXED.test failed"
[[ $got == "192.0.2.77" ]] || fail "MIXED.test A: expected 192.0.2.77, got '$got'"

# 2. NXDOMAIN for an unknown name; the AA flag on.
out=$(dig_ nothere.test A) || fail "dig nothere.test failed"
grep -q 'status: NXDOMAIN' <<<"$out" || fail "nothere.test: no NXDOMAIN in: $out"
grep -Eq 'flags: qr aa' <<<"$out" || fail "nothere.test: not authoritative: $out"

# 3. NODATA: a known name, another type.
out=$(dig_ corio.test AAAA) || fail "dig corio.test AAAA failed"
grep -q 'status: NOERROR' <<<"$out" || fail "corio.test AAAA: not NOERROR: $out"
grep -q 'ANSWER: 0' <<<"$out" || fail "corio.test AAAA: answers given: $out"

# 4. Garbage does not kill it: a short packet, a compression-pointer loop, random bytes, a
#    response packet, a huge-count header.
python3 - "$port" <<'EOF' || fail "garbage test: no FORMERR reply to a readable header"
import os, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
packets = [
    b"\x12",
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # self-pointer
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc",                    # label past end
    b"\x12\x34\x81\x80" + b"\x00" * 8,                                             # a response
    b"\x12\x34\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff",                           # huge counts
    b"",
] + [os.urandom(n) for n in (5, 12, 40, 300, 1500)]
for p in packets:
    s.sendto(p, ("127.0.0.1", port))
# The self-pointer query must get a FORMERR back (its header is readable).
s.settimeout(2)
s.sendto(packets[1], ("127.0.0.1", port))
while True:
    data, _ = s.recvfrom(65536)
    if data[:2] == b"\x12\x34" and len(data) >= 12 and data[3] & 0x0F == 1:
        break
EOF
kill -0 "$server_pid" 2>/dev/null || fail "server died on garbage: $(cat "$work/err")"
got=$(dig_ corio.test A +short) || fail "dig after garbage failed"
[[ $got == "10.1.2.3" ]] || fail "after garbage: expected 10.1.2.3, got '$got'"

# 5. SIGTERM: a clean exit 0.
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
[[ $status -eq 0 ]] || fail "exit status $status after SIGTERM: $(cat "$work/err")"
if grep -qi -e 'sanitizer' -e 'runtime error' "$work/err"; then fail "sanitizer report: $(cat "$work/err")"; fi
echo "dns_server interop: OK (A, case-insensitive, NXDOMAIN, NODATA, garbage survived, SIGTERM -> 0)"
