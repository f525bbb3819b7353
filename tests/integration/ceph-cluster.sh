#!/bin/sh
# The one-node Ceph cluster the RBD tests run on (tests/ceph-lib.sh): it
# comes up healthy, rbd bench writes to an image, an image imported from a
# file exports back identical, and its data survives a restart of the OSD
# (a real store, not memory).
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/ceph-lib.sh"
test_timeout 300

ceph_start
health=$(ceph_cmd health)
[ "$health" = HEALTH_OK ] || fail "the cluster is not healthy: $health"

rbd_cmd create rbd/bench --size 64M || fail "rbd create"
rbd_cmd bench --io-type write --io-size 64K --io-total 32M rbd/bench >"$TEST_DIR/bench.out" 2>&1 ||
	fail "rbd bench: $(tail -2 "$TEST_DIR/bench.out")"
info "rbd bench: $(tail -1 "$TEST_DIR/bench.out")"

head -c 24M /dev/urandom >"$TEST_DIR/in.img"
rbd_cmd import "$TEST_DIR/in.img" rbd/round >/dev/null 2>&1 || fail "rbd import"
rbd_cmd export rbd/round "$TEST_DIR/out.img" >/dev/null 2>&1 || fail "rbd export"
cmp "$TEST_DIR/in.img" "$TEST_DIR/out.img" || fail "the image exported back differs from the one imported"

info "the OSD restarted: the image is still there and still the same"
ceph_osd_stop
ceph_osd_start
wait_for 60 ceph_osd_up || fail "the OSD did not come back within 60 s"
rm -f "$TEST_DIR/out.img"
rbd_cmd export rbd/round "$TEST_DIR/out.img" >/dev/null 2>&1 || fail "rbd export after the OSD restart"
cmp "$TEST_DIR/in.img" "$TEST_DIR/out.img" || fail "the image differs after the OSD restart"
