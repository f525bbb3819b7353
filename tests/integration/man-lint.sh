#!/bin/sh
# Lints every manual page in man/: mandoc -Tlint at warning level (style
# notes are shown, not fatal), groff with all warnings, the sections every
# page must have, and that pages.am installs exactly the pages there are.
# First proves the checks catch a broken page.
. "$top_srcdir/tests/functions.sh"
test_timeout 60

command -v mandoc >/dev/null || skip "mandoc not installed"
command -v groff >/dev/null || skip "groff not installed"

# lint PAGE: prints what is wrong, returns non-zero if anything is.
lint() {
	local page=$1 bad=0 out sec
	out=$(mandoc -Tlint -Wwarning "$page" 2>&1) || bad=1
	[ -z "$out" ] || echo "$out"
	# style-level notes, for the record
	mandoc -Tlint -Wstyle "$page" 2>&1 | grep ': STYLE: ' | sed 's/^/# /' || true
	out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "groff: $page: $out"
		bad=1
	fi
	for sec in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" "SEE ALSO"; do
		if ! grep -q "^\.SH \"\{0,1\}$sec\"\{0,1\}\$" "$page"; then
			echo "$page: no $sec section"
			bad=1
		fi
	done
	return $bad
}

info "the checks catch a broken page"
cat >"$TEST_DIR/broken.1" <<'EOF'
.TH BROKEN 1 "not a date" x
.SH NAME
broken \- a page with mistakes
.SH DESCRIPTION
.BI
.I
unclosed \fBfont
.RE
.SH SEE ALSO
.BR nothing (1)
EOF
if lint "$TEST_DIR/broken.1" >"$TEST_DIR/broken.out" 2>&1; then
	fail "lint passed a broken page"
fi
grep -q "no SYNOPSIS section" "$TEST_DIR/broken.out" || fail "missing section not caught"
grep -q "WARNING\|ERROR" "$TEST_DIR/broken.out" || fail "mandoc did not complain: $(cat "$TEST_DIR/broken.out")"

info "every page in man/"
pages=$(ls "$top_srcdir"/man/*.[1-8] 2>/dev/null) || fail "no manual pages"
rc=0
for page in $pages; do
	if lint "$page"; then
		info "ok $(basename "$page")"
	else
		echo "FAIL: $(basename "$page")" >&2
		rc=1
	fi
	name=$(basename "$page")
	grep -q "^dist_man_MANS += $name\$" "$top_srcdir/man/pages.am" || {
		echo "FAIL: $name is not in man/pages.am" >&2
		rc=1
	}
done
for name in $(sed -n 's/^dist_man_MANS += //p' "$top_srcdir/man/pages.am"); do
	[ -f "$top_srcdir/man/$name" ] || {
		echo "FAIL: man/pages.am lists $name, which does not exist" >&2
		rc=1
	}
done
[ $rc = 0 ] || fail "manual pages need fixing"
exit 0
