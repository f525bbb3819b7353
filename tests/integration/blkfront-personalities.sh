#!/bin/sh
# Every frontend, not only Linux: blkfront-sim's personalities, each as
# strict as that frontend's own code, run a verified workload against
# blkbackd, then their own shutdown, then reconnect and read back.
#   ovmf     Connected at once, exact-state waits at shutdown (a backend
#            that jumps Closing -> Closed fails it), then the guest OS's
#            Linux blkfront takes the disk over;
#   kdump    a crashed kernel left the disk Connected: the kdump kernel's
#            xenbus_reset_frontend waits 5 s each for exactly Closing,
#            Closed and InitWait;
#   windows  feature-large-sector-size, sector-size units, flush only;
#   bsd      the ring size from max-ring-pages, num-ring-pages written;
#   minios   multi-queue-max-queues and mode required, and a shutdown that
#            waits for the backend to come back to InitWait.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 32M "$TEST_DIR/disk.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
be=$(be_path "$g" 51712)
fe=$(fe_path "$g" 51712)
last() { tail -5 "$TEST_DIR/bf.log"; }
WL="--workload randrw --bs 4k --qd 8 --ops 600 --verify --flush-every 25"
# Each personality writes its own 4 MiB, so that every state file still
# describes the disk at the end.
area() { echo "--offset $(($1 * 4))m --size 4m"; }

info "ovmf: a verified workload, the exact-state shutdown, then Linux reads back"
bf g1 xvda --personality ovmf $WL $(area 0) --state "$TEST_DIR/ovmf.state" ||
	fail "ovmf: $(last)"
# OVMF ends Initialising with its ring keys removed; the backend is ready
# for the OS's frontend again.
xs_is "$fe/state" 1 || fail "ovmf left the frontend $(xenstore-read "$fe/state")"
xenstore-exists "$fe/ring-ref" && fail "ovmf keeps its ring-ref"
expect_state "$g" 51712 2 5 "InitWait after OVMF's shutdown"
bf g1 xvda --workload readback --verify $(area 0) --state "$TEST_DIR/ovmf.state" ||
	fail "Linux after OVMF: $(last)"

info "kdump: the crashed kernel's disk, reset with exact waits, reads back"
bf g1 xvda --workload randwrite --bs 4k --qd 8 --ops 400 --verify $(area 1) \
	--state "$TEST_DIR/kdump.state" || fail "kernel before the crash: $(last)"
# The crash: a kernel that dies with its disk Connected (--time-limit
# exits at once, closing nothing).
rc=0
bf g1 xvda --workload randread --seconds 60 --time-limit 2 $(area 1) || rc=$?
[ $rc = 4 ] || fail "the crashing kernel exited $rc, wanted 4 (time limit)"
xs_is "$fe/state" 4 && be_state_is "$g" 51712 4 ||
	fail "the crash did not leave both ends Connected"
lines=$(wc -l <"$TEST_DIR/bf.log")
bf g1 xvda --personality kdump --workload readback --verify $(area 1) \
	--state "$TEST_DIR/kdump.state" || fail "kdump: $(last)"
tail -n +$((lines + 1)) "$TEST_DIR/bf.log" | grep -q "kdump: resetting" ||
	fail "the kdump reset did not run"

info "windows: sector-size units on a 512-byte vbd, flush only, reconnect"
bf g1 xvda --personality windows $WL $(area 2) --state "$TEST_DIR/win.state" ||
	fail "windows: $(last)"
xs_is "$fe/feature-large-sector-size" 1 || fail "windows did not announce its reading"
xenstore-exists "$be/error" && fail "error node: $(xenstore-read "$be/error")"
bf g1 xvda --personality windows --workload readback --verify $(area 2) \
	--state "$TEST_DIR/win.state" || fail "windows reconnect: $(last)"
rc=0
bf g1 xvda --personality windows --barrier-every 5 --ops 10 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "windows with barriers exited $rc, wanted 2 (usage)"

info "bsd: max-ring-pages gives a 4-page ring, num-ring-pages is written"
xs_is "$be/max-ring-pages" 16 || fail "max-ring-pages is '$(xenstore-read "$be/max-ring-pages" 2>&1)'"
bf g1 xvda --personality bsd --ring-order 2 $WL $(area 3) --state "$TEST_DIR/bsd.state" ||
	fail "bsd: $(last)"
xs_is "$fe/num-ring-pages" 4 || fail "bsd did not write num-ring-pages 4"
bf g1 xvda --personality bsd --ring-order 2 --workload readback --verify $(area 3) \
	--state "$TEST_DIR/bsd.state" || fail "bsd reconnect: $(last)"

info "minios: its shutdown needs InitWait back, then it reconnects"
bf g1 xvda --personality minios $WL $(area 4) --state "$TEST_DIR/minios.state" ||
	fail "minios: $(last)"
be_state_is "$g" 51712 2 || fail "minios's shutdown left the backend $(xenstore-read "$be/state")"
bf g1 xvda --personality minios --workload readback --verify $(area 4) \
	--state "$TEST_DIR/minios.state" || fail "minios reconnect: $(last)"

info "the Linux frontend still reads back what every personality wrote"
n=0
for s in ovmf kdump win bsd minios; do
	bf g1 xvda --workload readback --verify $(area $n) --state "$TEST_DIR/$s.state" ||
		fail "Linux read-back of $s's writes: $(last)"
	n=$((n + 1))
done
info "keys: physical-sector-size divides the size, discard keys absent when off"
# 8 MiB + 512 bytes: st_blksize (4096 here) does not divide it.
truncate -s $((8 * 1048576 + 512)) "$TEST_DIR/odd.img"
XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach g1 \
	"vdev=xvdb, access=w, script=blkbackd, no-discard, target=$TEST_DIR/odd.img" ||
	fail "block-attach xvdb"
bf g1 xvdb --workload randrw --bs 512 --qd 4 --ops 200 --verify || fail "xvdb: $(last)"
beb=$(be_path "$g" 51728)
xs_is "$beb/sectors" $((8 * 2048 + 1)) || fail "xvdb sectors $(xenstore-read "$beb/sectors")"
xs_is "$beb/physical-sector-size" 512 ||
	fail "physical-sector-size $(xenstore-read "$beb/physical-sector-size") does not divide the size"
for k in feature-discard discard-granularity discard-alignment discard-secure; do
	xenstore-exists "$beb/$k" && fail "$k written with discard off: $(xenstore-read "$beb/$k")"
done
xs_is "$be/feature-discard" 1 || fail "xvda (discard on) has no feature-discard 1"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
