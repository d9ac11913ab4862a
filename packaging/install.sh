#!/bin/sh
# Installs pr-helper without make: for image builders, initramfs and appliances.
#
#   packaging/install.sh DESTDIR PREFIX [BINARY]
#
# DESTDIR is the staging root ("" or / for the running system), PREFIX the
# prefix inside it (/usr, /usr/local, ...). BINARY defaults to the pr-helper
# beside this script (a release tarball), else target/release/pr-helper. Installs:
#   PREFIX/bin/pr-helper, and links to it named after each applet in
#     $PR_HELPER_LINKDIR (default PREFIX/bin; set it to PREFIX/libexec/pr-helper
#     to keep qemu-system-common's /usr/bin/qemu-pr-helper);
#   systemd units in $SYSTEMD_UNITDIR (default PREFIX/lib/systemd/system),
#     ExecStart rewritten to PREFIX/bin/pr-helper;
#   /etc/init.d/qemu-pr-helper and /etc/conf.d/qemu-pr-helper (OpenRC);
#   man pages in PREFIX/share/man;
#   the dracut module in PREFIX/lib/dracut/modules.d/95pr-helper and the
#     initramfs-tools hook and script in PREFIX/share/initramfs-tools (both
#     opt-in: see docs/packaging.md).
# Nothing is enabled or started. Run again to update; existing files are replaced,
# except /etc/conf.d/qemu-pr-helper.
set -eu

usage() {
	echo "usage: $0 DESTDIR PREFIX [BINARY]" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
destdir=${1%/}
prefix=${2%/}
case "$prefix" in
/*) ;;
*) echo "$0: PREFIX must be absolute" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$here/pr-helper" ]; then
	binary=${3:-$here/pr-helper}
else
	binary=${3:-$here/../target/release/pr-helper}
fi
[ -x "$binary" ] || { echo "$0: $binary: no such executable (cargo build --release)" >&2; exit 1; }

bindir=$prefix/bin
linkdir=${PR_HELPER_LINKDIR:-$bindir}
unitdir=${SYSTEMD_UNITDIR:-$prefix/lib/systemd/system}
mandir=$prefix/share/man

# A link from $1 (absolute, inside the image) to $2 (absolute), made relative.
relink() {
	from_dir=$(dirname "$1")
	to=$2
	up=""
	d=$from_dir
	while [ "$d" != / ] && [ "${to#"$d"/}" = "$to" ]; do
		up="../$up"
		d=$(dirname "$d")
	done
	if [ "$d" = / ]; then
		rel="$up${to#/}"
	else
		rel="$up${to#"$d"/}"
	fi
	ln -sfn "$rel" "$destdir$1"
}

install -d "$destdir$bindir" "$destdir$linkdir" "$destdir$unitdir" \
	"$destdir$mandir/man1" "$destdir$mandir/man8" "$destdir/etc/init.d" "$destdir/etc/conf.d" \
	"$destdir$prefix/lib/dracut/modules.d/95pr-helper" \
	"$destdir$prefix/share/initramfs-tools/hooks" \
	"$destdir$prefix/share/initramfs-tools/scripts/init-premount"

install -m 0755 "$binary" "$destdir$bindir/pr-helper"
for applet in $("$binary" --list); do
	relink "$linkdir/$applet" "$bindir/pr-helper"
done

for unit in "$here"/systemd/*.socket "$here"/systemd/*.service; do
	sed "s|/usr/bin/pr-helper|$bindir/pr-helper|g" "$unit" >"$destdir$unitdir/${unit##*/}"
	chmod 0644 "$destdir$unitdir/${unit##*/}"
done

sed "s|/usr/bin/pr-helper|$bindir/pr-helper|g" "$here/openrc/qemu-pr-helper" >"$destdir/etc/init.d/qemu-pr-helper"
chmod 0755 "$destdir/etc/init.d/qemu-pr-helper"
[ -e "$destdir/etc/conf.d/qemu-pr-helper" ] ||
	install -m 0644 "$here/openrc/qemu-pr-helper.confd" "$destdir/etc/conf.d/qemu-pr-helper"

for page in "$here"/man/*.1; do
	[ -e "$page" ] && install -m 0644 "$page" "$destdir$mandir/man1/"
done
for page in "$here"/man/*.8; do
	[ -e "$page" ] && install -m 0644 "$page" "$destdir$mandir/man8/"
done

install -m 0755 "$here/dracut/95pr-helper/module-setup.sh" "$here/dracut/95pr-helper/pr-helper-start.sh" \
	"$destdir$prefix/lib/dracut/modules.d/95pr-helper/"
install -m 0755 "$here/initramfs-tools/hooks/pr-helper" "$destdir$prefix/share/initramfs-tools/hooks/"
install -m 0755 "$here/initramfs-tools/scripts/init-premount/pr-helper" \
	"$destdir$prefix/share/initramfs-tools/scripts/init-premount/"
