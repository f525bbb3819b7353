#!/bin/sh
# The hotplug script (hotplug/blkbackd) run by xensim block-attach against a
# live blkbackd: a good target connects; a read-only file asked for rw and a
# target another vbd has rw fail with hotplug-error, hotplug-status=error,
# exit 1 and the reason in block-attach's message, and so do missing
# targets and wrong kinds; missing blkback-ctl or daemon fail the same way
# when the script runs; remove withdraws hotplug-status; with and without Xen's helpers.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

SCRIPT="$top_srcdir/hotplug/blkbackd"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"

# attach DOMAIN VDEV ACCESS TARGET: block-attach; status in $rc, stderr in err.
attach() {
	rc=0
	xensim block-attach "$1" "vdev=$2, access=$3, script=blkbackd, target=$4" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
}

# run_script ACTION DOMID DEVID [ENV...]: the script by hand, as libxl runs
# it; status in $rc, stderr in $TEST_DIR/err.
run_script() {
	local action=$1 dom=$2 dev=$3
	shift 3
	rc=0
	env XENBUS_PATH="backend/vbd/$dom/$dev" XENBUS_TYPE=vbd XENBUS_BASE_PATH=backend \
		script="$SCRIPT" "$@" "$SCRIPT" "$action" </dev/null \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
}

# expect_error BE MSG: the script's failure as libxl and xl see it.
expect_hp_error() {
	xs_is "$1/hotplug-status" error || fail "$1/hotplug-status is '$(xenstore-read "$1/hotplug-status" 2>&1)'"
	herr=$(xenstore-read "$1/hotplug-error" 2>/dev/null) || fail "no $1/hotplug-error"
	case "$herr" in *"$2"*) ;; *) fail "hotplug-error '$herr' lacks '$2'" ;; esac
}

start_xensimd
start_blkbackd
truncate -s 8M "$TEST_DIR/good.img" "$TEST_DIR/ro.img" "$TEST_DIR/my disk, 1.img"
chmod 0444 "$TEST_DIR/ro.img"
g=$(sim_guest g1) || fail "xensim create"

info "a good target: connected, exit 0"
attach g1 xvda w "$TEST_DIR/good.img"
[ $rc = 0 ] || fail "block-attach good: $rc $(cat "$TEST_DIR/err")"
xs_is "$(be_path "$g" 51712)/hotplug-status" connected || fail "not connected"
xenstore-exists "$(be_path "$g" 51712)/hotplug-error" && fail "hotplug-error after success"
xs_is "$(be_path "$g" 51712)/physical-device-path" "$(readlink -f "$TEST_DIR/good.img")" ||
	fail "physical-device-path is '$(xenstore-read "$(be_path "$g" 51712)/physical-device-path" 2>&1)'"

info "a target with spaces and commas (target= last)"
attach g1 xvdb w "$TEST_DIR/my disk, 1.img"
[ $rc = 0 ] || fail "block-attach spaced: $rc $(cat "$TEST_DIR/err")"
xs_is "$(be_path "$g" 51728)/params" "$TEST_DIR/my disk, 1.img" || fail "params mangled"
xs_is "$(be_path "$g" 51728)/hotplug-status" connected || fail "spaced not connected"
xs_is "$(be_path "$g" 51728)/physical-device-path" "$(readlink -f "$TEST_DIR/my disk, 1.img")" ||
	fail "spaced physical-device-path mangled"

info "read-only file with access=w: refused with the reason"
attach g1 xvdc w "$TEST_DIR/ro.img"
[ $rc = 1 ] || fail "block-attach ro+w exited $rc: $(cat "$TEST_DIR/err")"
expect_msg "$TEST_DIR/err" "hotplug script failed"
expect_msg "$TEST_DIR/err" "read-only"
expect_gone "$(be_path "$g" 51744)"
info "the same file read-only is fine"
attach g1 xvdc r "$TEST_DIR/ro.img"
[ $rc = 0 ] || fail "block-attach ro+r: $rc $(cat "$TEST_DIR/err")"

