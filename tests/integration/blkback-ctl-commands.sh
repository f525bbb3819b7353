#!/bin/sh
# blkback-ctl list, show and stats against a live blkbackd with several
# vbds: JSON checked field by field against what the toolstack wrote,
# counters after a known workload checked exactly (N 4 KiB writes are N
# writes and 8N sectors), human tables and the Prometheus text format
# checked for shape and values (promtool check metrics), the latency
# histogram against the JSON buckets, IOPS seen while a workload runs.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v jq >/dev/null || skip "jq not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"	# for the hotplug script
ctl() { blkback-ctl --control "$CTL" "$@"; }
# jqv JSON FILTER: one value out of a reply.
jqv() { printf '%s\n' "$1" | jq -r "$2"; }

start_xensimd
start_blkbackd --control "$CTL"
[ "$(stat -c %a "$CTL")" = 600 ] || fail "control socket mode $(stat -c %a "$CTL"), wanted 600"
for i in 1 2 3; do truncate -s 64M "$TEST_DIR/disk$i.img"; done
g1=$(sim_guest g1) || fail "xensim create"
g2=$(sim_guest g2) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk1.img"
sim_attach g1 xvdb "$TEST_DIR/disk2.img" r
sim_attach g2 xvda "$TEST_DIR/disk3.img"
expect_state "$g2" 51712 2 5 "g2 InitWait"

info "list --json: every vbd as the toolstack wrote it"
out=$(ctl list --json) || fail "list --json failed"
[ "$(jqv "$out" '.vbds | length')" = 3 ] || fail "list shows $(jqv "$out" '.vbds|length') vbds, wanted 3: $out"
row=$(jqv "$out" ".vbds[] | select(.domid == $g1 and .devid == 51728)")
[ -n "$row" ] || fail "no row for $g1/51728 in $out"
[ "$(jqv "$row" .domain)" = g1 ] || fail "domain name: $row"
[ "$(jqv "$row" .vdev)" = xvdb ] || fail "vdev: $row"
[ "$(jqv "$row" .mode)" = r ] || fail "mode of the read-only disk: $row"
[ "$(jqv "$row" .target)" = "$TEST_DIR/disk2.img" ] || fail "target: $row"
[ "$(jqv "$row" .size)" = 67108864 ] || fail "size: $row"
[ "$(jqv "$row" .backend_state)" = InitWait ] || fail "backend state: $row"
[ "$(jqv "$row" .rings)" = 0 ] || fail "rings before connect: $row"
[ "$(jqv "$out" ".vbds[] | select(.domid == $g2) | .domain")" = g2 ] || fail "g2's name: $out"

info "a known workload: 100 writes of 4 KiB, then 40 reads of 8 KiB"
bf g1 xvda --workload seqwrite --bs 4k --ops 100 --qd 4 --no-readback ||
	fail "blkfront-sim write: $(tail -3 "$TEST_DIR/bf.log")"
bf g1 xvda --workload seqread --bs 8k --ops 40 --qd 4 ||
	fail "blkfront-sim read: $(tail -3 "$TEST_DIR/bf.log")"
out=$(ctl stats --json) || fail "stats --json failed"
tot=$(jqv "$out" ".vbds[] | select(.domid == $g1 and .devid == 51712) | .total")
[ -n "$tot" ] || fail "no stats for $g1/51712: $out"
[ "$(jqv "$tot" .requests.write)" = 100 ] || fail "writes counted: $tot"
[ "$(jqv "$tot" .sectors_written)" = 800 ] || fail "sectors written: $tot"
[ "$(jqv "$tot" .requests.read)" = 40 ] || fail "reads counted: $tot"
[ "$(jqv "$tot" .sectors_read)" = 640 ] || fail "sectors read: $tot"
[ "$(jqv "$tot" '.errors.validation + .errors.grant + .errors.storage')" = 0 ] ||
	fail "errors after a clean workload: $tot"
[ "$(jqv "$tot" .latency_us.count)" = 140 ] || fail "latency samples: $tot"
p50=$(jqv "$tot" .latency_us.p50); p99=$(jqv "$tot" .latency_us.p99); max=$(jqv "$tot" .latency_us.max)
[ "$p50" -le "$p99" ] && [ "$p99" -le "$max" ] && [ "$max" -gt 0 ] ||
	fail "latency percentiles out of order: p50 $p50 p99 $p99 max $max"
other=$(jqv "$out" ".vbds[] | select(.domid == $g2) | .total.requests.write")
[ "$other" = 0 ] || fail "g2 counted writes it never did: $other"

info "flushes and discards are counted"
bf g1 xvda --workload randwrite --bs 4k --ops 60 --qd 1 --flush-every 3 --discard-every 4 \
	--no-readback || fail "blkfront-sim flush/discard: $(tail -3 "$TEST_DIR/bf.log")"
