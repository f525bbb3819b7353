#!/bin/sh
# blkback-ctl with 1,000 vbds: list, list --json and stats answer quickly
# (names are cached, no xenstore round trips per vbd once read) and show
# every vbd.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v jq >/dev/null || skip "jq not installed"
N=1000
# Each vbd holds its storage open.
ulimit -n 4096 2>/dev/null || skip "cannot raise the fd limit for $N vbds"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
start_xensimd
start_blkbackd --control "$CTL"
truncate -s 1M "$TEST_DIR/disk.img"
g1=$(sim_guest g1) || fail "xensim create"

info "$N vbds, written 50 to a transaction"
i=1
while [ $i -le $N ]; do
	set --
	j=$i
	while [ $j -lt $((i + 50)) ] && [ $j -le $N ]; do
		be=$(be_path "$g1" $j); fe=$(fe_path "$g1" $j)
		set -- "$@" "$be/frontend" "$fe" "$be/params" "$TEST_DIR/disk.img" \
			"$be/script" blkbackd "$be/frontend-id" "$g1" "$be/online" 1 \
			"$be/state" 1 "$be/dev" "v$j" "$be/mode" r "$fe/state" 1 \
			"$fe/backend" "$be"
		j=$((j + 1))
	done
	xenstore-write "$@" || fail "xenstore-write"
	i=$j
done
count() { [ "$(blkback-ctl list --json | jq '[.vbds[] | select(.backend_state == "InitWait")] | length')" = $N ]; }
wait_for 120 count || fail "only $(blkback-ctl list --json | jq '.vbds | length') vbds listed"

info "list, list --json and stats with $N vbds"
t0=$(date +%s%N)
blkback-ctl list >"$TEST_DIR/list.txt" || fail "list"
t1=$(date +%s%N)
blkback-ctl list --json >"$TEST_DIR/list.json" || fail "list --json"
t2=$(date +%s%N)
blkback-ctl stats --prometheus >"$TEST_DIR/prom.txt" || fail "stats"
t3=$(date +%s%N)
info "list $(( (t1 - t0) / 1000000 )) ms, list --json $(( (t2 - t1) / 1000000 )) ms, stats $(( (t3 - t2) / 1000000 )) ms"
[ $(( (t1 - t0) / 1000000 )) -lt 1000 ] || fail "list took $(( (t1 - t0) / 1000000 )) ms"
[ $(( (t2 - t1) / 1000000 )) -lt 1000 ] || fail "list --json took $(( (t2 - t1) / 1000000 )) ms"
[ $(( (t3 - t2) / 1000000 )) -lt 2000 ] || fail "stats took $(( (t3 - t2) / 1000000 )) ms"
[ "$(wc -l <"$TEST_DIR/list.txt")" = $((N + 1)) ] || fail "list has $(wc -l <"$TEST_DIR/list.txt") lines"
[ "$(jq '[.vbds[].vdev] | unique | length' "$TEST_DIR/list.json")" = $N ] || fail "vdev names not all distinct"
[ "$(jq -r '.vbds[] | select(.devid == 777) | .vdev + " " + .domain' "$TEST_DIR/list.json")" = "v777 g1" ] ||
	fail "row 777: $(jq -c '.vbds[] | select(.devid == 777)' "$TEST_DIR/list.json")"
[ "$(grep -c '^blkbackd_sectors_read_total{' "$TEST_DIR/prom.txt")" = $N ] || fail "prometheus rows"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
