#!/bin/sh
# blkback-ctl with 1,000 vbds: list, list --json and stats show every vbd
# once, each with its own name, domain and state. How long they
# take is make bench's business (tests/bench.sh, scale section): make
# check asserts no timings.
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
blkback-ctl list >"$TEST_DIR/list.txt" || fail "list"
blkback-ctl list --json >"$TEST_DIR/list.json" || fail "list --json"
blkback-ctl stats --prometheus >"$TEST_DIR/prom.txt" || fail "stats"
# Every devid once, and each row the vbd's own: a cache that mixed up
# names between vbds, or a listing that dropped or repeated one, fails.
[ "$(jq --argjson n $N '[.vbds[].devid] | sort == [range(1; $n + 1)]' "$TEST_DIR/list.json")" = true ] ||
	fail "devids listed are not 1..$N once each"
bad=$(jq -c '[.vbds[] | select(.vdev != "v\(.devid)" or .domain != "g1" or
	.domid != '"$g1"' or .backend_state != "InitWait")] | .[0:3]' "$TEST_DIR/list.json")
[ "$bad" = "[]" ] || fail "rows that are not their vbd's: $bad"
[ "$(jq -r '.vbds[] | select(.devid == 777) | .vdev + " " + .domain' "$TEST_DIR/list.json")" = "v777 g1" ] ||
	fail "row 777: $(jq -c '.vbds[] | select(.devid == 777)' "$TEST_DIR/list.json")"
# The text listing: a header and one row per vbd, every name once.
[ "$(wc -l <"$TEST_DIR/list.txt")" = $((N + 1)) ] || fail "list has $(wc -l <"$TEST_DIR/list.txt") lines"
[ "$(tail -n +2 "$TEST_DIR/list.txt" | grep -ow 'v[0-9]*' | sort -u | wc -l)" = $N ] ||
	fail "list does not name all $N vdevs once"
# Prometheus: one series of each counter per vbd, no two alike.
[ "$(grep -c '^blkbackd_read_bytes_total{' "$TEST_DIR/prom.txt")" = $N ] || fail "prometheus rows"
[ "$(grep '^blkbackd_read_bytes_total{' "$TEST_DIR/prom.txt" | sed 's/}.*//' | sort -u | wc -l)" = $N ] ||
	fail "prometheus series repeat"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
