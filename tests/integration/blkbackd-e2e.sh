#!/bin/sh
# blkbackd end to end on the simulator: a guest attached through xensim and
# the hotplug script, blkfront-sim running verified workloads with flushes,
# barriers and discards in both ABIs and every ring order (each run is a
# reconnect after Closed), a read-only disk and a CD-ROM, two guests with
# two disks each at once, then a detach that libxl would accept.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd ${BLKBACKD_ENGINE:+--io-engine=$BLKBACKD_ENGINE}
for i in 1 2 3 4; do truncate -s 32M "$TEST_DIR/disk$i.img"; done
g1=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk1.img"
be=$(be_path "$g1" 51712)
xs_is "$be/hotplug-status" connected || fail "hotplug script did not run"

for abi in x86_64 x86_32; do
	for order in 0 1 2 3 4; do
		info "verified randrw, $abi, ring order $order"
		be_state_is "$g1" 51712 6 && fe_restart "$g1" 51712
		bf g1 xvda --abi $abi --ring-order $order --workload randrw --bs 4k --qd 32 \
			--ops 1500 --verify --flush-every 40 --barrier-every 97 --discard-every 61 \
			--state "$TEST_DIR/g1-xvda.state" ||
			fail "workload $abi order $order failed: $(tail -5 "$TEST_DIR/bf.log")"
		be_state_is "$g1" 51712 6 || fail "backend not Closed after the frontend closed"
	done
done
xs_is "$be/sectors" $((32 * 2048)) || fail "sectors"
xs_is "$be/sector-size" 512 || fail "sector-size"
xs_is "$be/feature-flush-cache" 1 || fail "feature-flush-cache"
xs_is "$be/feature-barrier" 1 || fail "feature-barrier"
xs_is "$be/info" 0 || fail "info of a writable disk"

info "large requests and sequential workloads"
fe_restart "$g1" 51712
bf g1 xvda --workload seqwrite --bs 44k --qd 8 --ops 400 --verify --state "$TEST_DIR/g1-xvda.state" ||
	fail "seqwrite 44k"
fe_restart "$g1" 51712
bf g1 xvda --workload seqread --bs 16k --qd 8 --ops 400 --verify --state "$TEST_DIR/g1-xvda.state" ||
	fail "seqread 16k"

info "read-only disk and CD-ROM"
dd if=/dev/urandom of="$TEST_DIR/disk2.img" bs=1M count=1 conv=notrunc 2>/dev/null
sim_attach g1 xvdb "$TEST_DIR/disk2.img" r
bf g1 xvdb --workload randrw --bs 4k --qd 8 --ops 300 --expect-readonly ||
	fail "read-only workload"
xs_is "$(be_path "$g1" 51728)/info" 4 || fail "read-only info bit"
sim_attach g1 xvdc "$TEST_DIR/disk3.img" r cdrom
bf g1 xvdc --workload randread --bs 4k --qd 8 --ops 300 || fail "cdrom reads"
# CDROM | REMOVABLE | READONLY: libxl (and xensim) write removable=1.
xs_is "$(be_path "$g1" 51744)/info" 7 || fail "cdrom info bits"

info "two guests, two disks each, at once"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/disk4.img"
truncate -s 32M "$TEST_DIR/disk5.img"
sim_attach g2 xvdb "$TEST_DIR/disk5.img"
fe_restart "$g1" 51712
fe_restart "$g1" 51728
pids=""
bf g1 xvda --workload randrw --qd 16 --ops 2000 --verify --state "$TEST_DIR/g1-xvda.state" & pids="$pids $!"
bf g1 xvdb --workload randread --qd 16 --ops 2000 & pids="$pids $!"
bf g2 xvda --workload randwrite --qd 16 --ops 2000 --verify & pids="$pids $!"
bf g2 xvdb --workload randrw --ring-order 2 --qd 64 --ops 2000 --verify & pids="$pids $!"
for p in $pids; do
	wait "$p" || fail "a concurrent workload failed: $(grep -i fail "$TEST_DIR/bf.log" | tail -3)"
done

info "online resize while connected"
fe_restart "$g1" 51712
bf g1 xvda --workload randread --qd 4 --seconds 5 &
front=$!
bg_track $front
wait_for $((10 * SLOW)) be_state_is "$g1" 51712 4 || fail "not connected for the resize"
# The size is read on a thread of its own: on a hung mount a fstat would
# stall the main thread.
traced=
main_trace_start %stat,%desc && traced=1
truncate -s 48M "$TEST_DIR/disk1.img"
wait_for 3 xs_is "$be/sectors" $((48 * 2048)) ||
	fail "sectors still $(xenstore-read "$be/sectors") after growing the file"
if [ -n "$traced" ]; then
	main_trace_stop
	fds=$(ls -l "/proc/$BLKBACKD_PID/fd" | awk '/disk1\.img$/ { print $9 }')
	[ -n "$fds" ] || fail "no fd of disk1.img found"
	for fd in $fds; do
		! grep -E "^(fstat|newfstatat|statx)\($fd, |^ioctl\($fd, BLKGETSIZE64" \
			"$TEST_DIR/main.strace" ||
			fail "the main thread looked at the storage's size itself (fd $fd)"
	done
fi
be_state_is "$g1" 51712 4 || fail "resize left Connected"
wait $front || fail "workload across the resize failed"

info "detach: Closed within libxl's limit, storage released"
for v in xvda xvdb xvdc; do
	xensim block-detach g1 $v --timeout 2 || fail "block-detach g1 $v"
done
for v in xvda xvdb; do
	xensim block-detach g2 $v --timeout 2 || fail "block-detach g2 $v"
done
wait_for 2 sh -c "! ls -l /proc/$BLKBACKD_PID/fd | grep -q 'disk.\.img'" ||
	fail "blkbackd still has disk images open"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
