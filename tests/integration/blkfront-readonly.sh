#!/bin/sh
# Read-only and cdrom vbds: info carries the bits, data written earlier
# through a writable vbd of the same file reads back verified, writes and
# discards are refused with BLKIF_RSP_ERROR (and an OKAY would fail the
# run), and a write workload is refused up front without --expect-readonly.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 120
bf_require

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
st="$TEST_DIR/ro.state"

info "fill through a writable vbd"
bf_run fill 0 --domain "$dom" --vdev xvda --workload seqwrite --bs 32k --qd 4 \
	--ops 512 --verify --state "$st"
bf_ok fill
# The hotplug script refuses a target another vbd holds read-write, so the
# writer goes before the readers come.
xensim block-detach "$dom" xvda || fail "detach of the writer"

bf_attach "$dom" xvdb "$TEST_DIR/disk.img" "access=ro"
bf_attach "$dom" xvdc "$TEST_DIR/disk.img" "access=ro, devtype=cdrom"

for v in xvdb xvdc; do
	info "$v: read-only bit, verified reads of what xvda wrote"
	bf_run "rb-$v" 0 --domain "$dom" --vdev "$v" --workload readback --verify \
		--state "$st"
	bf_verified "rb-$v"
	bf_expect "rb-$v" verified_sectors '>' 30000
	info=$(bf_num "rb-$v" info)
	[ $((info & 4)) -ne 0 ] || fail "$v: info $info has no read-only bit"
	bf_run "rr-$v" 0 --domain "$dom" --vdev "$v" --workload randread --bs 4k \
		--qd 16 --ops 2000 --verify --state "$st" --no-readback
	bf_ok "rr-$v"
	bf_expect "rr-$v" verified_sectors '>' 1000

	info "$v: writes and discards are refused"
	bf_run "rw-$v" 0 --domain "$dom" --vdev "$v" --workload randrw --bs 4k \
		--qd 16 --ops 1000 --discard-every 20 --expect-readonly --verify \
		--state "$st" --no-readback
	bf_ok "rw-$v"
	bf_expect "rw-$v" write '>' 0
	bf_expect "rw-$v" expected_errors '>' 400
	bf_run "w-$v" 2 --domain "$dom" --vdev "$v" --workload randwrite --ops 10
done
info=$(bf_num rb-xvdc info)
[ $((info & 1)) -ne 0 ] || fail "cdrom: info $info has no cdrom bit"
info=$(bf_num rb-xvdb info)
[ $((info & 1)) -eq 0 ] || fail "disk: info $info has the cdrom bit"

info "the refused writes changed nothing"
xensim block-detach "$dom" xvdb || fail "detach xvdb"
xensim block-detach "$dom" xvdc || fail "detach xvdc"
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
bf_run final 0 --domain "$dom" --vdev xvda --workload readback --verify --state "$st"
bf_verified final
bf_expect final verified_sectors '>' 30000
exit 0
