#!/bin/sh
# T23: a restarted blkbackd takes a connected vbd over only if its target
# is the storage it served. The image is attached by a symlink; while
# blkbackd is down (killed with a workload running) the symlink is
# pointed at a root-only secret file, and in a second round the image
# path itself is replaced by another file. The restarted daemon must
# refuse (error node, log line, backend Closed so the guest's requests
# fail), the secret must be untouched, and another guest's vbd, taken
# over the same way, must serve its verified workload throughout.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/image.img" "$TEST_DIR/beside.img"
g=$(sim_guest g1) || fail "xensim create g1"
sim_guest g2 >/dev/null || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"

restart() {
	blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" \
		-p "$TEST_DIR/blkbackd.pid" >>"$TEST_DIR/blkbackd.log" 2>&1 &
	BLKBACKD_PID=$!
	_pids="$BLKBACKD_PID $_pids"
}

# swap_round WHAT VDEV ATTACHED SWAP [SWAPPED]: attach VDEV by ATTACHED,
# run a workload, kill blkbackd, run SWAP (a shell command), restart;
# SWAPPED (default the secret) must be unchanged.
swap_round() {
	CASE="T23: $1"
	info "$CASE"
	head -c 16M /dev/urandom >"$TEST_DIR/secret.img"
	chmod 0600 "$TEST_DIR/secret.img"
	sum0=$(md5sum <"$TEST_DIR/secret.img")
	sim_attach g1 "$2" "$3"
	dev=$(xenstore-list "$BE_ROOT/$g" | tail -1)
	beside_start g2 xvda 10
	blkfront-sim --domain g1 --vdev "$2" --workload randwrite --qd 16 --seconds 8 \
		--timeout 20 >"$TEST_DIR/victim.log" 2>&1 &
	victim=$!
	bg_track $victim
	expect_state "$g" "$dev" 4 10 "$CASE: connect"
	sleep 1
	kill -KILL "$BLKBACKD_PID"
	wait_dead "$BLKBACKD_PID"
	sh -c "$4"
	swapped=${5:-$TEST_DIR/secret.img}
	restart
	wait_for 10 sh -c "xenstore-read '$(be_path "$g" "$dev")/error' 2>/dev/null | grep -q 'not the storage served before'" ||
		fail "$CASE: error node is '$(xenstore-read "$(be_path "$g" "$dev")/error" 2>&1)'"
	grep -q "d$g/$dev: .*not the storage served before" "$TEST_DIR/blkbackd.log" ||
		fail "$CASE: no log line"
	expect_state "$g" "$dev" 6 5 "$CASE: the backend closes"
	rc=0
	wait "$victim" || rc=$?
	[ $rc -ne 0 ] || fail "$CASE: the guest's workload saw no error"
	[ "$(md5sum <"$swapped")" = "$sum0" ] ||
		fail "$CASE: the guest wrote to the file swapped in"
	beside_check "$CASE"
	info "  refused; the guest's workload exited $rc; the secret is intact; $(uptime)"
	xensim block-detach g1 "$2" >/dev/null 2>&1 || xenstore-rm "$(be_path "$g" "$dev")"
}

ln -s "$TEST_DIR/image.img" "$TEST_DIR/link"
swap_round "the image's symlink pointed at another file before a restart" xvda \
	"$TEST_DIR/link" "ln -sfn '$TEST_DIR/secret.img' '$TEST_DIR/link'"

truncate -s 16M "$TEST_DIR/image2.img"
swap_round "the image replaced by another file before a restart" xvdb \
	"$TEST_DIR/image2.img" "mv '$TEST_DIR/image2.img' '$TEST_DIR/image2.old'; cp '$TEST_DIR/secret.img' '$TEST_DIR/image2.img'; chmod 0600 '$TEST_DIR/image2.img'" \
	"$TEST_DIR/image2.img"

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
