#!/bin/sh
# make fuzz: runs each libFuzzer target for FUZZ_SECONDS on a scratch copy
# of its seed corpus; a crash is left in BUILDDIR/fuzz-out/<target>/ and
# fails the run (copy it into tests/fuzz/crashes/<target>/ once fixed).
# usage: run-fuzz.sh FUZZ_SRCDIR BUILDDIR TARGET...
set -u
src=$1 build=$2
shift 2
secs=${FUZZ_SECONDS:-60}
# Known leaks outside our code (see the file); reported ones still fail.
LSAN_OPTIONS="suppressions=$src/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
failed=
for t in "$@"; do
	out=$build/fuzz-out/$t
	mkdir -p "$out/corpus"
	case $t in
	blkif) extra=-max_len=40000 ;;	# up to 8 indirect pages
	xs-wire) extra=-max_len=16384 ;;
	*) extra= ;;
	esac
	echo "fuzz-$t: ${secs}s"
	# shellcheck disable=SC2086
	"$build/fuzz-$t" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$out/" $extra "$out/corpus" "$src/corpus/$t" \
		>"$out/log" 2>&1
	rc=$?
	grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$out/log"
	if [ $rc -ne 0 ]; then
		echo "fuzz-$t: FAILED (exit $rc), see $out/log and $out/crash-*" >&2
		grep -E 'ERROR|SUMMARY' "$out/log" | head -5 >&2
		failed="$failed $t"
	fi
done
[ -z "$failed" ] || { echo "make fuzz: crashes in:$failed" >&2; exit 1; }
echo "make fuzz: no crash"
