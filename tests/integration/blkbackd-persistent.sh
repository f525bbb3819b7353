#!/bin/sh
# Persistent grants (feature-persistent): verified workloads over them in
# both ABIs, ring orders 0 and 4, two queues and indirect requests (their
# segment pages through the cache too, or by grant copy when the frontend
# grants them read-only); the cache stays within --max-persistent-grants
# while the frontend cycles through more pages than that; a frontend that does not offer the feature
# and a daemon that does not (0) both fall back to grant copy; a detach
# unmaps every page (no mapping of the guest's memory is left).
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 150
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v jq >/dev/null || skip "jq not installed"

# guest_maps: blkbackd's mappings of simulated guest RAM (grant maps).
guest_maps() { grep -c 'memfd:d[0-9]*-ram' "/proc/$BLKBACKD_PID/maps" || true; }
# counter VDEV_DEVID FIELD: a total counter of domain g's vbd DEVID.
counter() {
	blkback-ctl stats --json | jq -r --argjson d "$1" \
		".vbds[] | select(.devid == \$d) | .total.$2"
}
ring_counter() {
	blkback-ctl stats --json | jq -r --argjson d "$1" \
		"[.vbds[] | select(.devid == \$d) | .ring_list[].$2] | add"
}

start_xensimd
start_blkbackd --max-persistent-grants 64
truncate -s 64M "$TEST_DIR/a.img" "$TEST_DIR/b.img"
g=$(sim_guest g1) || fail "xensim create"

info "feature-persistent is offered at connect"
sim_attach g1 xvda "$TEST_DIR/a.img"
sim_attach g1 xvdb "$TEST_DIR/b.img"

for args in "--ring-order 0 --abi x86_64" "--ring-order 4 --abi x86_32" \
	"--ring-order 2 --queues 2" "--ring-order 1 --indirect --bs 64k"; do
	info "verified workload over persistent grants: $args"
	# shellcheck disable=SC2086
	bf g1 xvda --persistent $args --workload randrw --qd 32 --seconds 2 --verify \
		--flush-every 50 || fail "$args: $(tail -5 "$TEST_DIR/bf.log")"
	xs_is "$(be_path "$g" 51712)/feature-persistent" 1 || fail "backend does not offer feature-persistent"
done
grep -q 'backend Connected (.*persistent grants)' "$TEST_DIR/blkbackd.log" ||
	fail "no connect logged with persistent grants"
segs=$(counter 51712 persistent_segments)
pmaps=$(counter 51712 persistent_maps)
[ "$segs" -gt 0 ] || fail "no segment went through persistent grants"
[ "$pmaps" -gt 0 ] && [ "$pmaps" -lt "$segs" ] || fail "$pmaps maps for $segs segments"
info "$segs segments through $pmaps persistent maps"
# The indirect workload's segment pages came through the cache too (each
# copied once into private memory before it was decoded and validated),
# so its verified data above was read through them.
ipages=$(counter 51712 persistent_indirect_pages)
[ "$ipages" -gt 0 ] || fail "no indirect page went through persistent grants"
[ "$(counter 51712 errors.grant)" -eq 0 ] || fail "grant errors: $(counter 51712 errors.grant)"
info "$ipages indirect pages through persistent grants"

info "indirect pages granted read-only: grant copy for them, data still persistent"
# A fresh connection (its ring has not failed an indirect map yet); its
# indirect pages cannot be mapped writable, so the first one falls back
# to grant copy and the ring stays there; nothing fails.
gerr=$(counter 51712 errors.grant)
segs0=$(counter 51712 persistent_segments)
bf g1 xvda --persistent --indirect-readonly --indirect --bs 64k --ring-order 1 --workload randrw \
	--qd 16 --seconds 1 --verify || fail "read-only indirect pages: $(tail -5 "$TEST_DIR/bf.log")"
[ "$(counter 51712 persistent_indirect_pages)" -eq "$ipages" ] ||
	fail "read-only indirect pages went through persistent grants"
[ "$(counter 51712 persistent_segments)" -gt "$segs0" ] || fail "data stopped using persistent grants"
[ "$(counter 51712 errors.grant)" -eq "$gerr" ] || fail "grant errors with read-only indirect pages"

info "the cache stays within its limit while the frontend uses more pages"
# qd 64 x 11-page requests name up to 704 pages; at most 64 stay mapped.
bf_bg g1 xvdb --persistent --ring-order 1 --bs 44k --workload randrw --qd 64 --seconds 3 --verify
front=$!
mapped_some() { [ "$(ring_counter 51728 persistent_mapped)" -gt 0 ]; }
wait_for $((10 * SLOW)) mapped_some || fail "no persistent grant mapped"
sleep 0.5
mapped=$(ring_counter 51728 persistent_mapped)
[ "$mapped" -gt 0 ] && [ "$mapped" -le 64 ] || fail "$mapped persistent grants mapped, limit 64"
[ "$(guest_maps)" -gt 0 ] || fail "no guest memory mapped while persistent grants are"

wait $front || fail "workload with a small cache: $(tail -5 "$TEST_DIR/bf.log")"

info "a frontend without feature-persistent: grant copy"
before=$(counter 51712 persistent_segments)
ibefore=$(counter 51712 persistent_indirect_pages)
bf g1 xvda --workload randrw --qd 32 --seconds 1 --verify || fail "copy workload"
bf g1 xvda --workload randrw --qd 16 --indirect --bs 64k --seconds 1 --verify ||
	fail "indirect copy workload"
[ "$(counter 51712 persistent_segments)" -eq "$before" ] || fail "persistent grants used without the offer"
[ "$(counter 51712 persistent_indirect_pages)" -eq "$ibefore" ] ||
	fail "indirect pages mapped persistently without the offer"

info "detach unmaps every persistent grant"
xensim block-detach g1 xvda || fail "detach xvda"
xensim block-detach g1 xvdb || fail "detach xvdb"
wait_for 3 sh -c "! grep -q 'memfd:d[0-9]*-ram' /proc/$BLKBACKD_PID/maps" ||
	fail "blkbackd still maps $(guest_maps) ranges of guest memory after detach"

info "a daemon with --max-persistent-grants 0 does not offer it"
stop_pid "$BLKBACKD_PID" || fail "blkbackd stop"
start_blkbackd --max-persistent-grants 0
sim_attach g1 xvda "$TEST_DIR/a.img"
bf g1 xvda --persistent --workload randrw --qd 16 --seconds 1 --verify || fail "workload, feature off"
xs_is "$(be_path "$g" 51712)/feature-persistent" 0 || fail "feature-persistent offered with 0"
[ "$(counter 51712 persistent_segments)" -eq 0 ] || fail "persistent grants used though not offered"
xensim block-detach g1 xvda || fail "final detach"
exit 0