tot=$(ctl stats --json | jq ".vbds[] | select(.domid == $g1 and .devid == 51712) | .total")
[ "$(jqv "$tot" .flushes)" -gt 0 ] || fail "no flushes counted: $tot"
[ "$(jqv "$tot" .requests.flush)" -gt 0 ] || fail "no flush requests counted: $tot"
[ "$(jqv "$tot" .discards)" -gt 0 ] || fail "no discards counted: $tot"
[ "$(jqv "$tot" '.requests.read + .requests.write + .requests.flush + .requests.discard')" = 200 ] ||
	fail "requests after 200: $tot"

info "a refused request counts as a validation error"
bf g1 xvdb --workload randwrite --ops 5 --qd 1 --expect-readonly --no-readback ||
	fail "writes to the read-only disk: $(tail -3 "$TEST_DIR/bf.log")"
tot=$(ctl stats --json | jq ".vbds[] | select(.domid == $g1 and .devid == 51728) | .total")
[ "$(jqv "$tot" .errors.validation)" = 5 ] || fail "validation errors: $tot"

info "while a workload runs: connected, rings, in-flight, IOPS"
bf_bg g2 xvda --workload randrw --qd 16 --seconds 8
front=$!
wait_for 10 sh -c "blkback-ctl --control '$CTL' list --json |
	jq -e '.vbds[] | select(.domid == $g2) | select(.iops > 0 and .rings == 1)' >/dev/null" ||
	fail "no IOPS seen for g2: $(ctl list --json)"
out=$(ctl show "$g2" xvda --json) || fail "show $g2 xvda"
[ "$(jqv "$out" .vbd.phase)" = connected ] || fail "show phase: $out"
[ "$(jqv "$out" .vbd.frontend_state)" = Connected ] || fail "show frontend state: $out"
[ "$(jqv "$out" '.vbd.ring_list[0].abi')" = x86_64-abi ] || fail "show abi: $out"
[ "$(jqv "$out" '.vbd.ring_list[0].step')" = running ] || fail "show step: $out"
[ "$(jqv "$out" '.vbd.ring_list[0].entries')" = 32 ] || fail "show entries: $out"
[ "$(jqv "$out" '.vbd.ring_list[0].features.max_indirect_segments')" = 256 ] || fail "show features: $out"
[ "$(ctl show "$g2" 51712 --json | jq -r .vbd.vdev)" = xvda ] || fail "show by devid"

info "human output"
ctl list >"$TEST_DIR/list.txt" || fail "list"
head -1 "$TEST_DIR/list.txt" | grep -q '^DOMID  *NAME  *DEVID  *VDEV  *STATE' || fail "list header: $(head -1 "$TEST_DIR/list.txt")"
[ "$(wc -l <"$TEST_DIR/list.txt")" = 4 ] || fail "list lines: $(cat "$TEST_DIR/list.txt")"
grep -q "^$g1  *g1  *51728  *xvdb  *Closed/Closed  *$TEST_DIR/disk2.img  *64M  *r " "$TEST_DIR/list.txt" ||
	fail "list row for xvdb: $(cat "$TEST_DIR/list.txt")"
ctl show "$g2" xvda >"$TEST_DIR/show.txt" || fail "show"
grep -q "ring 0: running, order 0 (32 entries), x86_64-abi" "$TEST_DIR/show.txt" ||
	fail "show text: $(cat "$TEST_DIR/show.txt")"
ctl stats >"$TEST_DIR/stats.txt" || fail "stats"
grep -q "sectors: read" "$TEST_DIR/stats.txt" || fail "stats text: $(cat "$TEST_DIR/stats.txt")"
wait $front || fail "g2 workload failed: $(tail -3 "$TEST_DIR/bf.log")"

