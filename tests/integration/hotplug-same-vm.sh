#!/bin/sh
# Same-VM sharing, as xl migrate to the same host needs it: the
# destination domain (same uuid, so the same vm node) attaches the disk
# the source domain still has read-write. The hotplug script names the
# new vbd's domain; check-target lets a domain of the same VM share the
# target and refuses everyone else as before: another VM, a domain whose
# vm node is gone, the same domain twice, a caller naming no domain.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"
UUID=4b1e2a0c-5d6f-4a3b-9c8d-7e6f5a4b3c2d

# attach DOMAIN VDEV TARGET: block-attach rw; status in $rc, stderr in err
attach() {
	rc=0
	xensim block-attach "$1" "vdev=$2, access=w, script=blkbackd, target=$3" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
}
# check DOMID: check-target --mode w of disk.img for DOMID; status in $rc
check() {
	rc=0
	blkback-ctl check-target --mode w --domain "$1" "$TEST_DIR/disk.img" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
}

start_xensimd
start_blkbackd
truncate -s 8M "$TEST_DIR/disk.img"

info "xensim create --uuid: two domains, one vm node"
src=$(xensim create src --uuid $UUID) || fail "create src"
dst=$(xensim create dst--incoming --uuid $UUID) || fail "create dst"
other=$(xensim create other) || fail "create other"
xs_is "/local/domain/$src/vm" "/vm/$UUID" || fail "src vm is $(xenstore-read /local/domain/$src/vm)"
xs_is "/local/domain/$dst/vm" "/vm/$UUID" || fail "dst vm is $(xenstore-read /local/domain/$dst/vm)"
rc=0; xensim create bad --uuid not-a-uuid 2>"$TEST_DIR/err" || rc=$?
[ $rc != 0 ] || fail "a bad --uuid was taken"
expect_msg "$TEST_DIR/err" "bad --uuid"

info "the source has the disk read-write"
attach src xvda "$TEST_DIR/disk.img"
[ $rc = 0 ] || fail "src attach: $(cat "$TEST_DIR/err")"

info "another VM is refused, naming the source"
attach other xvda "$TEST_DIR/disk.img"
[ $rc = 1 ] || fail "other VM attach exited $rc: $(cat "$TEST_DIR/err")"
expect_msg "$TEST_DIR/err" "in use read-write by domain $src device 51712"

info "check-target by hand: only another domain of the same VM"
check "$dst"
[ $rc = 0 ] || fail "dst: exit $rc $(cat "$TEST_DIR/err")"
check "$src"
[ $rc = 1 ] || fail "the same domain twice: exit $rc"
check "$other"
[ $rc = 1 ] || fail "other: exit $rc"
rc=0; blkback-ctl check-target --mode w "$TEST_DIR/disk.img" 2>"$TEST_DIR/err" || rc=$?
[ $rc = 1 ] || fail "no --domain: exit $rc"
expect_msg "$TEST_DIR/err" "in use read-write"
rc=0; blkback-ctl check-target --mode w --domain nine "$TEST_DIR/disk.img" 2>"$TEST_DIR/err" || rc=$?
[ $rc = 2 ] || fail "--domain nine: exit $rc"
check 4242
[ $rc = 1 ] || fail "a domain that does not exist: exit $rc"

info "a domain of the VM whose vm node is gone is refused"
gone=$(xensim create gone --uuid $UUID) || fail "create gone"
xenstore-rm "/local/domain/$gone/vm"
check "$gone"
[ $rc = 1 ] || fail "no vm node: exit $rc"

info "a read-only request of the same VM shares too; another VM's does not"
rc=0; blkback-ctl check-target --mode r --domain "$dst" "$TEST_DIR/disk.img" 2>"$TEST_DIR/err" || rc=$?
[ $rc = 0 ] || fail "dst read-only: exit $rc $(cat "$TEST_DIR/err")"
rc=0; blkback-ctl check-target --mode r --domain "$other" "$TEST_DIR/disk.img" 2>"$TEST_DIR/err" || rc=$?
[ $rc = 1 ] || fail "other read-only: exit $rc"

info "the destination of the same VM shares it"
attach dst--incoming xvda "$TEST_DIR/disk.img"
[ $rc = 0 ] || fail "same-VM attach refused: $(cat "$TEST_DIR/err")"
xs_is "$(be_path "$dst" 51712)/hotplug-status" connected || fail "dst not connected"

info "the source leaves; the disk stays the destination's"
xensim destroy src --timeout 5 || fail "destroy src"
attach other xvda "$TEST_DIR/disk.img"
[ $rc = 1 ] || fail "other after the source left: exit $rc"
expect_msg "$TEST_DIR/err" "in use read-write by domain $dst"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
