#!/bin/sh
# T22: targets whose open blocks or is slow must not hold the main
# thread. A FIFO as params, read-only (open() would wait for a writer) and
# read-write, written directly as a toolstack would and through the
# hotplug script; and an NBD export whose handshake takes 4 s (nbdkit's
# delay filter). Throughout, blkback-ctl status answers within 1 s and
# another domain's new disk reaches InitWait within 2 s; the FIFO is
# refused with its reason in the error node; the slow export is served
# once it answers; a verified workload on another guest does not notice;
# SIGTERM is acted on at the end.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/beside.img"
g=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
mkfifo "$TEST_DIR/fifo"
next_dev=51728

# responsive WHAT: the control socket answers within 1 s and a new disk
# of another domain reaches InitWait within 2 s.
responsive() {
	timeout 1 blkback-ctl status >/dev/null ||
		fail "$1: blkback-ctl status did not answer within 1 s"
	truncate -s 1M "$TEST_DIR/other-$next_dev.img"
	vbd_write "$g2" "$next_dev" "$TEST_DIR/other-$next_dev.img" blkbackd
	expect_state "$g2" "$next_dev" 2 2 "$1: another domain's disk"
	xenstore-rm "$(be_path "$g2" "$next_dev")" "$(fe_path "$g2" "$next_dev")"
	next_dev=$((next_dev + 16))
}

# error_is DEVID PATTERN: the vbd's error node matches PATTERN.
error_is() {
	xenstore-read "$(be_path "$g" "$1")/error" 2>/dev/null | grep -q -- "$2"
}

dev=51712
for mode in r w; do
	CASE="T22: a FIFO, mode $mode, written directly"
	info "$CASE"
	beside_start g2 xvda 4
	vbd_write "$g" $dev "$TEST_DIR/fifo" blkbackd $mode
	xenstore-write "$(be_path "$g" $dev)/hotplug-status" connected
	responsive "$CASE"
	wait_for 5 error_is $dev "FIFO, not a regular file or block device" ||
		fail "$CASE: error node is '$(xenstore-read "$(be_path "$g" $dev)/error" 2>&1)'"
	be_state_is "$g" $dev 2 || fail "$CASE: the backend left InitWait"
	responsive "$CASE"
	beside_check "$CASE"
	xenstore-rm "$(be_path "$g" $dev)" "$(fe_path "$g" $dev)"
	dev=$((dev + 16))
done

for mode in r w; do
	CASE="T22: a FIFO, mode $mode, through the hotplug script"
	info "$CASE"
	if XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach g1 \
		"vdev=xvdc, access=$mode, script=blkbackd, target=$TEST_DIR/fifo" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err"; then
		fail "$CASE: the attach succeeded"
	fi
	grep -q "not a regular file or block device" "$TEST_DIR/err" ||
		fail "$CASE: the refusal '$(cat "$TEST_DIR/err")' gives no reason"
	responsive "$CASE"
done

if command -v nbdkit >/dev/null; then
	CASE="T22: an NBD export whose handshake takes 4 s, written directly"
	info "$CASE"
	truncate -s 16M "$TEST_DIR/slow.img"
	start_nbdkit slow --filter=delay file "$TEST_DIR/slow.img" delay-open=4
	beside_start g2 xvda 8
	vbd_write "$g" $dev "$NBD_URI" blkbackd w
	xenstore-write "$(be_path "$g" $dev)/hotplug-status" connected
	t0=$(date +%s)
	responsive "$CASE"
	responsive "$CASE"
	wait_for 15 grep -q "d$g/$dev: storage nbd" "$TEST_DIR/blkbackd.log" || fail "$CASE: the export was never opened"
	info "  opened after $(( $(date +%s) - t0 )) s; $(uptime)"
	beside_check "$CASE"
	xenstore-rm "$(be_path "$g" $dev)" "$(fe_path "$g" $dev)"
fi

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