info "Prometheus text format"
ctl stats --prometheus >"$TEST_DIR/prom.txt" || fail "stats --prometheus"
ctl stats --json >"$TEST_DIR/stats.json" || fail "stats --json"
for m in requests_total:counter read_bytes_total:counter written_bytes_total:counter \
	errors_total:counter flushes_total:counter discards_total:counter \
	out_of_slot_total:counter inflight_requests:gauge persistent_grants_mapped:gauge \
	request_latency_seconds:histogram; do
	[ "$(grep -c "^# TYPE blkbackd_${m%:*} ${m#*:}\$" "$TEST_DIR/prom.txt")" = 1 ] ||
		fail "TYPE ${m#*:} of ${m%:*} missing or repeated"
	[ "$(grep -c "^# HELP blkbackd_${m%:*} [A-Z]" "$TEST_DIR/prom.txt")" = 1 ] ||
		fail "HELP of ${m%:*} missing or repeated"
done
lbl="domid=\"$g1\",domain=\"g1\",devid=\"51712\",vdev=\"xvda\""
# prom NAME: the value of the sample NAME{<g1 xvda's labels>...}.
prom() { grep "^$1{$lbl[,}]" "$TEST_DIR/prom.txt" | sed -n "${2:-1}p" | cut -d' ' -f2; }
tot=$(jq -c ".vbds[] | select(.domid == $g1 and .devid == 51712) | .total" "$TEST_DIR/stats.json")
[ "$(prom blkbackd_written_bytes_total)" = $(($(jqv "$tot" .sectors_written) * 512)) ] ||
	fail "written bytes '$(prom blkbackd_written_bytes_total)', not 512 x $(jqv "$tot" .sectors_written)"
[ "$(prom blkbackd_read_bytes_total)" = $(($(jqv "$tot" .sectors_read) * 512)) ] ||
	fail "read bytes '$(prom blkbackd_read_bytes_total)', not 512 x $(jqv "$tot" .sectors_read)"
w=$(grep "^blkbackd_requests_total{$lbl,op=\"write\"}" "$TEST_DIR/prom.txt" | cut -d' ' -f2)
[ "$w" = "$(jq ".vbds[] | select(.domid == $g1 and .devid == 51712) | .total.requests.write" "$TEST_DIR/stats.json")" ] ||
	fail "prometheus writes '$w' differ from --json"
info "the latency histogram: cumulative buckets, +Inf, _count and _sum agree with --json"
lat=$(jq -c ".vbds[] | select(.domid == $g1 and .devid == 51712) | .total.latency_us" "$TEST_DIR/stats.json")
grep "^blkbackd_request_latency_seconds_bucket{$lbl," "$TEST_DIR/prom.txt" |
	sed 's/.*le="\([^"]*\)"} \(.*\)/\1 \2/' >"$TEST_DIR/buckets"
[ "$(wc -l <"$TEST_DIR/buckets")" = 32 ] || fail "$(wc -l <"$TEST_DIR/buckets") buckets, wanted 31 + +Inf"
awk 'NR > 1 && ($2 < c || ($1 != "+Inf" && $1 + 0 <= le)) { bad = 1 } { c = $2; le = $1 + 0 }
	END { exit bad }' "$TEST_DIR/buckets" || fail "buckets not cumulative in rising le: $(cat "$TEST_DIR/buckets")"
n=$(jqv "$lat" .count)
[ "$n" -ge 140 ] || fail "latency count $n, below the 140 of the known workload"
[ "$(tail -1 "$TEST_DIR/buckets")" = "+Inf $n" ] || fail "+Inf bucket: $(tail -1 "$TEST_DIR/buckets"), count $n"
[ "$(prom blkbackd_request_latency_seconds_count)" = "$n" ] || fail "_count $(prom blkbackd_request_latency_seconds_count)"
# The first bucket (le=1e-6) counts requests below 1 us: bucket 0 of --json.
[ "$(head -1 "$TEST_DIR/buckets")" = "0.000001 $(jqv "$lat" '.buckets[0]')" ] ||
	fail "first bucket $(head -1 "$TEST_DIR/buckets") vs $lat"
sum=$(prom blkbackd_request_latency_seconds_sum)
[ "$(awk -v s="$sum" -v us="$(jqv "$lat" .sum)" 'BEGIN { print (s * 1e6 - us < 1 && us - s * 1e6 < 1 && us > 0) }')" = 1 ] ||
	fail "_sum $sum s vs $(jqv "$lat" .sum) us"
# The maximum is at most the sum: the sum adds up every request.
[ "$(jqv "$lat" '.max <= .sum')" = true ] || fail "latency sum below the maximum: $lat"
ctl stats --json --prometheus 2>/dev/null && fail "--json with --prometheus accepted"

info "unknown vbd, bad arguments"
expect_fail ctl show "$g1" xvdz
ctl show "$g1" xvdz 2>&1 | grep -q "no vbd $g1/xvdz" || fail "show of a missing vbd: $(ctl show "$g1" xvdz 2>&1)"
rc=0; ctl show 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "show without arguments exited $rc, wanted 2"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"

info "promtool check metrics: the exposition format and its naming rules"
command -v promtool >/dev/null || skip "promtool not installed (Debian package prometheus)"
promtool check metrics <"$TEST_DIR/prom.txt" >"$TEST_DIR/promtool.out" 2>&1 ||
	fail "promtool check metrics: $(cat "$TEST_DIR/promtool.out")"
[ -s "$TEST_DIR/promtool.out" ] && fail "promtool warned: $(cat "$TEST_DIR/promtool.out")"
sed 's/_total{/_count{/' "$TEST_DIR/prom.txt" >"$TEST_DIR/bad.txt"
promtool check metrics <"$TEST_DIR/bad.txt" >/dev/null 2>&1 && fail "promtool accepts a counter without _total"
exit 0
