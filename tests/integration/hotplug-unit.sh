#!/bin/sh
# The built systemd unit passes systemd-analyze verify with no warning
# (ExecStart pointed at the built daemon), and says what blkbackd relies on:
# hardening that leaves every image path writable and NBD reachable. The
# unit is started for real in the real-Xen lane (tests/xen/job.sh).
. "$top_srcdir/tests/functions.sh"
test_timeout 60
unit_in="$top_builddir/hotplug/blkbackd.service"
[ -f "$unit_in" ] || make -s -C "$top_builddir/hotplug" blkbackd.service ||
	fail "cannot build blkbackd.service"

info "the unit's promises"
for want in Type=notify WatchdogSec=30s Restart=on-failure RuntimeDirectoryPreserve=yes \
	ProtectSystem=full RuntimeDirectory=blkbackd NoNewPrivileges=yes \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_VSOCK' \
	'CapabilityBoundingSet=CAP_DAC_OVERRIDE CAP_CHOWN CAP_SETUID CAP_SETGID'; do
	grep -qxF "$want" "$unit_in" || fail "unit lacks $want"
done
grep -q '^ExecReload=.*/blkback-ctl upgrade' "$unit_in" || fail "reload is not the live upgrade"
grep -q '^EnvironmentFile=-/.*/default/blkbackd$' "$unit_in" || fail "no EnvironmentFile"
# Each of these hides or freezes paths a toolstack names images by (or, for
# PrivateDevices, /dev/xen): the daemon could no longer open them for writing.
for bad in ProtectSystem=strict ProtectHome=yes ProtectHome=read-only PrivateTmp=yes \
	PrivateDevices=yes ReadWritePaths= ReadOnlyPaths= InaccessiblePaths=; do
	grep -q "^$bad" "$unit_in" && fail "unit has $bad: images there could not be opened read-write"
done

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
mkdir "$TEST_DIR/units"
sed -e "s|^ExecStart=[^ ]*|ExecStart=$top_builddir/backend/blkbackd|" \
	-e "s|^ExecReload=[^ ]*|ExecReload=$top_builddir/backend/blkback-ctl|" "$unit_in" \
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
