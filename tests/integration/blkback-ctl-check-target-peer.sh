#!/bin/sh
# What check-target tells a non-root member of the control group: about a
# path it could stat itself, what root would be told; about one it could
# not (a directory it may not search), only what its own stat says, the
# same whether the file is there or not; the same for an image format's
# file, and nothing about a UNIX socket export. Root is told everything. A real
# unprivileged user (nobody, a member of nogroup) asks.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 60
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v setpriv >/dev/null || skip "setpriv not installed"
getent group nogroup >/dev/null || skip "no nogroup group"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
# as_member ARGS...: blkback-ctl as nobody, in nogroup by a supplementary
# group only (its primary group is daemon's).
as_member() { setpriv --reuid=65534 --regid=1 --groups=65534 blkback-ctl "$@"; }
# answer WHO MODE TARGET: "ok", or the reason check-target gave.
answer() {
	local who=$1
	shift
	if $who check-target --mode "$1" "$2" >"$TEST_DIR/out" 2>&1; then
		echo ok
	else
		cat "$TEST_DIR/out"
	fi
}
as_root() { blkback-ctl "$@"; }
expect() {
	local got
	got=$(answer "$1" "$2" "$3")
	case "$got" in
	*$4*) ;;
	*) fail "$1 check-target --mode $2 $3: '$got', wanted '$4'" ;;
	esac
}

chmod 711 "$TEST_DIR"
mkdir -m 700 "$TEST_DIR/secret"
mkdir -m 755 "$TEST_DIR/pub"
truncate -s 8M "$TEST_DIR/secret/disk.img" "$TEST_DIR/pub/root-only.img"
chmod 600 "$TEST_DIR/secret/disk.img" "$TEST_DIR/pub/root-only.img"

start_xensimd
start_blkbackd --control "$CTL" --control-group nogroup
as_member status >/dev/null || fail "a member of nogroup cannot use the socket"

info "root is told everything"
expect as_root w "$TEST_DIR/secret/disk.img" ok
expect as_root r "$TEST_DIR/secret/missing.img" "No such file or directory"

info "a member, behind a directory it may not search"
expect as_member r "$TEST_DIR/secret/disk.img" "Permission denied (for uid 65534)"
expect as_member r "$TEST_DIR/secret/missing.img" "Permission denied (for uid 65534)"
# The directory itself it can stat (its parent is 711).
expect as_member r "$TEST_DIR/secret" "not a regular file or block device"
[ "$(answer as_member r "$TEST_DIR/secret/disk.img" | sed 's/disk.img/X/')" = \
  "$(answer as_member r "$TEST_DIR/secret/missing.img" | sed 's/missing.img/X/')" ] ||
	fail "a member tells an existing file from a missing one behind a closed directory"

info "a member, about an image file or a socket named inside a target"
# An image format's file is a path like any other.
expect as_member r "qcow2:$TEST_DIR/secret/disk.img" "Permission denied (for uid 65534)"
[ "$(answer as_member r "qcow2:$TEST_DIR/secret/disk.img" | sed 's/disk.img/X/')" = \
  "$(answer as_member r "qcow2:$TEST_DIR/secret/missing.img" | sed 's/missing.img/X/')" ] ||
	fail "a member tells an existing image from a missing one behind a closed directory"
# A UNIX socket in a URI query is decoded by libnbd alone: members are
# not told about it at all, whether it is there or not.
expect as_member r "nbd+unix:///?socket=$TEST_DIR/secret/nbd.sock" \
	"only root may check a UNIX socket export"
expect as_member r "nbds+unix:///?socket=$TEST_DIR/pub/missing.sock" \
	"only root may check a UNIX socket export"
expect as_root r "nbd+unix:///?socket=$TEST_DIR/secret/missing.sock" "No such file or directory"
# TCP reaches no path here: anyone may ask.
expect as_member r "nbd://127.0.0.1:1/" "Connection refused"

info "a member, about paths it can stat: root's answer"
expect as_member w "$TEST_DIR/pub/root-only.img" ok
expect as_member r "$TEST_DIR/pub/missing.img" "missing.img: No such file or directory"
expect as_member r "$TEST_DIR/pub" "not a regular file or block device"

info "the member's groups count"
chmod 750 "$TEST_DIR/secret"
chgrp nogroup "$TEST_DIR/secret"
expect as_member w "$TEST_DIR/secret/disk.img" ok
# Without nogroup among its groups the same user is refused at the socket.
rc=0
setpriv --reuid=65534 --regid=1 --clear-groups blkback-ctl status >/dev/null 2>&1 || rc=$?
[ $rc = 5 ] || fail "a non-member got exit $rc"

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
