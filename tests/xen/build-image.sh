#!/bin/bash
# Builds the dom0 root file system of the real-Xen lane (Debian bookworm,
# from the mirror in this machine's apt sources) and the PV guest's
# initramfs inside it. Run time only: nothing here is committed.
# Usage: build-image.sh [--clean]
#   --clean   redo debootstrap from scratch (otherwise the cached base
#             rootfs tarball is reused; downloaded .debs are always cached).
# Output (under $XENLAB_DIR, default /var/tmp/blkbackd-xenlab):
#   rootfs.img      ext4 image, no partition table (dom0 root = /dev/vda)
#   vmlinuz, initrd.img, xen.elf   boot files for run-job.sh
set -euo pipefail
XENLAB_DIR=${XENLAB_DIR:-/var/tmp/blkbackd-xenlab}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
IMG_SIZE=${IMG_SIZE:-6G}
BASE_TAR=$XENLAB_DIR/base-rootfs.tar
CACHE=$XENLAB_DIR/debcache
ROOT=$XENLAB_DIR/rootfs
PKGS=linux-image-amd64,xen-utils-4.17,xenstore-utils,kmod,udev,procps,util-linux,e2fsprogs,busybox-static,cpio,iproute2,ifupdown,qemu-system-xen,qemu-utils,libxen-dev,gcc,libc6-dev,fio,liburing2,libjson-c5,libnbd0,libsystemd0

t0=$(date +%s)
mkdir -p "$XENLAB_DIR" "$CACHE"
command -v debootstrap >/dev/null || apt-get install -y debootstrap
command -v qemu-system-x86_64 >/dev/null || apt-get install -y --no-install-recommends qemu-system-x86
[ -f /boot/xen-4.17-amd64.gz ] || apt-get install -y --no-install-recommends xen-hypervisor-4.17-amd64
command -v mke2fs >/dev/null || apt-get install -y e2fsprogs

# Debian mirror: read from this machine's apt sources (deb822 or one-line).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (u!="" && ok) { print u; exit } u=""; ok=0; next }
      /^URIs:/ { u=$2 }
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i==s) ok=1 }
      END { if (u!="" && ok) print u }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed 's/\[[^]]*\]//' | awk -v s="$SUITE" '$1=="deb" && $3==s {print $2}' || true
}
MIRROR=$(mirror | head -n1 || true)
[ -n "$MIRROR" ] || { echo "no $SUITE mirror found in apt sources" >&2; exit 1; }
echo "mirror: $MIRROR"

if [ "${1:-}" = "--clean" ] || [ ! -f "$BASE_TAR" ]; then
  rm -rf "$ROOT"
  echo "=== debootstrap (slow) ==="
  debootstrap --variant=minbase --cache-dir="$CACHE" --include="$PKGS" \
    "$SUITE" "$ROOT" "$MIRROR"
  chroot "$ROOT" apt-get clean
  tar -C "$ROOT" -cf "$BASE_TAR" .
  echo "debootstrap done in $(( $(date +%s) - t0 ))s"
else
  echo "=== reusing $BASE_TAR ==="
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  tar -C "$ROOT" -xf "$BASE_TAR"
fi

KVER=$(ls "$ROOT"/lib/modules | sort -V | tail -n1)
echo "kernel: $KVER"

# ---- overlay: our init + helper scripts ------------------------------------
install -m 0755 "$HERE/guest/xenlab-init" "$ROOT/usr/local/sbin/xenlab-init"
install -m 0755 "$HERE/guest/xen-start"   "$ROOT/usr/local/sbin/xen-start"
install -d "$ROOT/mnt/xenlab" "$ROOT/var/lib/xenlab" "$ROOT/var/log/xen/console"
echo xenlab-dom0 > "$ROOT/etc/hostname"
printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$ROOT/etc/fstab"
sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"   # empty root password (lab only)

