#!/bin/sh
# 4096-byte logical sectors (blkbackd --sector-size 4096 on a file):
# sector-size is published as 4096, sectors stay in 512-byte units,
# verified 4 KiB and larger I/O works, and requests not aligned to 4 KiB
# are refused.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd --sector-size 4096
truncate -s 16M "$TEST_DIR/disk.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
bf g1 xvda --workload randrw --bs 4k --qd 16 --ops 1000 --verify --flush-every 30 ||
	fail "4k workload: $(tail -5 "$TEST_DIR/bf.log")"
be=$(be_path "$g" 51712)
xs_is "$be/sector-size" 4096 || fail "sector-size is $(xenstore-read "$be/sector-size")"
xs_is "$be/sectors" $((16 * 2048)) || fail "sectors must stay in 512-byte units"
bf g1 xvda --workload seqwrite --bs 32k --qd 4 --ops 200 --verify || fail "32k writes"
bf g1 xvda --raw --op 0 --sector 1 --seg new:0:7 --expect-status -1 ||
	fail "unaligned sector accepted"
bf g1 xvda --raw --op 0 --sector 8 --seg new:1:7 --expect-status -1 ||
	fail "unaligned segment accepted"
exit 0
