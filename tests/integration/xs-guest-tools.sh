#!/bin/sh
# A guest's view of xensimd's xenstore through the stock tools on its own
# socket (DIR/domain/<id>/socket): relative paths, permission denials,
# the value quota, watches, and what release does to it.
. "$top_srcdir/tests/functions.sh"
test_timeout 60
command -v xenstore-read >/dev/null || skip "xenstore-utils not installed"
start_xensimd

# A high domid keeps clear of ids the simulator's domain code hands out.
id=4242
gsock="$XENSIM_DIR/domain/$id/socket"
"$top_builddir/tests/xs-libclient" "$XENSIM_DIR" introduce $id >/dev/null || fail "introduce $id"
test -S "$gsock" || fail "no guest socket"
xenstore-write /local/domain/$id/name guest &&
	xenstore-chmod /local/domain/$id n0 r$id &&
	xenstore-chmod /local/domain/$id/name n0 r$id &&
	xenstore-write /local/domain/$id/data/x hi &&
	xenstore-chmod -r /local/domain/$id/data n$id || fail "dom0 sets up the guest's home"

guest() { XENSTORED_PATH="$gsock" "$@"; }

[ "$(guest xenstore-read name)" = guest ] || fail "guest reads its home relative"
[ "$(guest xenstore-read data/x)" = hi ] || fail "guest reads data/x"
guest xenstore-write data/y v || fail "guest writes in its own dir"
xs_is /local/domain/$id/data/y v || fail "dom0 does not see the guest's write"
xenstore-ls -p /local/domain/$id/data | grep -q "y = \"v\".*(n$id)" || fail "guest does not own data/y"
[ "$(guest xenstore-list data)" = "$(printf 'x\ny')" ] || fail "guest xenstore-list"
guest xenstore-exists data/y || fail "guest xenstore-exists"
guest xenstore-rm data/y || fail "guest xenstore-rm"
expect_fail xs_is /local/domain/$id/data/y v

# Denials.
expect_fail guest xenstore-read /local/domain/0/name
expect_fail guest xenstore-write /local/domain/0/evil 1
expect_fail guest xenstore-write /evil 1
expect_fail guest xenstore-write name hacked
expect_fail guest xenstore-rm name
expect_fail guest xenstore-chmod name b$id
expect_fail guest xenstore-chmod data/x n0
expect_fail xs_is /evil 1
xs_is /local/domain/$id/name guest || fail "guest changed a read-only node"

# Value quota: 2048 bytes for a guest, none for dom0.
v2048=$(head -c 2048 /dev/zero | tr '\0' v)
guest xenstore-write data/big "$v2048" || fail "2048-byte value refused"
expect_fail guest xenstore-write data/big "${v2048}v"
xenstore-write /local/domain/$id/data/big "${v2048}v" || fail "dom0 limited by guest quota"

# Watches from the guest come back relative; dom0-only nodes stay silent.
guest xenstore-watch -n 2 data >"$TEST_DIR/gwatch.out" 2>&1 &
wpid=$!
wait_for 5 grep -qx data "$TEST_DIR/gwatch.out" || fail "guest: no initial event"
xenstore-write /local/domain/0/secret s
xenstore-write /local/domain/$id/data/z 1
wait "$wpid" || fail "guest watch did not finish"
[ "$(cat "$TEST_DIR/gwatch.out")" = "$(printf 'data\ndata/z')" ] ||
	fail "guest watch events: $(cat "$TEST_DIR/gwatch.out")"

# Release: @releaseDomain fires, the socket goes, the nodes stay.
xenstore-watch -n 2 @releaseDomain >"$TEST_DIR/rel.out" 2>&1 &
wpid=$!
wait_for 5 grep -qx @releaseDomain "$TEST_DIR/rel.out" || fail "no initial @releaseDomain"
"$top_builddir/tests/xs-libclient" "$XENSIM_DIR" release $id >/dev/null || fail "release $id"
wait "$wpid" || fail "no @releaseDomain event on release"
[ ! -e "$gsock" ] || fail "guest socket left after release"
expect_fail guest xenstore-read name
xs_is /local/domain/$id/data/x hi || fail "release removed the guest's nodes"

# The same through the simulator's own domain lifecycle (xensim create
# and destroy call introduce and release inside xensimd).
command -v xensim >/dev/null || { info "xensim not built: lifecycle part skipped"; exit 0; }
xenstore-watch -n 2 @introduceDomain >"$TEST_DIR/intro.out" 2>&1 &
wpid=$!
wait_for 5 grep -qx @introduceDomain "$TEST_DIR/intro.out" || fail "no initial @introduceDomain"
dom=$(xensim create xsguest) || fail "xensim create"
wait "$wpid" || fail "no @introduceDomain on xensim create"
test -S "$XENSIM_DIR/domain/$dom/socket" || fail "no socket for domain $dom"
[ "$(XENSTORED_PATH="$XENSIM_DIR/domain/$dom/socket" xenstore-read name)" = xsguest ] ||
	fail "domain $dom cannot read its name"
xensim destroy "$dom" || fail "xensim destroy"
[ ! -e "$XENSIM_DIR/domain/$dom/socket" ] || fail "socket of destroyed domain $dom left"
exit 0