# ---- the PV guest's initramfs ----------------------------------------------
# busybox, the kernel's xen-blkfront, ext4 with its dependencies, and
# mkfs.ext4 and fio with the libraries they need, taken from the dom0 tree.
D=$(mktemp -d)
mkdir -p "$D"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules}
cp "$ROOT/bin/busybox" "$D/bin/busybox"
unpack_ko() { # FILE DEST
  case "$1" in
    *.xz) xz -dc "$1" > "$2" ;;
    *.zst) zstd -dc "$1" > "$2" ;;
    *) cp "$1" "$2" ;;
  esac
}
f=$(find "$ROOT/lib/modules/$KVER" -name 'xen-blkfront.ko*' | head -n1)
[ -n "$f" ] || { echo "no xen-blkfront module in $KVER" >&2; exit 1; }
unpack_ko "$f" "$D/lib/modules/xen-blkfront.ko"
: > "$D/lib/modules/order"
for m in $(chroot "$ROOT" modprobe -S "$KVER" --show-depends ext4 | awk '$1=="insmod" {print $2}'); do
  b=$(basename "$m"); b=${b%.xz}; b=${b%.zst}
  [ -f "$D/lib/modules/$b" ] && continue
  unpack_ko "$ROOT$m" "$D/lib/modules/$b"
  echo "$b" >> "$D/lib/modules/order"
done
echo "guest modules: $(tr '\n' ' ' < "$D/lib/modules/order")"
# copy_prog PATH-IN-ROOT: the program and every library ldd names (0755:
# the kernel refuses to load an ELF interpreter that is not executable)
copy_prog() {
  local p=$1 l
  [ -x "$ROOT$p" ] || return 1
  install -D -m 0755 "$ROOT$p" "$D$p"
  for l in $(chroot "$ROOT" ldd "$p" | awk '{ for (i=1;i<=NF;i++) if ($i ~ /^\//) print $i }'); do
    [ -f "$D$l" ] || install -D -m 0755 "$ROOT$(chroot "$ROOT" readlink -f "$l")" "$D$l"
  done
}
copy_prog /sbin/mke2fs && ln -sf /sbin/mke2fs "$D/sbin/mkfs.ext4"
cp "$ROOT/etc/mke2fs.conf" "$D/etc/"
copy_prog /usr/bin/fio || echo "no fio in the dom0 tree: the guest verifies with dd"
install -m 0755 "$HERE/guest/domu-init" "$D/init"
(cd "$D" && find . | cpio -o -H newc --quiet | gzip -1) > "$ROOT/var/lib/xenlab/domu-initrd.gz"
echo "guest initramfs: $(du -sh "$D" | cut -f1) unpacked, $(du -h "$ROOT/var/lib/xenlab/domu-initrd.gz" | cut -f1) compressed"
rm -rf "$D"
cp "$ROOT/boot/vmlinuz-$KVER" "$ROOT/var/lib/xenlab/vmlinuz"

# ---- boot files + image -----------------------------------------------------
cp "$ROOT/boot/vmlinuz-$KVER" "$XENLAB_DIR/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$XENLAB_DIR/initrd.img"
XENGZ=$(ls /boot/xen-4.17-amd64.gz "$ROOT"/boot/xen-4.17-amd64.gz 2>/dev/null | head -n1 || true)
if [ -n "$XENGZ" ]; then zcat "$XENGZ" > "$XENLAB_DIR/xen.elf"; fi
[ -s "$XENLAB_DIR/xen.elf" ] || { echo "no xen hypervisor (install xen-hypervisor-4.17-amd64 on the host)" >&2; exit 1; }

rm -f "$XENLAB_DIR/rootfs.img.new"
mke2fs -q -t ext4 -L xenlab-root -d "$ROOT" "$XENLAB_DIR/rootfs.img.new" "$IMG_SIZE"
mv "$XENLAB_DIR/rootfs.img.new" "$XENLAB_DIR/rootfs.img"
echo "image: $XENLAB_DIR/rootfs.img  ($(du -h --apparent-size "$XENLAB_DIR/rootfs.img" | cut -f1) apparent, $(du -h "$XENLAB_DIR/rootfs.img" | cut -f1) used)"
echo "build-image total: $(( $(date +%s) - t0 ))s"
