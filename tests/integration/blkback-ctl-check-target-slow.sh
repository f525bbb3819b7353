#!/bin/sh
# check-target of a remote target that is slow to open (an NBD export whose
# handshake takes 4 s, nbdkit's delay filter): the probe runs off the main
# thread and its answer comes when it is done, while status answers within
# 1 s throughout; a request pipelined behind the slow one is answered after
# it, in order; a client that hangs up before its answer costs nothing (no
# crash, no fd kept).
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v python3 >/dev/null || skip "python3 not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
responsive() {
	timeout 1 blkback-ctl status >/dev/null ||
		fail "$1: blkback-ctl status did not answer within 1 s ($(uptime))"
}
fds() { ls "/proc/$BLKBACKD_PID/fd" | wc -l; }

start_xensimd
start_blkbackd --control "$CTL"
truncate -s 16M "$TEST_DIR/slow.img"
start_nbdkit slow --filter=delay file "$TEST_DIR/slow.img" delay-open=4
fds0=$(fds)

info "a slow check-target while status answers"
t0=$(date +%s)
blkback-ctl check-target --mode w "$NBD_URI" >"$TEST_DIR/slow.out" 2>&1 &
slow=$!
blkback-ctl check-target --mode r "$NBD_URI" >"$TEST_DIR/slow2.out" 2>&1 &
slow2=$!
sleep 0.5
for i in 1 2 3 4 5 6; do
	responsive "status $i during the handshakes"
	sleep 0.5
done
wait $slow || fail "slow check-target --mode w refused: $(cat "$TEST_DIR/slow.out")"
wait $slow2 || fail "slow check-target --mode r refused: $(cat "$TEST_DIR/slow2.out")"
took=$(( $(date +%s) - t0 ))
[ "$took" -ge 3 ] || fail "check-target took $took s: the export's delay did not apply"
info "  answered after $took s; $(uptime)"

info "a request pipelined behind the slow one is answered after it"
/usr/bin/python3 - "$CTL" "$NBD_URI" <<'PY' || fail "pipelined replies"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((json.dumps({"version": 1, "command": "check-target", "target": sys.argv[2],
                       "mode": "r"}) + "\n" +
           json.dumps({"version": 1, "command": "status"}) + "\n").encode())
f = s.makefile("rb")
a = json.loads(f.readline())
b = json.loads(f.readline())
assert a["ok"] is True and "pid" not in a, a
assert b["ok"] is True and "pid" in b, b
PY

info "clients that hang up before their answer"
/usr/bin/python3 - "$CTL" "$NBD_URI" <<'PY' || fail "hang-up clients"
import json, socket, sys
for i in range(8):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall((json.dumps({"version": 1, "command": "check-target",
                           "target": sys.argv[2], "mode": "r"}) + "\n").encode())
    s.close()
PY
responsive "status after the hang-ups"
# Every probe finishes (4 threads at a time: two rounds of 4 s) and leaves
# nothing open behind it.
wait_for 30 sh -c "[ \$(ls /proc/$BLKBACKD_PID/fd | wc -l) -le $fds0 ]" ||
	fail "blkbackd holds $(fds) fds, $fds0 before the probes"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
responsive "status at the end"
exit 0
