#!/bin/sh
# make install DESTDIR=...: programs, man pages, the hotplug script (told
# where blkback-ctl went), the systemd unit (its ExecStart) and the
# modprobe snippet land in the configured directories.
. "$top_srcdir/tests/functions.sh"
test_timeout 300
inst="$TEST_DIR/inst"

# dir VAR: the fully expanded make variable VAR of hotplug/Makefile.
# Without the outer make's flags: under make -jN check they carry -w,
# whose "Entering directory" lines would land in the value.
dir() {
	printf 'print:\n\t@echo $(%s)\n' "$1" |
		env -u MAKEFLAGS -u MFLAGS make -s --no-print-directory -C "$top_builddir/hotplug" -f Makefile -f - print
}

make -s -C "$top_builddir" install DESTDIR="$inst" >"$TEST_DIR/install.log" 2>&1 ||
	fail "make install: $(tail -20 "$TEST_DIR/install.log")"
sbindir=$(dir sbindir)
bindir=$(dir bindir)
mandir=$(dir mandir)
scripts=$(dir xenscriptsdir)
unitdir=$(dir systemdsystemunitdir)
modprobedir=$(dir modprobedir)
[ "$scripts" = "$(dir sysconfdir)/xen/scripts" ] || fail "script dir $scripts"
[ "$modprobedir" = "$(dir prefix)/lib/modprobe.d" ] || fail "modprobe dir $modprobedir"

info "programs"
for p in "$sbindir/blkbackd" "$sbindir/blkback-ctl" "$sbindir/xensimd" \
	"$bindir/xensim" "$bindir/blkfront-sim"; do
	[ -x "$inst$p" ] || fail "$p not installed"
done
"$inst$sbindir/blkbackd" --version | grep -q '^blkbackd ' || fail "installed blkbackd does not run"

info "man pages"
for m in man8/blkbackd.8 man8/xensimd.8 man1/xensim.1 man1/blkfront-sim.1; do
	[ -f "$inst$mandir/$m" ] || fail "$mandir/$m not installed"
done

info "hotplug script, executable, pointing at the installed blkback-ctl"
[ -x "$inst$scripts/blkbackd" ] || fail "$scripts/blkbackd not installed executable"
grep -qx "BLKBACKD_SBINDIR=$sbindir" "$inst$scripts/blkbackd" ||
	fail "script's sbindir: $(grep ^BLKBACKD_SBINDIR= "$inst$scripts/blkbackd")"
sh -n "$inst$scripts/blkbackd" || fail "installed script does not parse"

info "systemd unit"
[ -n "$unitdir" ] || fail "no systemd unit dir configured"
unit="$inst$unitdir/blkbackd.service"
[ -f "$unit" ] || fail "$unitdir/blkbackd.service not installed"
grep -qx "ExecStart=$sbindir/blkbackd -v \$BLKBACKD_OPTS" "$unit" ||
	fail "ExecStart: $(grep ^ExecStart "$unit")"
grep -q '@[a-z]*@' "$unit" && fail "unsubstituted @var@ in the unit"

info "modprobe snippet"
conf="$inst$modprobedir/blkbackd.conf"
[ -f "$conf" ] || fail "$modprobedir/blkbackd.conf not installed"
grep -qx 'blacklist xen-blkback' "$conf" || fail "no blacklist line"
grep -qx 'install xen-blkback /bin/false' "$conf" || fail "no install line"

info "nothing outside DESTDIR, and uninstall removes it all"
make -s -C "$top_builddir" uninstall DESTDIR="$inst" >>"$TEST_DIR/install.log" 2>&1 ||
	fail "make uninstall"
left=$(find "$inst" -type f | head -5)
[ -z "$left" ] || fail "left after uninstall: $left"
exit 0