info "a target another vbd has read-write: refused, names the user"
attach g1 xvdd w "$TEST_DIR/good.img"
[ $rc = 1 ] || fail "block-attach in-use exited $rc: $(cat "$TEST_DIR/err")"
expect_msg "$TEST_DIR/err" "in use read-write by domain $g device 51712"
expect_gone "$(be_path "$g" 51760)"
attach g1 xvdd r "$TEST_DIR/good.img"
[ $rc = 1 ] || fail "block-attach in-use read-only exited $rc"
expect_msg "$TEST_DIR/err" "in use read-write"

info "a missing target: the daemon still reaches InitWait, the script refuses"
attach g1 xvde w "$TEST_DIR/no such.img"
[ $rc = 1 ] || fail "block-attach missing exited $rc: $(cat "$TEST_DIR/err")"
expect_msg "$TEST_DIR/err" "hotplug script failed"
expect_msg "$TEST_DIR/err" "$TEST_DIR/no such.img: No such file or directory"
expect_gone "$(be_path "$g" 51776)"
info "a directory as target: refused the same way"
attach g1 xvde w "$TEST_DIR"
[ $rc = 1 ] || fail "block-attach directory exited $rc: $(cat "$TEST_DIR/err")"
expect_msg "$TEST_DIR/err" "not a regular file or block device"
expect_gone "$(be_path "$g" 51776)"

# The script's own answers, run by hand on a backend dir the daemon does
# not claim.
info "script by hand: missing target, a directory, spaces in the reason"
vbd_write 9 51712 "$TEST_DIR/no such.img" /etc/xen/scripts/other-backend
be9=$(be_path 9 51712)
run_script add 9 51712
[ $rc = 1 ] || fail "missing target: exit $rc"
expect_hp_error "$be9" "$TEST_DIR/no such.img: No such file or directory"
expect_msg "$TEST_DIR/err" "No such file or directory"
xenstore-write "$be9/params" "$TEST_DIR"
run_script add 9 51712
[ $rc = 1 ] || fail "directory target: exit $rc"
expect_hp_error "$be9" "not a regular file or block device"

info "by hand: a good target clears an old hotplug-error"
xenstore-write "$be9/params" "$TEST_DIR/ro.img" "$be9/mode" r
run_script add 9 51712
[ $rc = 0 ] || fail "good by hand: exit $rc $(cat "$TEST_DIR/err")"
xs_is "$be9/hotplug-status" connected || fail "by hand: not connected"
expect_gone "$be9/hotplug-error"

info "by hand: unknown mode, no params, no backend dir"
xenstore-write "$be9/mode" x
run_script add 9 51712
[ $rc = 1 ] || fail "mode x: exit $rc"
expect_hp_error "$be9" "unknown access mode 'x'"
xenstore-write "$be9/mode" r "$be9/params" ""
run_script add 9 51712
[ $rc = 1 ] || fail "empty params: exit $rc"
expect_hp_error "$be9" "no target"
run_script add 9 4242
[ $rc = 1 ] || fail "no backend dir: exit $rc"
expect_msg "$TEST_DIR/err" "does not exist"
rc=0
env -u XENBUS_PATH "$SCRIPT" add 2>"$TEST_DIR/err" || rc=$?
[ $rc = 1 ] || fail "no XENBUS_PATH: exit $rc"
expect_msg "$TEST_DIR/err" "XENBUS_PATH is not set"
run_script frobnicate 9 51712
[ $rc = 1 ] || fail "unknown action: exit $rc"
expect_msg "$TEST_DIR/err" "usage"

