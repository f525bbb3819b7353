#!/bin/sh
# The control socket answers every request of a client, also several sent
# in one write (each line is a request; replies come in order, one line
# each), and clients that come and go in the same loop run as others
# connect get only their own replies.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v python3 >/dev/null || skip "python3 not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
start_xensimd
start_blkbackd --control "$CTL"
wait_for 10 test -S "$CTL" || fail "no control socket"

info "three requests in one write: three replies"
python3 - "$CTL" >"$TEST_DIR/replies" <<'PY' || fail "client: $(cat "$TEST_DIR/replies")"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b'{"version":1,"command":"list"}\n{"version":1,"command":"status"}\n{"version":1,"command":"list"}\n')
buf = b""
while buf.count(b"\n") < 3:
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode())
PY
n=$(grep -c '"ok":true' "$TEST_DIR/replies" || true)
[ "$n" = 3 ] || fail "$n good replies to three requests: $(cat "$TEST_DIR/replies")"

info "clients that hang up mid-request while others connect"
python3 - "$CTL" <<'PY' || fail "a client got a wrong answer or none"
import socket, sys
for round in range(200):
    gone = []
    for i in range(4):
        g = socket.socket(socket.AF_UNIX)
        g.connect(sys.argv[1])
        g.sendall(b'{"version":1,"command":"list"}\n')
        gone.append(g)
    for g in gone:
        g.close()
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sys.argv[1])
    s.sendall(b'{"version":1,"command":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(65536)
        if not d:
            sys.exit("round %d: dropped without a reply" % round)
        buf += d
    if b'"ok":true' not in buf:
        sys.exit("round %d: %r" % (round, buf))
    s.close()
PY
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
