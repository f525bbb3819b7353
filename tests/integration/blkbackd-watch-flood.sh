#!/bin/sh
# T21: a guest floods the children of its own frontend state node with
# many requests in flight (tests/xs-pipeflood), each write firing the
# backend's watch on that node. blkbackd must stay alive and connected to xenstore, its
# memory flat (peak RSS sampled during the flood), the control socket
# answering, and a verified workload on another guest must not notice.
# Once with the main thread idle, once busy: a toolstack attaching
# BUSY_VBDS disks of a third domain at once (50 to a transaction, as the
# bench's scale row does), each claimed, taken to InitWait and its storage
# opened by the main thread while the flood's events arrive.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

# One fd per busy vbd's storage: fewer where the limit cannot be raised.
# Under memcheck or ASan the daemons are several times slower and the
# simulator's xenstore copies its tree per transaction, so a thousand
# attaches would measure the instrumentation; 200 still keep the main
# thread busy for the whole flood there, and what those lanes look for
# (memory errors, leaks) does not need more.
BUSY_VBDS=1000
if [ "$SLOW" -gt 1 ] || ldd "$top_builddir/backend/blkbackd" | grep -q libasan; then
	BUSY_VBDS=200
fi
ulimit -n $((BUSY_VBDS * 2 + 1024)) 2>/dev/null || BUSY_VBDS=300
start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/hostile.img" "$TEST_DIR/beside.img"
g=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g1 xvda "$TEST_DIR/hostile.img"
sim_attach g2 xvda "$TEST_DIR/beside.img"
fe=$(fe_path "$g" 51712)
# The bound on growth during a flood: libxenstore's and our buffers for a
# few hundred events at most; a queue of every event is tens of MiB.
RSS_BOUND_KB=8192
SECONDS_FLOOD=6

# flood WHAT: the flood beside a workload, the peak RSS checked.
flood() {
	info "$1"
	CASE=$1
	beside_start g2 xvda $((SECONDS_FLOOD + 4))
	rss0=$(blkbackd_rss_kb)
	echo "$rss0" >"$TEST_DIR/peak"
	( while kill -0 "$BLKBACKD_PID" 2>/dev/null && [ ! -e "$TEST_DIR/flood.done" ]; do
		a=$(blkbackd_rss_kb) || break
		[ "$a" -le "$(cat "$TEST_DIR/peak")" ] || echo "$a" >"$TEST_DIR/peak"
		sleep 0.2
	  done ) &
	sampler=$!
	"$top_builddir/tests/xs-pipeflood" "$XENSIM_DIR/domain/$g/socket" "$fe/state" \
		"$SECONDS_FLOOD" >"$TEST_DIR/flood.log" 2>&1 ||
		fail "$CASE: the flooding guest failed: $(cat "$TEST_DIR/flood.log")"
	# The control socket answers while the flood's events are handled.
	timeout 2 blkback-ctl status >/dev/null ||
		fail "$CASE: blkback-ctl status did not answer within 2 s"
	touch "$TEST_DIR/flood.done"
	wait "$sampler"
	rm -f "$TEST_DIR/flood.done"
	peak=$(cat "$TEST_DIR/peak")
	info "  $(cat "$TEST_DIR/flood.log"); blkbackd RSS $rss0 -> peak $peak KiB (bound +$RSS_BOUND_KB); $(uptime)"
	kill -0 "$BLKBACKD_PID" 2>/dev/null || fail "$CASE: blkbackd died"
	! grep -q "lost the xenstore connection" "$TEST_DIR/blkbackd.log" ||
		fail "$CASE: blkbackd lost its xenstore connection"
	! plain_run || [ $((peak - rss0)) -le $RSS_BOUND_KB ] ||
		fail "$CASE: RSS grew by $((peak - rss0)) KiB under the flood"
	beside_check "$CASE"
	# The flooded vbd still follows its frontend: a real state change.
	xenstore-write "$fe/state" 6
	expect_state "$g" 51712 6 5 "$CASE: closing after the flood"
	fe_restart "$g" 51712
}

flood "T21: the guest floods its state node's children, main thread idle"

g3=$(sim_guest g3) || fail "xensim create g3"
truncate -s 1M "$TEST_DIR/busy.img"
# busy_attach: BUSY_VBDS vbds of g3, written straight into xenstore.
busy_attach() {
	local i=1 j be fe
	while [ $i -le $BUSY_VBDS ]; do
		set --
		j=$i
		while [ $j -lt $((i + 50)) ] && [ $j -le $BUSY_VBDS ]; do
			be=$(be_path "$g3" $j)
			fe=$(fe_path "$g3" $j)
			set -- "$@" "$be/frontend" "$fe" "$be/params" "$TEST_DIR/busy.img" \
				"$be/script" blkbackd "$be/frontend-id" "$g3" "$be/online" 1 \
				"$be/state" 1 "$be/mode" r "$be/hotplug-status" connected \
				"$fe/state" 1 "$fe/backend" "$be"
			j=$((j + 1))
		done
		xenstore-write "$@" || return 1
		i=$j
	done
}
busy_opened() { grep -c "d$g3/[0-9]*: storage $TEST_DIR/busy.img" "$TEST_DIR/blkbackd.log" || true; }
busy_attach &
busy=$!
bg_track $busy
flood "T21: the guest floods its state node's children, main thread busy attaching $BUSY_VBDS vbds"
wait $busy || fail "the busy toolstack's writes failed"
info "  $(busy_opened) of $BUSY_VBDS busy vbds had their storage open when the flood was over"
wait_for $((60 * SLOW)) sh -c "[ \$(grep -c 'd$g3/[0-9]*: storage' '$TEST_DIR/blkbackd.log') -ge $BUSY_VBDS ]" ||
	fail "only $(busy_opened) of the $BUSY_VBDS vbds attached beside the flood opened their storage"
xenstore-rm "$BE_ROOT/$g3" "/local/domain/$g3/device/vbd" || fail "xenstore-rm"

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