info "by hand: blkback-ctl missing, daemon not listening"
xenstore-write "$be9/params" "$TEST_DIR/ro.img"
run_script add 9 51712 BLKBACK_CTL="$TEST_DIR/nonexistent/blkback-ctl"
[ $rc = 1 ] || fail "no blkback-ctl: exit $rc"
expect_hp_error "$be9" "blkback-ctl"
run_script add 9 51712 BLKBACK_CTL_SOCKET="$TEST_DIR/nobody.sock"
[ $rc = 1 ] || fail "no daemon: exit $rc"
herr=$(xenstore-read "$be9/hotplug-error")
[ -n "$herr" ] || fail "no daemon: empty hotplug-error"
xs_is "$be9/hotplug-status" error || fail "no daemon: status not error"

info "by hand: physical-device-path for a symlink and NBD URIs"
# blkback-ctl stands in (true): the local path is the script's own answer.
(cd "$TEST_DIR" && ln -s ro.img link.img)
xenstore-write "$be9/params" "$TEST_DIR/link.img" "$be9/mode" r
run_script add 9 51712 BLKBACK_CTL=true
[ $rc = 0 ] || fail "symlink: exit $rc $(cat "$TEST_DIR/err")"
xs_is "$be9/physical-device-path" "$(readlink -f "$TEST_DIR/ro.img")" ||
	fail "symlink: physical-device-path '$(xenstore-read "$be9/physical-device-path")'"
for uri in nbd://127.0.0.1:10809/vm1 'nbd+unix:///vm1?socket=/run/nbd/vm1.sock'; do
	xenstore-write "$be9/params" "$uri"
	run_script add 9 51712 BLKBACK_CTL=true
	[ $rc = 0 ] || fail "$uri: exit $rc $(cat "$TEST_DIR/err")"
	xs_is "$be9/physical-device-path" "$uri" ||
		fail "$uri: physical-device-path '$(xenstore-read "$be9/physical-device-path")'"
done
for uri in nbds://127.0.0.1/vm1 'nbd+vsock:///vm1'; do
	xenstore-write "$be9/params" "$uri"
	run_script add 9 51712 BLKBACK_CTL=true
	[ $rc = 0 ] || fail "$uri: exit $rc $(cat "$TEST_DIR/err")"
	expect_gone "$be9/physical-device-path"
done
for t in qcow2:/srv/vm1.qcow2 vmdk:/srv/vm1.vmdk rbd:vms/vm1; do
	xenstore-write "$be9/params" "$t"
	run_script add 9 51712 BLKBACK_CTL=true
	[ $rc = 0 ] || fail "$t: exit $rc $(cat "$TEST_DIR/err")"
	expect_gone "$be9/physical-device-path"
done
xenstore-write "$be9/params" "$TEST_DIR/ro.img"
run_script add 9 51712 BLKBACK_CTL=true
xenstore-exists "$be9/physical-device-path" || fail "no physical-device-path for ro.img"

info "by hand: a backslash in params reaches blkback-ctl as it is"
# An rbd: target's mon_host=HOST\:PORT: xenstore-write takes \\ for one
# backslash; the stand-in blkback-ctl records the target it is given.
printf '#!/bin/sh\nfor a; do t=$a; done\nprintf "%%s" "$t" >"%s/ctl-target"\n' "$TEST_DIR" \
	>"$TEST_DIR/ctl-record"
chmod +x "$TEST_DIR/ctl-record"
xenstore-write "$be9/params" 'rbd:vms/vm1:mon_host=127.0.0.1\\:6789'
[ "$(xenstore-read -R "$be9/params")" = 'rbd:vms/vm1:mon_host=127.0.0.1\:6789' ] ||
	fail "params holds '$(xenstore-read -R "$be9/params")'"
run_script add 9 51712 BLKBACK_CTL="$TEST_DIR/ctl-record"
[ $rc = 0 ] || fail "backslash: exit $rc $(cat "$TEST_DIR/err")"
[ "$(cat "$TEST_DIR/ctl-target")" = 'rbd:vms/vm1:mon_host=127.0.0.1\:6789' ] ||
	fail "blkback-ctl was given '$(cat "$TEST_DIR/ctl-target")'"
