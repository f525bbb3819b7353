#!/bin/sh
# T25, ring memory a guest can pin: a ring with nothing in flight for a
# second gives its bounce and indirect buffers back (its memory falls
# while the guest stays connected, and its verified workload goes on
# afterwards), and --max-domain-memory bounds what one domain's disks
# pin: a large ring's indirect pool is cut to fit, a second disk that
# does not fit even with one indirect request per ring is refused with an
# error node, and another domain's disk beside it is not affected.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v jq >/dev/null || skip "jq not installed"

start_xensimd
start_blkbackd
truncate -s 256M "$TEST_DIR/g1.img"
g1=$(sim_guest g1) || fail "xensim create g1"
sim_attach g1 xvda "$TEST_DIR/g1.img"

# idle_releases DOMID: times the vbd's rings gave their buffers back.
idle_releases() {
	blkback-ctl stats --json |
		jq --argjson d "$1" '[.vbds[] | select(.domid == $d) | .total.buffer_releases] | add // 0'
}
# anon_kb: blkbackd's own resident memory in KiB. Not VmRSS: that also
# counts the guest pages the simulator maps (shared memory), as grant
# mappings are not blkbackd's memory on Xen either.
anon_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$BLKBACKD_PID/status"; }
anon_below() { [ "$(anon_kb)" -lt "$1" ]; }
anon_above() { [ "$(anon_kb)" -gt "$1" ]; }
# anon_peak PID: the most anon_kb showed while PID ran, sampled every
# 50 ms.
anon_peak() {
	local peak=0 now
	while kill -0 "$1" 2>/dev/null; do
		now=$(anon_kb)
		[ "$now" -le "$peak" ] || peak=$now
		sleep 0.05
	done
	echo "$peak"
}

info "case 1: idle buffers go back while the guest stays connected"
rss0=$(anon_kb)
# 1 MiB indirect requests, 32 in flight: 32 MiB of the indirect pool and
# the bounce buffers get backed. Memory figures hold only for a plain
# run (plain_run): under memcheck its shadow of those pages stays.
bf_bg g1 xvda --ring-order 1 --indirect --bs 1m --qd 32 --workload randrw \
	--seconds $((6 * SLOW)) --timeout $((30 * SLOW)) --verify
BF=$!
if plain_run; then
	wait_for 10 anon_above $((rss0 + 24 * 1024)) ||
		fail "1 MiB requests did not back the indirect pool ($(anon_kb) KiB)"
else
	sleep $((2 * SLOW))
fi
kill -0 $BF 2>/dev/null || fail "the workload ended early: $(tail -5 "$TEST_DIR/bf.log")"
info "memory at start ${rss0} KiB, under load $(anon_kb) KiB"
releases0=$(idle_releases "$g1")
# The guest stops issuing (its ring stays connected): the ring answers
# what is in flight and, a second later, gives its buffers back.
kill -STOP $BF
idle_released() { [ "$(idle_releases "$g1")" -gt "$releases0" ]; }
wait_for $((5 * SLOW)) idle_released ||
	fail "the idle ring did not give its buffers back (blkback-ctl stats)"
if plain_run; then
	wait_for 2 anon_below $((rss0 + 8 * 1024)) ||
		fail "idle ring kept its buffers: ${rss0} -> $(anon_kb) KiB"
fi
info "memory idle, still connected: $(anon_kb) KiB"
be_state_is "$g1" 51712 4 || fail "the vbd is not Connected while idle"
kill -CONT $BF
wait $BF || fail "workload after the release: $(tail -5 "$TEST_DIR/bf.log")"

info "case 2: --max-domain-memory 24 cuts, refuses, leaves others alone"
stop_pid "$BLKBACKD_PID"
start_blkbackd --max-domain-memory 24
truncate -s 256M "$TEST_DIR/g2a.img" "$TEST_DIR/g2b.img" "$TEST_DIR/g3.img"
g2=$(sim_guest g2) || fail "xensim create g2"
g3=$(sim_guest g3) || fail "xensim create g3"
sim_attach g2 xvda "$TEST_DIR/g2a.img"
sim_attach g2 xvdb "$TEST_DIR/g2b.img"
sim_attach g3 xvda "$TEST_DIR/g3.img"
beside_start g3 xvda $((15 * SLOW))
anon0=$(anon_kb)
# Order 2 (128 entries) with 1 MiB indirect requests wants 70 MiB; the
# limit leaves room for 18 indirect buffers. 40 in flight would back 40
# MiB without the cut.
bf_bg g2 xvda --ring-order 2 --indirect --bs 1m --qd 40 --workload randrw \
	--seconds $((6 * SLOW)) --timeout $((30 * SLOW)) --verify
BF=$!
wait_for $((10 * SLOW)) be_state_is "$g2" 51712 4 ||
	fail "the first disk did not connect under the limit: $(tail -5 "$TEST_DIR/bf.log")"
grep -q "d$g2/51712: ring buffers cut from 70 to 2[0-4] MiB" "$TEST_DIR/blkbackd.log" ||
	fail "no cut logged: $(grep -i 'memory\|cut' "$TEST_DIR/blkbackd.log" | tail -3)"
# The second disk of the same domain does not fit: refused, with the
# reason in its error node; the first keeps running.
if blkfront-sim --domain g2 --vdev xvdb --ring-order 2 --indirect --bs 1m --qd 8 \
	--ops 10 --timeout 3 >>"$TEST_DIR/bf2.log" 2>&1; then
	fail "a second disk beyond the domain's limit connected"
fi
err=$(xenstore-read "$(be_path "$g2" 51728)/error" 2>/dev/null) ||
	fail "no error node for the refused disk"
info "refused: $err"
case $err in
*"domain $g2 memory limit"*) ;;
*) fail "the error node does not give the memory limit: $err" ;;
esac
be_state_is "$g2" 51728 4 && fail "the refused disk is Connected"
peak=$(anon_peak $BF)
wait $BF || fail "workload under the cut: $(tail -5 "$TEST_DIR/bf.log")"
info "blkbackd's memory before ${anon0} KiB, at most ${peak} KiB with 40 x 1 MiB in flight"
if plain_run; then
	[ "$peak" -le $((anon0 + 32 * 1024)) ] ||
		fail "the cut did not bound memory: it grew by $(((peak - anon0) / 1024)) MiB"
fi
# Its first disk gone, the domain has room again: the second connects.
expect_state "$g2" 51712 6 $((5 * SLOW)) "first disk closed"
blkfront-sim --domain g2 --vdev xvdb --ring-order 2 --indirect --bs 1m --qd 8 \
	--ops 40 --verify >>"$TEST_DIR/bf.log" 2>&1 ||
	fail "the second disk did not connect once the first was closed: $(tail -5 "$TEST_DIR/bf.log")"
beside_stop "the memory limit of another domain"
