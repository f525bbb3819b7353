#!/bin/sh
# blkback-ctl show and detach take a domain name as well as an id, as xl
# does: the name is looked up among the vbds blkbackd serves; a name no
# served domain has is refused (exit 1) with a clear message, and digits
# are always an id.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 90
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v jq >/dev/null || skip "jq not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
start_xensimd
start_blkbackd --control "$CTL"
truncate -s 8M "$TEST_DIR/a.img" "$TEST_DIR/b.img"
ga=$(sim_guest web1) || fail "xensim create web1"
gb=$(sim_guest db-2) || fail "xensim create db-2"
sim_attach web1 xvda "$TEST_DIR/a.img"
sim_attach db-2 xvda "$TEST_DIR/b.img"

info "show by name and by id name the same vbd"
out=$(blkback-ctl show web1 xvda --json) || fail "show web1 xvda"
[ "$(printf '%s' "$out" | jq -r .vbd.domid)" = "$ga" ] || fail "show web1: $out"
[ "$(blkback-ctl show db-2 51712 --json | jq -r .vbd.domid)" = "$gb" ] || fail "show db-2"
[ "$(blkback-ctl show "$gb" xvda --json | jq -r .vbd.domain)" = db-2 ] || fail "show by id"

info "an unknown name: exit 1, said plainly"
rc=0
blkback-ctl show nosuch xvda 2>"$TEST_DIR/err" || rc=$?
[ $rc = 1 ] || fail "show of an unknown name exited $rc, wanted 1"
grep -q "no vbd of a domain named 'nosuch'" "$TEST_DIR/err" || fail "message: $(cat "$TEST_DIR/err")"
rc=0
blkback-ctl detach nosuch xvda 2>/dev/null || rc=$?
[ $rc = 1 ] || fail "detach of an unknown name exited $rc, wanted 1"

info "detach by name"
blkback-ctl detach db-2 xvda --timeout 10 >"$TEST_DIR/detach.out" 2>&1 ||
	fail "detach db-2 xvda: $(cat "$TEST_DIR/detach.out")"
be_state_is "$gb" 51712 6 || fail "db-2's vbd not Closed"
be_state_is "$ga" 51712 2 || fail "web1's vbd was disturbed"
