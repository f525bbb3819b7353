#!/bin/sh
# Under a real systemd-journald (run in a private mount namespace, with
# /run and /var/log/journal on tmpfs there, so the machine's own logs are
# not touched): a program whose stderr is the journal stream it was given
# ($JOURNAL_STREAM) sends journal entries with PRIORITY=, no timestamp of
# its own in MESSAGE=, and DOMID=, DEVID=, QUEUE= for a vbd's or a ring's
# line; the daemon does too.
if [ -z "${LOG_JOURNALD_NS:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: log-journald: needs root for a mount namespace" >&2; exit 77; }
	command -v unshare >/dev/null || { echo "SKIP: log-journald: no unshare" >&2; exit 77; }
	unshare -m --propagation private true 2>/dev/null ||
		{ echo "SKIP: log-journald: cannot make a mount namespace here" >&2; exit 77; }
	LOG_JOURNALD_NS=1 exec unshare -m --propagation private "${SHELL:-/bin/sh}" "$0" "$@"
fi
. "$top_srcdir/tests/functions.sh"
test_timeout 90
journald=/lib/systemd/systemd-journald
[ -x "$journald" ] || skip "systemd-journald not installed"
command -v journalctl >/dev/null && command -v systemd-cat >/dev/null ||
	skip "journalctl or systemd-cat missing"
emit="$top_builddir/tests/log-emit"

mount -t tmpfs tmpfs /run || skip "cannot mount a tmpfs on /run"
[ -d /var/log/journal ] && { mount -t tmpfs tmpfs /var/log/journal || fail "cannot hide /var/log/journal"; }
"$journald" >"$TEST_DIR/journald.log" 2>&1 &
bg_track $!
wait_for 10 test -S /run/systemd/journal/stdout || fail "journald did not start"
wait_for 10 test -S /run/systemd/journal/socket || fail "journald has no native socket"

# under_journal IDENT CMD...: CMD with stdout and stderr on a journal
# stream, told so the way systemd tells a service.
under_journal() {
	local ident=$1; shift
	systemd-cat -t "$ident" sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh "$@"
}

# entries IDENT: the journal entries IDENT sent, one JSON object a line
# (not what it wrote to stdout, which the stream turns into entries too).
entries() {
	journalctl -D /run/log/journal --no-pager -o json SYSLOG_IDENTIFIER="$1" \
		_TRANSPORT=journal 2>/dev/null
}
has_entry() { entries "$1" | grep -q .; }

info "a ring's warning"
under_journal t-ring "$emit" t-ring warn d5/51712/q0 "disk on fire" || fail "log-emit failed"
wait_for 10 has_entry t-ring || fail "nothing in the journal"
entries t-ring >"$TEST_DIR/ring.json"
[ "$(jq -s length "$TEST_DIR/ring.json")" = 1 ] || fail "not one entry: $(cat "$TEST_DIR/ring.json")"
jq -e '._TRANSPORT == "journal" and .PRIORITY == "4" and .MESSAGE == "d5/51712/q0: disk on fire"
	and .DOMID == "5" and .DEVID == "51712" and .QUEUE == "0"' "$TEST_DIR/ring.json" >/dev/null ||
	fail "wrong fields: $(cat "$TEST_DIR/ring.json")"
jq -e 'has("CODE_FILE") | not' "$TEST_DIR/ring.json" >/dev/null || fail "CODE_FILE names log.c"
# log-emit says on stdout which sink it picked; stdout is a stream entry.
journalctl -D /run/log/journal --no-pager -o cat SYSLOG_IDENTIFIER=t-ring _TRANSPORT=stdout |
	grep -qx journal || fail "log-emit did not pick the journal"

info "a vbd's error has no QUEUE; a line about no vbd has no DOMID"
under_journal t-vbd "$emit" t-vbd err d7/768 "refused" >/dev/null || fail "log-emit failed"
under_journal t-none "$emit" t-none info - "starting" >/dev/null || fail "log-emit failed"
wait_for 10 has_entry t-vbd || fail "vbd line missing"
wait_for 10 has_entry t-none || fail "plain line missing"
entries t-vbd | jq -e '.PRIORITY == "3" and .DOMID == "7" and .DEVID == "768" and
	(has("QUEUE") | not)' >/dev/null || fail "vbd fields: $(entries t-vbd)"
entries t-none | jq -e '.PRIORITY == "6" and .MESSAGE == "starting" and
	(has("DOMID") | not)' >/dev/null || fail "plain fields: $(entries t-none)"

info "the daemon, started as systemd starts it"
start_xensimd
# systemd-cat and sh exec, so $! is the daemon (not a subshell).
systemd-cat -t blkbackd sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh \
	blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" -p "$TEST_DIR/blkbackd.pid" &
BLKBACKD_PID=$!
_pids="$BLKBACKD_PID $_pids"
wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"
wait_for 10 has_entry blkbackd || fail "blkbackd logged nothing to the journal"
entries blkbackd >"$TEST_DIR/daemon.json"
jq -e 'select(._TRANSPORT != "journal" or (.PRIORITY | test("^[0-7]$") | not)
	or (.MESSAGE | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")))' "$TEST_DIR/daemon.json" &&
	fail "an entry not sent as a journal entry, or with its own time"
[ "$(jq -r ._PID "$TEST_DIR/daemon.json" | sort -u)" = "$BLKBACKD_PID" ] ||
	fail "entries from another pid: $(jq -r ._PID "$TEST_DIR/daemon.json" | sort -u)"
exit 0