xenstore-write "$be9/params" "$TEST_DIR/ro.img"

info "remove withdraws hotplug-status, hotplug-error and physical-device-path"
run_script remove 9 51712
[ $rc = 0 ] || fail "remove: exit $rc"
expect_gone "$be9/hotplug-status"
expect_gone "$be9/hotplug-error"
expect_gone "$be9/physical-device-path"
xenstore-exists "$be9/params" || fail "remove deleted the backend's other nodes"
run_script remove 9 4242
[ $rc = 0 ] || fail "remove of a missing dir: exit $rc"

info "without Xen's helpers (XEN_SCRIPT_DIR = an empty dir)"
mkdir "$TEST_DIR/empty"
run_script add 9 51712 XEN_SCRIPT_DIR="$TEST_DIR/empty"
[ $rc = 0 ] || fail "no helpers: exit $rc $(cat "$TEST_DIR/err")"
xs_is "$be9/hotplug-status" connected || fail "no helpers: not connected"

info "with stand-in helpers: the script uses their success and fatal"
mkdir "$TEST_DIR/fakexen"
cat >"$TEST_DIR/fakexen/xen-hotplug-common.sh" <<'EOS'
log() { echo "log $*" >>"$HELPER_LOG"; }
fatal() { echo "fatal $*" >>"$HELPER_LOG"; xenstore-write "$XENBUS_PATH/hotplug-error" "$*" "$XENBUS_PATH/hotplug-status" error; exit 1; }
success() { echo success >>"$HELPER_LOG"; xenstore-write "$XENBUS_PATH/hotplug-status" connected; }
EOS
export HELPER_LOG="$TEST_DIR/helper.log"
run_script add 9 51712 XEN_SCRIPT_DIR="$TEST_DIR/fakexen"
[ $rc = 0 ] || fail "fake helpers: exit $rc"
grep -qx success "$HELPER_LOG" || fail "helpers' success not used: $(cat "$HELPER_LOG")"
xenstore-write "$be9/mode" w
run_script add 9 51712 XEN_SCRIPT_DIR="$TEST_DIR/fakexen"
[ $rc = 1 ] || fail "fake helpers ro+w: exit $rc"
grep -q "^fatal .*read-only" "$HELPER_LOG" || fail "helpers' fatal not used: $(cat "$HELPER_LOG")"

if [ -r /etc/xen/scripts/xen-hotplug-common.sh ] && command -v bash >/dev/null; then
	info "with Xen's real helpers, installed next to the script"
	mkdir "$TEST_DIR/xenscripts"
	for f in /etc/xen/scripts/*.sh; do ln -s "$f" "$TEST_DIR/xenscripts/"; done
	cp "$SCRIPT" "$TEST_DIR/xenscripts/blkbackd"
	SCRIPT="$TEST_DIR/xenscripts/blkbackd"
	run_script add 9 51712
	[ $rc = 1 ] || fail "real helpers ro+w: exit $rc"
	expect_hp_error "$be9" "read-only"
	xenstore-write "$be9/mode" r
	run_script add 9 51712
	[ $rc = 0 ] || fail "real helpers good: exit $rc"
	xs_is "$be9/hotplug-status" connected || fail "real helpers: not connected"
	run_script remove 9 51712
	[ $rc = 0 ] || fail "real helpers remove: exit $rc"
	expect_gone "$be9/hotplug-status"
else
	info "Xen's helpers not installed: real-helper case not run"
fi

info "block-detach runs remove; the daemon lives"
xensim block-detach g1 xvda --timeout 5 || fail "block-detach xvda"
expect_gone "$(be_path "$g" 51712)"
attach g1 xvdd w "$TEST_DIR/good.img"
[ $rc = 0 ] || fail "good.img not free after detach: $(cat "$TEST_DIR/err")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
