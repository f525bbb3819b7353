#!/bin/sh
# Disks on NBD exports (target=nbd+unix:///?socket=...), served by the real
# nbdkit: verified workloads in both ABIs, with indirect requests, two
# queues, larger rings and persistent grants, all carrying one verify map
# across reconnects; every guest flush reaches the server as an NBD flush;
# the data is in the exported file (read back through a file vbd). The
# hotplug check refuses an export it cannot use, with the reason: in use
# read-write by another vbd, no server, a read-only export asked for rw,
# a server that never completes the handshake. blkbackd killed -9 three
# times under load on an export, and the server restarted under load: the
# guest sees no error. A server killed under load for good: the guest
# gets error responses, not a hang, blkbackd stays up, and another vbd is
# undisturbed.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v socat >/dev/null || skip "socat not installed"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"

# Requests on a lost connection wait 3 s for it to come back (default 60).
BB_ARGS=--nbd-reconnect=3
start_xensimd
start_blkbackd $BB_ARGS
truncate -s 64M "$TEST_DIR/disk.img"
truncate -s 32M "$TEST_DIR/beside.img"
# One worker thread per connection (-t 1): nbdkit 1.32 (Debian 12) aborts
# when a client vanishes with requests in flight while another worker of
# the same connection is sending a reply (connections.c raw_send_socket:
# assertion 'sock >= 0'; later nbdkit has no such assertion), and this
# export's client, blkbackd, is killed -9 under load below. Once nbdkit
# is gone the takeover cannot reach the export and the test ran into its
# timeout instead of failing.
start_nbdkit disk -t 1 --filter=log file "$TEST_DIR/disk.img" \
	logfile="$TEST_DIR/nbd-requests.txt"
uri=$NBD_URI
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
sim_attach g1 xvda "$uri"
blkback-ctl show "$g1" 51712 | grep -q 'nbd+unix' || fail "show does not name the export"

state="$TEST_DIR/verify.state"
flushes=0
run() { remote_run "$@"; }

info "verified workloads over NBD"
beside_start g2 xvda 20
run "4k randrw qd32 with flushes" --workload randwrite --bs 4k --qd 32 --ops 4000 --flush-every 16
run "randrw x86_32, discards" --abi x86_32 --workload randrw --bs 16k --qd 16 --ops 2000 \
	--discard-every 25 --flush-every 40
run "indirect 1 MiB, order 2" --ring-order 2 --indirect --workload randrw --bs 1m --qd 8 --ops 200
run "two queues, barriers" --queues 2 --workload randrw --bs 8k --qd 32 --ops 3000 --barrier-every 50
run "persistent grants, indirect" --persistent --indirect --workload randrw --bs 64k --qd 16 --ops 1000
beside_check "NBD workloads"

# The log filter writes one "Flush" line per NBD flush the server got;
# each guest flush, and each barrier (write, then flush), needs one.
server_flushes=$(grep -c ' Flush id=' "$TEST_DIR/nbd-requests.txt" || true)
info "guest flushes and barriers: $flushes, NBD flushes at the server: $server_flushes"
[ "$flushes" -gt 0 ] || fail "the workloads sent no flush"
[ "$server_flushes" -ge "$flushes" ] ||
	fail "$flushes guest flushes/barriers, only $server_flushes reached the server"
grep -q ' Trim id=' "$TEST_DIR/nbd-requests.txt" || fail "no discard reached the server as a trim"

info "the data is in the exported file: read back through a file vbd"
xensim block-detach g1 xvda || fail "detach of the export"
sim_attach g1 xvdb "$TEST_DIR/disk.img"
bf g1 xvdb --workload readback --verify --state "$state" ||
	fail "read-back of the file behind the export: $(tail -3 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdb || fail "detach of the file"

info "blkbackd killed under load on the export: the guest sees a pause only"
sim_attach g1 xvda "$uri"
blkfront-sim --domain g1 --vdev xvda --queues 2 --workload randrw --qd 32 --flush-every 20 \
	--seconds 8 --timeout 30 --verify --state "$state" --json \
	>"$TEST_DIR/crash.json" 2>>"$TEST_DIR/bf.log" &
crash_pid=$!
bg_track "$crash_pid"
expect_state "$g1" 51712 4 10 "connect before the kills"
for round in 1 2 3; do
	sleep 1.5
	old=$BLKBACKD_PID
	kill -KILL "$old"
	wait_dead "$old"
	start_blkbackd $BB_ARGS
done
wait "$crash_pid" || fail "the workload across the kills failed: $(cat "$TEST_DIR/crash.json")"
info "across 3 kills: $(jq -c '{total_ops, errors, mismatches, unanswered}' "$TEST_DIR/crash.json")"
[ "$(jq .errors "$TEST_DIR/crash.json")" = 0 ] || fail "the guest saw errors across the kills"
grep -q 'resumed\|taking over' "$TEST_DIR/blkbackd.log" || fail "no takeover in the log"
expect_state "$g1" 51712 6 5 "close after the kills"
xensim block-detach g1 xvda || fail "detach after the kills"

