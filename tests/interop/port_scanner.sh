#!/usr/bin/env bash
# Interop test of examples/port_scanner: Python (standard library only) opens listeners on
# 127.0.0.1, and the scanner must report exactly those ports — no more, no less.
#
# usage: tests/interop/port_scanner.sh EXAMPLES_DIR     (the directory of the built examples)
#
# So that nothing else can listen inside the scanned range, the Python helper takes a block of
# 10 consecutive ports below the ephemeral range: it listens on 3 of them and binds the other 7
# without listening (a connection to those is refused). It also takes, if it can, two ports of
# named services above 1024 (listening on one, binding the other) for --services, and a
# listener whose accept queue is full, where a connection attempt hangs until --timeout.
# Needs: python3, timeout (coreutils).
set -euo pipefail

examples=${1:?usage: $0 EXAMPLES_DIR}
scanner="$examples/port_scanner"
work=$(mktemp -d)
helper_pid=""

fail() {
    echo "port_scanner interop: FAIL: $*" >&2
    exit 1
}
cleanup() {
    [ -n "$helper_pid" ] && kill -KILL "$helper_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

[ -x "$scanner" ] || fail "$scanner is not built"
command -v python3 >/dev/null || fail "python3 is needed"

# The listeners. Writes "KEY VALUE" lines to $work/info once everything is set up, then stays
# alive (holding the sockets) until killed.
cat >"$work/listeners.py" <<'EOF'
import os, random, socket, sys, time

info = []
keep = []

def sock():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    keep.append(s)
    return s

# 10 consecutive ports, all ours: 3 listening, 7 only bound (refused).
rng = random.Random()
for attempt in range(200):
    base = rng.randrange(20000, 30000)
    block = []
    try:
        for p in range(base, base + 10):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            block.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        for s in block:
            s.close()
        continue
    keep.extend(block)
    listening = sorted(rng.sample(range(base, base + 10), 3))
    for s in block:
        if s.getsockname()[1] in listening:
            s.listen(16)
    info.append(f"base {base}")
    info.append("listening " + ",".join(map(str, listening)))
    break
else:
    sys.exit("could not reserve 10 consecutive ports")

# Two named services above 1024: one listening, one bound only.
names = []
for name in ("postgresql", "mysql", "x11", "svn", "git", "amqp", "redis", "mongodb",
             "http-alt", "webcache", "tproxy", "gds-db", "iiimsf", "zope"):
    try:
        port = socket.getservbyname(name, "tcp")
    except OSError:
        continue
    if port <= 1024 or any(port == p for _, p in names):
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    keep.append(s)
    names.append((name, port))
    if len(names) == 1:
        s.listen(16)
    if len(names) == 2:
        break
if len(names) == 2:
    info.append(f"service_open {names[0][0]} {names[0][1]}")
    info.append(f"service_closed {names[1][0]} {names[1][1]}")

# A tarpit: a listener whose accept queue is full drops new SYNs (Linux), so a connection
# attempt hangs until the scanner's timeout. Only offered if it really hangs here.
tar = sock()
tar.bind(("127.0.0.1", 0))
tar.listen(0)
tar_port = tar.getsockname()[1]
fillers = []
hangs = False
for i in range(8):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(0.5)
    try:
        c.connect(("127.0.0.1", tar_port))
        fillers.append(c)
    except (socket.timeout, OSError):
        c.close()
        hangs = True
        break
keep.extend(fillers)
if hangs:
    info.append(f"tarpit {tar_port}")

tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("\n".join(info) + "\n")
os.rename(tmp, sys.argv[1])
while True:
    time.sleep(60)
EOF
python3 "$work/listeners.py" "$work/info" &
helper_pid=$!
for ((i = 0; i < 100; i++)); do
    [ -f "$work/info" ] && break
    kill -0 "$helper_pid" 2>/dev/null || fail "the Python listeners failed to start"
    sleep 0.1
done
[ -f "$work/info" ] || fail "the Python listeners did not start within 10 s"
base=$(awk '$1 == "base" {print $2}' "$work/info")
listening=$(awk '$1 == "listening" {print $2}' "$work/info")
last=$((base + 9))
echo "listeners on 127.0.0.1: $listening (ports $base-$last reserved)"

scan() { timeout 60 "$scanner" "$@" || fail "port_scanner $* exited $?"; }

# --- a range over two hosts: exactly our listeners; 127.0.0.2 has none -----------------------
out=$(scan --hosts 127.0.0.1,127.0.0.2 --ports "$base-$last" --timeout 3)
expected="127.0.0.1: $listening
127.0.0.2:"
[ "$out" = "$expected" ] || fail "range scan printed:
$out
expected:
$expected"

# --- the same one at a time (--limit 1), with a list and single ports ------------------------
first=${listening%%,*}
out=$(scan --hosts 127.0.0.1 --ports "$first,$base-$((base + 4)),$((base + 5))-$last,$first" --limit 1)
[ "$out" = "127.0.0.1: $listening" ] || fail "--limit 1 scan printed: $out"

# --- closed ports only ---------------------------------------------------------------------
closed=""
for ((p = base; p <= last; p++)); do
    [[ ",$listening," == *",$p,"* ]] || closed="$closed${closed:+,}$p"
done
out=$(scan --hosts 127.0.0.1 --ports "$closed" --verbose 2>"$work/verbose")
[ "$out" = "127.0.0.1:" ] || fail "a scan of closed ports printed: $out"
[ "$(grep -c 'closed: .*errno=' "$work/verbose")" -eq 7 ] ||
    fail "--verbose should give 7 reasons (refused, errno=...):
$(cat "$work/verbose")"
echo "ranges, lists, --limit 1, closed ports: ok"

# --- --services -------------------------------------------------------------------------------
if grep -q '^service_open ' "$work/info"; then
    read -r _ open_name open_port < <(grep '^service_open ' "$work/info")
    read -r _ closed_name _ < <(grep '^service_closed ' "$work/info")
    out=$(scan --hosts 127.0.0.1 --services "$closed_name,$open_name")
    [ "$out" = "127.0.0.1: $open_port" ] || fail "--services $closed_name,$open_name printed: $out"
    echo "--services $open_name ($open_port, listening) and $closed_name (refused): ok"
else
    echo "--services: skipped (no free service port above 1024)"
fi
rc=0
"$scanner" --hosts 127.0.0.1 --services no-such-service-here 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "an unknown service exits $rc (expected 2)"

# --- a connection attempt that hangs: closed after --timeout ---------------------------------
if grep -q '^tarpit ' "$work/info"; then
    tarpit=$(awk '$1 == "tarpit" {print $2}' "$work/info")
    out=$(scan --hosts 127.0.0.1 --ports "$tarpit,$first" --timeout 1 --verbose 2>"$work/verbose")
    [ "$out" = "127.0.0.1: $first" ] || fail "the tarpit scan printed: $out"
    grep -q "127.0.0.1:$tarpit closed: TimeoutError" "$work/verbose" ||
        fail "no TimeoutError for the tarpit: $(cat "$work/verbose")"
    echo "a connection that hangs: closed by the timeout: ok"
else
    echo "timeout: skipped (a full accept queue does not drop connections here)"
fi

# --- usage -----------------------------------------------------------------------------------
"$scanner" --help | grep -q -- '--hosts' || fail "--help"
for bad in "--hosts 127.0.0.1" "--ports 1-2" "--hosts 127.0.0.1 --ports 0" \
    "--hosts 127.0.0.1 --ports 5-3" "--hosts 127.0.0.1 --ports 70000" \
    "--hosts 127.0.0.1 --ports 1 --limit 0" "--hosts 127.0.0.1 --ports 1 --timeout x"; do
    rc=0
    # shellcheck disable=SC2086
    "$scanner" $bad >/dev/null 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || fail "'port_scanner $bad' exits $rc (expected 2)"
done

echo "port_scanner interop: all passed"
