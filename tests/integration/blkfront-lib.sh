# Shared by the blkfront-*.sh tests (sourced after functions.sh): a
# simulator with blkbackd, guests made and disks attached by xensim as
# libxl would, and blkfront-sim runs whose JSON reports are checked.

# Skip (77) unless every program of the chain is built.
bf_require() {
	local p
	for p in xensimd xensim blkbackd blkfront-sim; do
		command -v "$p" >/dev/null 2>&1 || skip "$p is not built yet"
	done
	[ -x "$top_srcdir/hotplug/blkbackd" ] || skip "hotplug/blkbackd script missing"
	export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"
}

# bf_guest NAME: create a guest, print its domid.
bf_guest() {
	xensim create "$1" || fail "xensim create $1 failed"
}

# bf_attach DOMID VDEV FILE [SPEC]: attach FILE with script=blkbackd; SPEC
# (default "access=rw") goes before target=, which libxl wants last.
bf_attach() {
	local spec="vdev=$2, script=blkbackd, ${4:-access=rw}, target=$3"
	xensim block-attach "$1" "$spec" >>"$TEST_DIR/xensim.log" 2>&1 ||
		fail "block-attach $1 '$spec' failed: $(tail -n 3 "$TEST_DIR/xensim.log")"
}

# bf_run NAME EXPECTED-EXIT ARGS...: run blkfront-sim --json, keep its
# report in $TEST_DIR/NAME.json and its log in $TEST_DIR/NAME.log.
bf_run() {
	local name=$1 want=$2 rc=0
	shift 2
	blkfront-sim --json "$@" >"$TEST_DIR/$name.json" 2>"$TEST_DIR/$name.log" || rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "--- blkfront-sim $*" >&2
		cat "$TEST_DIR/$name.json" "$TEST_DIR/$name.log" >&2
		fail "$name: blkfront-sim exited $rc, expected $want"
	fi
}

# bf_num NAME KEY: a number from the report (ops are keyed by kind).
bf_num() {
	sed -n "s/.*\"$2\": \([-0-9.]*\).*/\1/p" "$TEST_DIR/$1.json" | head -n 1
}

# bf_str NAME KEY
bf_str() {
	sed -n "s/.*\"$2\": \"\([^\"]*\)\".*/\1/p" "$TEST_DIR/$1.json" | head -n 1
}

# bf_expect NAME KEY OP VALUE: numeric check on a report field.
bf_expect() {
	local v
	v=$(bf_num "$1" "$2")
	[ -n "$v" ] || fail "$1: no '$2' in the report: $(cat "$TEST_DIR/$1.json")"
	awk -v a="$v" -v b="$4" "BEGIN { exit !(a $3 b) }" ||
		fail "$1: $2 is $v, expected $3 $4"
}

# bf_ok NAME: the run verified without errors and did real work.
bf_ok() {
	[ "$(bf_str "$1" result)" = ok ] || fail "$1: result is not ok"
	bf_expect "$1" errors == 0
	bf_expect "$1" mismatches == 0
	bf_expect "$1" failures == 0
	bf_expect "$1" total_ops '>' 0
}

# bf_verified NAME: a read-back run checked data and found it all good.
bf_verified() {
	[ "$(bf_str "$1" result)" = ok ] || fail "$1: result is not ok"
	bf_expect "$1" errors == 0
	bf_expect "$1" mismatches == 0
	bf_expect "$1" failures == 0
	bf_expect "$1" verified_sectors '>' 0
}
