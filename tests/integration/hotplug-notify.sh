#!/bin/sh
# blkbackd under a stand-in for systemd's notify socket (Type=notify):
# READY=1 after the initial scan, WATCHDOG=1 at about half WatchdogSec
# from the main loop, STOPPING=1 on SIGTERM; no watchdog, no pings;
# STATUS= counts the vbds served (systemctl status shows it).
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 60
command -v python3 >/dev/null || skip "python3 not installed (the stand-in notify socket)"

# listen SOCKET LOG: a datagram socket that writes each message as a line.
listen() {
	python3 -c '
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode() + "\n")
        f.flush()
' "$1" "$2" &
	_pids="$! $_pids"
	wait_for 5 test -S "$1" || fail "notify socket did not appear"
}

start_xensimd
listen "$TEST_DIR/notify" "$TEST_DIR/notify.log"

info "READY and watchdog pings (WatchdogSec 0.4 s)"
NOTIFY_SOCKET="$TEST_DIR/notify" WATCHDOG_USEC=400000 start_blkbackd
wait_for 5 grep -qx READY=1 "$TEST_DIR/notify.log" || fail "no READY=1: $(cat "$TEST_DIR/notify.log")"
sleep 2
pings=$(grep -cx WATCHDOG=1 "$TEST_DIR/notify.log" || true)
# 2 s at 0.2 s: about 10; allow a slow machine, demand more than one.
[ "$pings" -ge 4 ] && [ "$pings" -le 14 ] || fail "$pings watchdog pings in 2 s"
[ "$(head -n 1 "$TEST_DIR/notify.log")" = READY=1 ] || fail "a ping before READY"

info "STOPPING on SIGTERM"
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
grep -qx STOPPING=1 "$TEST_DIR/notify.log" || fail "no STOPPING=1: $(tail -3 "$TEST_DIR/notify.log")"

info "no WATCHDOG_USEC: READY but no pings"
: >"$TEST_DIR/notify.log"
NOTIFY_SOCKET="$TEST_DIR/notify" start_blkbackd
wait_for 5 grep -qx READY=1 "$TEST_DIR/notify.log" || fail "no READY=1 the second time"
sleep 1
grep -qx WATCHDOG=1 "$TEST_DIR/notify.log" && fail "pings without a watchdog"

info "STATUS counts the vbds served"
grep -qx 'STATUS=serving 0 vbds, 0 connected' "$TEST_DIR/notify.log" ||
	fail "no STATUS at start: $(cat "$TEST_DIR/notify.log")"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"
truncate -s 8M "$TEST_DIR/d.img"
sim_guest g1 >/dev/null || fail "xensim create"
xensim block-attach g1 "vdev=xvda, access=w, script=blkbackd, target=$TEST_DIR/d.img" ||
	fail "block-attach"
wait_for 5 grep -qx 'STATUS=serving 1 vbd, 0 connected' "$TEST_DIR/notify.log" ||
	fail "no STATUS for one vbd: $(grep STATUS "$TEST_DIR/notify.log")"
xensim block-detach g1 xvda --timeout 5 || fail "block-detach"
wait_for 5 sh -c "tail -n 1 '$TEST_DIR/notify.log' | grep -qx 'STATUS=serving 0 vbds, 0 connected'" ||
	fail "STATUS not back to 0: $(grep STATUS "$TEST_DIR/notify.log")"
exit 0
