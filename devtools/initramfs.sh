#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the guest initramfs:  initramfs.sh OUT.cpio [host_path:guest_path ...]
#                              initramfs.sh --base   (build/print the cached base only)
#
# OUT.cpio = cached base archive + small per-run archive (the kernel unpacks
# concatenated newc archives in order). Both are uncompressed so the guest does
# not spend TCG time decompressing.
#   base:    busybox, tcmu-runner, targetcli (python3), fio, perf, sg3-utils, qemu-img,
#            open-iscsi, kmod, e2fsprogs with their shared-library closures; merged-/usr layout.
#            Cached in $CACHE/initramfs/, keyed by the installed package versions
#            and this script.
#   per-run: /init, /lib/modules/<release> from $BUILD/staging, and /tcmu with
#            devtools/guest/* plus the extra files (relative guest paths land
#            under /tcmu).
# SKIP_HANDLERS: tcmu-runner handlers left out (default rbd: 36 MB of Ceph
# libraries that are useless without a cluster).
. "$(dirname "$0")/lib.sh"

SKIP_HANDLERS=${SKIP_HANDLERS:-rbd}
PY=python3.11
MULTIARCH=x86_64-linux-gnu

# Copy a host path into $ROOT at the same place; symlinks are kept as symlinks
# (and their targets copied), parent directories are canonicalised so the
# /bin -> usr/bin style links of the image resolve like on the host.
add() {
	local src=$1 dir dst t
	dir=$(realpath -e "$(dirname "$src")") || die "missing: $src"
	dst=$ROOT$dir/$(basename "$src")
	[ -e "$dst" ] || [ -L "$dst" ] && return 0
	mkdir -p "$ROOT$dir"
	if [ -L "$src" ]; then
		t=$(readlink "$src")
		ln -s "$t" "$dst"
		case $t in /*) add "$t" ;; *) add "$dir/$t" ;; esac
	else
		[ -e "$src" ] || die "missing: $src"
		cp -p "$src" "$dst"
	fi
}

# Add the shared libraries (and loader) of every ELF file in $ROOT. Optional
# objects (plugins, Python extensions) whose libraries are missing are dropped.
add_closure() {
	local f host deps
	while IFS= read -r f; do
		host=${f#"$ROOT"}
		deps=$(ldd "$host" 2>/dev/null) || continue # static or not ELF
		if grep -q 'not found' <<<"$deps"; then
			case $host in
			*.so*) log "warning: dropping $host: $(grep 'not found' <<<"$deps" | awk '{print $1}' | xargs)"
				rm -f "$f"; continue ;;
			*) die "$host: unresolved libraries: $deps" ;;
			esac
		fi
		awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$deps" |
			while read -r lib; do add "$lib"; done
	done < <(find "$ROOT" -type f \( -perm -u+x -o -name '*.so*' \))
}

build_base() {
	local out=$1 p
	ROOT=$(mktemp -d "$CACHE/initramfs/root.XXXXXX")
	chmod 755 "$ROOT"
	log "building base initramfs in $ROOT"
	# Merged /usr, as on the host.
	mkdir -p "$ROOT"/usr/{bin,sbin,lib/$MULTIARCH,lib64} "$ROOT"/{dev,proc,sys,tmp,run,root,out,tcmu,etc/target,etc/rtslib-fb-target,var/log,var/lib}
	for p in bin sbin lib lib64; do ln -s usr/$p "$ROOT/$p"; done
	ln -s ../run "$ROOT/var/run"
	chmod 1777 "$ROOT/tmp"
	mknod -m 600 "$ROOT/dev/console" c 5 1
	mknod -m 666 "$ROOT/dev/null" c 1 3

	# Debian binaries.
	add /usr/bin/tcmu-runner
	add /etc/tcmu/tcmu.conf
	for p in /usr/lib/$MULTIARCH/tcmu-runner/handler_*.so; do
		case " $SKIP_HANDLERS " in *" $(basename "$p" .so | sed 's/^handler_//') "*)
			log "skipping handler $(basename "$p") (SKIP_HANDLERS)"; continue ;; esac
		add "$p"
	done
	add /usr/bin/qemu-img
	for p in $(dpkg -L sg3-utils | grep '/bin/'); do add "$p"; done
	add /usr/bin/fio
	add /usr/bin/perf # make bench BENCH_PROFILE=row (software cpu-clock samples under TCG)
	for p in /bin/kmod /sbin/{modprobe,insmod,rmmod,lsmod,depmod,modinfo}; do add $p; done
	for p in mkfs.ext4 mke2fs e2fsck; do add /sbin/$p; done
	# The kselftest runner calls "timeout --foreground", which busybox's timeout lacks.
	add /usr/bin/timeout
	# open-iscsi, the initiator of the LIO iSCSI layer (devtools/guest/iscsi.sh).
	add /sbin/iscsid
	add /sbin/iscsiadm
	add /etc/iscsi/iscsid.conf
	echo "InitiatorName=iqn.2026-12.org.tcmu-rs:initiator" >"$ROOT/etc/iscsi/initiatorname.iscsi"
	mkdir -p "$ROOT/var/lib/iscsi" "$ROOT/run/lock/iscsi"
	add /etc/mke2fs.conf
	add /sbin/ldconfig # ctypes.util.find_library (pyudev) runs ldconfig -p
	# A system bus: targetcli finds tcmu-runner's handlers (user:*) over D-Bus.
	add /usr/bin/dbus-daemon
	mkdir -p "$ROOT/etc/dbus-1"
	cat >"$ROOT/etc/dbus-1/system.conf" <<-EOF
	<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
	 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
	<busconfig>
	  <type>system</type>
	  <listen>unix:path=/run/dbus/system_bus_socket</listen>
	  <auth>EXTERNAL</auth>
	  <policy context="default">
	    <allow user="*"/> <allow own="*"/>
	    <allow send_type="method_call"/> <allow send_type="signal"/>
	    <allow send_requested_reply="true"/> <allow receive_requested_reply="true"/>
	  </policy>
	</busconfig>
	EOF
	echo 5ca1ab1e0000000000000000c0ffee00 >"$ROOT/etc/machine-id"
	# dlopen()ed, invisible to ldd: libgcc_s by pthread_cancel, libudev by pyudev.
	add /usr/lib/$MULTIARCH/libgcc_s.so.1
	add /usr/lib/$MULTIARCH/libudev.so.1

	# Python and what targetcli imports (found with python3 -X importtime).
	add /usr/bin/python3
	add /usr/bin/targetcli
	add /usr/bin/targetctl
	rsync -a --exclude __pycache__ --exclude test/ --exclude tests/ --exclude idlelib/ \
		--exclude tkinter/ --exclude turtledemo/ --exclude ensurepip/ --exclude lib2to3/ \
		--exclude 'config-3*' --exclude '_test*.so' --exclude '_ctypes_test*' --exclude 'xx*.so' \
		--exclude '_tkinter*' --exclude site-packages \
		/usr/lib/$PY/ "$ROOT/usr/lib/$PY/"
	mkdir -p "$ROOT/usr/lib/python3/dist-packages"
	for p in rtslib_fb configshell_fb targetcli pyparsing pyudev gi six.py; do
		rsync -a --exclude __pycache__ "/usr/lib/python3/dist-packages/$p" "$ROOT/usr/lib/python3/dist-packages/"
	done
	rsync -a /usr/lib/$MULTIARCH/girepository-1.0 "$ROOT/usr/lib/$MULTIARCH/"
	# Bytecode that is never re-validated: initramfs mtimes are not preserved.
	/usr/bin/python3 -m compileall -q -j2 --invalidation-mode unchecked-hash -s "$ROOT" -p / \
		"$ROOT/usr/lib/$PY" "$ROOT/usr/lib/python3/dist-packages" >/dev/null ||
		log "warning: some Python files did not compile"

	# /bin/sh is bash: Debian's static busybox prefers its applets over PATH
	# (FEATURE_SH_STANDALONE), so under ash "modprobe" would not be kmod's.
	add /usr/bin/bash
	ln -s bash "$ROOT/usr/bin/sh"
	# busybox last: its applet links never replace a Debian binary.
	add /usr/bin/busybox
	for p in $(/usr/bin/busybox --list); do
		[ -e "$ROOT/usr/bin/$p" ] || [ -e "$ROOT/usr/sbin/$p" ] || ln -s busybox "$ROOT/usr/bin/$p"
	done

	log "resolving shared libraries"
	add_closure

	cat >"$ROOT/etc/passwd" <<-EOF
	root:x:0:0:root:/root:/bin/sh
	nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$ROOT/etc/group"
	printf 'passwd: files\ngroup: files\nhosts: files\n' >"$ROOT/etc/nsswitch.conf"
	printf '127.0.0.1 localhost tcmu\n' >"$ROOT/etc/hosts"
	printf '%s\n' "/usr/lib/$MULTIARCH" >"$ROOT/etc/ld.so.conf"
	ldconfig -r "$ROOT"

	(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out.tmp"
	mv "$out.tmp" "$out"
	find "$CACHE/initramfs" -maxdepth 1 -name 'base-*.cpio' ! -path "$out" -delete
	log "base initramfs: $out ($(du -h "$out" | cut -f1), $(find "$ROOT" | wc -l) entries)"
	if [ -n "${KEEP_ROOT:-}" ]; then log "unpacked tree kept in $ROOT"; else rm -rf "$ROOT"; fi
}

base_archive() {
	local key
	key=$({ dpkg-query -W -f='${Package} ${Version}\n'; cat "$0"; echo "$SKIP_HANDLERS"; } | sha256sum | cut -c1-12)
	BASE=$CACHE/initramfs/base-$key.cpio
	mkdir -p "$CACHE/initramfs"
	[ -f "$BASE" ] || build_base "$BASE"
}

# Guest paths under /lib etc. must go through the base's /usr symlinks: a
# directory entry named "lib" would replace the symlink when unpacked.
guest_path() {
	case $1 in
	/bin/* | /sbin/* | /lib/* | /lib64/*) echo "usr$1" ;;
	/*) echo "${1#/}" ;;
	*) echo "tcmu/$1" ;;
	esac
}

run_archive() {
	local out=$1 rel dir spec host guest
	shift
	rel=$(kernelrelease) || die "no kernel build in $BUILD"
	build_lock sh
	[ -f "$BUILD/staging/lib/modules/$rel/modules.dep" ] || die "no installed modules in $BUILD/staging"
	dir=$(mktemp -d)
	mkdir -p "$dir/usr/lib/modules" "$dir/tcmu"
	cp "$TOP/devtools/guest/init" "$dir/init"
	chmod 755 "$dir/init"
	rsync -a --exclude build --exclude source "$BUILD/staging/lib/modules/$rel" "$dir/usr/lib/modules/"
	rsync -a "$TOP/devtools/guest/" "$dir/tcmu/"
	for spec in "$@"; do
		host=${spec%%:*} guest=${spec#*:}
		[ "$host" != "$spec" ] || die "extra file '$spec' is not host_path:guest_path"
		guest=$(guest_path "$guest")
		mkdir -p "$dir/$(dirname "$guest")"
		cp -a "$host" "$dir/$guest"
	done
	(cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out"
	rm -rf "$dir"
}

[ $# -ge 1 ] || die "usage: initramfs.sh OUT.cpio [host_path:guest_path ...] | --base"
OUT=$1
[ "$OUT" != --base ] || { base_archive; echo "$BASE"; exit 0; }
shift
base_archive
run_archive "$OUT.run" "$@"
cat "$BASE" "$OUT.run" >"$OUT"
log "initramfs $OUT: base $(du -h "$BASE" | cut -f1) + run $(du -h "$OUT.run" | cut -f1)"
rm -f "$OUT.run"
