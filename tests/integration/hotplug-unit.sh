#!/bin/sh
# The built systemd unit passes systemd-analyze verify with no warning
# (ExecStart pointed at the built daemon), and says what blkbackd relies on.
. "$top_srcdir/tests/functions.sh"
test_timeout 60
unit_in="$top_builddir/hotplug/blkbackd.service"
[ -f "$unit_in" ] || make -s -C "$top_builddir/hotplug" blkbackd.service ||
	fail "cannot build blkbackd.service"

info "the unit's promises"
for want in Type=notify WatchdogSec=30s Restart=on-failure RuntimeDirectoryPreserve=yes \
	ProtectSystem=strict ReadWritePaths=/run/blkbackd RuntimeDirectory=blkbackd \
	PrivateTmp=yes ProtectHome=yes NoNewPrivileges=yes \
	'CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_CHOWN'; do
	grep -qxF "$want" "$unit_in" || fail "unit lacks $want"
done
grep -q '^PrivateDevices=yes' "$unit_in" && fail "PrivateDevices would hide /dev/xen"

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
mkdir "$TEST_DIR/units"
sed "s|^ExecStart=[^ ]*|ExecStart=$top_builddir/backend/blkbackd|" "$unit_in" \
	>"$TEST_DIR/units/blkbackd.service"
systemd-analyze verify --man=no "$TEST_DIR/units/blkbackd.service" >"$TEST_DIR/verify.log" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$TEST_DIR/verify.log")"
# verify exits 0 on ignored lines; any output is a warning.
grep -v 'Failed to create /init.scope\|Cannot find unit for xen\|xenstored.service\|xendomains\|proc-xen.mount' \
	"$TEST_DIR/verify.log" | grep . && fail "systemd-analyze verify warned: $(cat "$TEST_DIR/verify.log")"

info "a broken copy is caught (the check can fail)"
sed 's/^WatchdogSec=.*/WatchdogSec=bogus/' "$TEST_DIR/units/blkbackd.service" >"$TEST_DIR/units/bad.service"
systemd-analyze verify --man=no "$TEST_DIR/units/bad.service" 2>&1 | grep -q . ||
	fail "systemd-analyze did not notice a bad WatchdogSec"
exit 0
