#!/bin/sh
# Storage that fails: a disk file on a tiny tmpfs runs out of space while a
# guest writes. Each failed write must come back as BLKIF_RSP_ERROR with a
# log line, reads keep working, blkbackd stays up, and a second vbd on good
# storage finishes a verified workload undisturbed.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

small="$TEST_DIR/small"
mkdir -p "$small"
mount -t tmpfs -o size=2m tmpfs "$small" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
# Unmount however the test ends; functions.sh's trap runs after this one.
trap 'rc=$?; umount -l "$small" 2>/dev/null; (exit $rc); _cleanup' EXIT

start_xensimd
start_blkbackd ${BLKBACKD_ENGINE:+--io-engine=$BLKBACKD_ENGINE}
truncate -s 64M "$small/full.img"	# sparse: 64 MiB promised, 2 MiB real
truncate -s 32M "$TEST_DIR/good.img"
g1=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$small/full.img"
sim_attach g1 xvdb "$TEST_DIR/good.img"

info "a verified workload on the good disk, beside the failing one"
bf_bg g1 xvdb --workload randrw --bs 4k --qd 16 --ops 20000 --verify
good_pid=$!

info "sequential writes fill the 2 MiB tmpfs and must fail with error responses"
if blkfront-sim --domain g1 --vdev xvda --workload seqwrite --bs 16k --qd 8 --ops 1000 \
	--no-readback --json >"$TEST_DIR/full.json" 2>"$TEST_DIR/full.log"; then
	fail "writes past the space of the storage all succeeded"
fi
grep -q '"errors": [1-9]' "$TEST_DIR/full.json" ||
	fail "no error responses counted: $(cat "$TEST_DIR/full.json" "$TEST_DIR/full.log")"
grep -q '"mismatches": 0' "$TEST_DIR/full.json" || fail "mismatches on the failing disk"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died on storage errors"
grep -qi 'No space left' "$TEST_DIR/blkbackd.log" || fail "no log line for the storage error"

info "reads of the failing disk still work"
be_state_is "$g1" 51712 6 && fe_restart "$g1" 51712
bf g1 xvda --workload randread --bs 4k --qd 8 --ops 500 ||
	fail "reads after storage errors: $(tail -5 "$TEST_DIR/bf.log")"

wait "$good_pid" || fail "the good disk's verified workload failed: $(tail -5 "$TEST_DIR/bf.log")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
info "ok"