# attach_refused VDEV ACCESS TARGET MSG: the hotplug script fails the
# attach with MSG in its error, within the handshake timeout.
attach_refused() {
	local t0=$SECONDS
	if xensim block-attach g1 "vdev=$1, access=$2, script=blkbackd, target=$3" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err"; then
		fail "attach of $3 ($2) succeeded"
	fi
	grep -q "$4" "$TEST_DIR/err" || fail "attach of $3: '$(cat "$TEST_DIR/err")' lacks '$4'"
	info "refused in $((SECONDS - t0)) s: $(tail -1 "$TEST_DIR/err")"
}

info "exports the hotplug check refuses"
sim_attach g1 xvda "$uri"
attach_refused xvdc w "$uri" "in use read-write by domain $g1"
xensim block-detach g1 xvda || fail "detach of the export in use"
attach_refused xvdc w "nbd+unix:///?socket=$TEST_DIR/nobody.sock" "No such file"
start_nbdkit ro -r file "$TEST_DIR/beside.img"
attach_refused xvdc w "$NBD_URI" "read-only"
sim_attach g1 xvdc "$NBD_URI" r
bf g1 xvdc --workload randrw --bs 4k --qd 8 --ops 200 --expect-readonly ||
	fail "read-only export: $(tail -3 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdc || fail "detach of the read-only export"
# A server that accepts and never speaks: the daemon gives up on the
# handshake (NBD_CONNECT_TIMEOUT_MS in io-nbd.c) rather than hang.
socat "UNIX-LISTEN:$TEST_DIR/mute.sock,fork" EXEC:"sleep 60" >/dev/null 2>&1 &
mute_pid=$!
bg_track "$mute_pid"
wait_for 5 test -S "$TEST_DIR/mute.sock" || fail "socat did not listen"
attach_refused xvdd w "nbd+unix:///?socket=$TEST_DIR/mute.sock" "handshake"
kill "$mute_pid"
blkback-ctl list >/dev/null || fail "blkbackd does not answer after a mute server"

info "the server restarts under load: requests wait for it, the guest sees a pause only"
start_nbdkit again file "$TEST_DIR/disk.img"
sim_attach g1 xvdf "$NBD_URI"
blkfront-sim --domain g1 --vdev xvdf --workload randrw --bs 4k --qd 32 --seconds 5 --verify \
	--timeout 30 --json >"$TEST_DIR/restart.json" 2>>"$TEST_DIR/bf.log" &
load_pid=$!
bg_track "$load_pid"
expect_state "$g1" 51792 4 10 "xvdf connect"
sleep 1.5
kill -KILL "$NBDKIT_PID"
sleep 1
start_nbdkit again file "$TEST_DIR/disk.img"
wait "$load_pid" || fail "the workload across a server restart failed: $(cat "$TEST_DIR/restart.json")"
info "across the restart: $(jq -c '{total_ops, errors, mismatches, unanswered}' "$TEST_DIR/restart.json")"
[ "$(jq .errors "$TEST_DIR/restart.json")" = 0 ] || fail "errors across a server restart"
expect_state "$g1" 51792 6 5 "xvdf close"
xensim block-detach g1 xvdf || fail "detach of xvdf"

info "the server is killed under load and stays away past --nbd-reconnect"
start_nbdkit dying file "$TEST_DIR/disk.img"
sim_attach g1 xvde "$NBD_URI"
beside_start g2 xvda 8
blkfront-sim --domain g1 --vdev xvde --workload randrw --bs 4k --qd 32 --seconds 6 --verify \
	--no-readback --json >"$TEST_DIR/killed.json" 2>>"$TEST_DIR/bf.log" &
load_pid=$!
bg_track "$load_pid"
sleep 2
kill -KILL "$NBDKIT_PID"
rc=0
wait "$load_pid" || rc=$?
[ $rc -ne 0 ] || fail "a workload whose server died succeeded"
k="$TEST_DIR/killed.json"
info "after the kill: $(jq -c '{errors, mismatches, unanswered, total_ops}' "$k")"
[ "$(jq .errors "$k")" -gt 0 ] || fail "no error responses after the server died"
[ "$(jq .mismatches "$k")" = 0 ] || fail "mismatches after the server died"
[ "$(jq .unanswered "$k")" = 0 ] || fail "requests left unanswered when the server died"
grep -q ' at byte .* failed' "$TEST_DIR/blkbackd.log" || fail "no log line for the dead server"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died with its NBD server"
beside_check "server killed"
xensim block-detach g1 xvde || fail "detach after the server died"
info "ok"
