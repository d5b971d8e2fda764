#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Kernel tree preparation and build.
#   kernel.sh prepare   unpack Debian's source (once), overlay our files, apply devtools/patches
#   kernel.sh config    small config: allnoconfig + devtools/config/base.config (+ flavour)
#   kernel.sh build     vmlinux + modules, installed into $BUILD/staging
#   kernel.sh modules   rebuild only our module (fast path)
#   kernel.sh path      print the build directory
. "$(dirname "$0")/lib.sh"

OVERLAY_DIRS=(drivers rust include Documentation tools)

unpack() {
	[ -f "$SRC/.tcmu-unpacked" ] && return
	local tarball=/usr/src/linux-source-6.12.tar.xz
	[ -f "$tarball" ] || die "$tarball missing: run devtools/deps.sh"
	log "unpacking $tarball into $SRC (once)"
	rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
	tar -C "$SRC.tmp" --strip-components=1 -xf "$tarball"
	mkdir -p "$SRC.tmp/.tcmu-pristine"
	rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
	touch "$SRC/.tcmu-unpacked"
}

# Copy our files over the tree. Only files whose content changed are written, so
# make sees new mtimes exactly where something changed.
overlay() {
	local d
	for d in "${OVERLAY_DIRS[@]}"; do
		[ -d "$TOP/$d" ] || continue
		# Cargo's output directories under tools/ are not kernel sources.
		rsync -rc --exclude '/tcmu/target/' --exclude '*.o' \
			"$TOP/$d/" "$SRC/$d/"
	done
}

# Edits to existing kernel files live in devtools/patches as small patches. The
# pristine version of every file they touch is kept in $SRC/.tcmu-pristine; each
# run rebuilds the patched files from pristine + all patches and writes only the
# files whose result changed. Files no longer patched are restored.
patches() {
	local pristine=$SRC/.tcmu-pristine work f
	work=$(mktemp -d)
	local files=()
	mapfile -t files < <(cat "$TOP"/devtools/patches/*.patch 2>/dev/null |
		sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' | sort -u)
	for f in "${files[@]}"; do
		# $f.new marks a file the patches create: its pristine state is absence.
		if [ ! -e "$pristine/$f" ] && [ ! -e "$pristine/$f.new" ]; then
			mkdir -p "$(dirname "$pristine/$f")"
			if [ -e "$SRC/$f" ]; then cp -p "$SRC/$f" "$pristine/$f"; else : >"$pristine/$f.new"; fi
		fi
		mkdir -p "$(dirname "$work/$f")"
		[ -e "$pristine/$f" ] && cp "$pristine/$f" "$work/$f"
	done
	local p
	for p in "$TOP"/devtools/patches/*.patch; do
		[ -e "$p" ] || continue
		patch -s -p1 -d "$work" --no-backup-if-mismatch <"$p" || die "patch $(basename "$p") does not apply"
	done
	rsync -rc "$work/" "$SRC/"
	rm -rf "$work"
	# Restore files that an earlier run patched and no patch touches now.
	(cd "$pristine" && find . -type f ! -name '*.new' | sed 's|^\./||') | while read -r f; do
		printf '%s\n' "${files[@]}" | grep -qxF "$f" && continue
		cmp -s "$pristine/$f" "$SRC/$f" || cp "$pristine/$f" "$SRC/$f"
	done
}

prepare() {
	unpack
	overlay
	patches
}

config() {
	mkdir -p "$BUILD"
	local frag=$BUILD/tcmu.config
	cat "$TOP/devtools/config/base.config" >"$frag"
	[ "$FLAVOUR" = base ] || cat "$TOP/devtools/config/$FLAVOUR.config" >>"$frag"
	if [ ! -f "$BUILD/.config" ] || ! cmp -s "$frag" "$BUILD/.tcmu.config.used"; then
		log "configuring $FLAVOUR kernel in $BUILD"
		KCONFIG_ALLCONFIG=$frag kmake allnoconfig >/dev/null
		cp "$frag" "$BUILD/.tcmu.config.used"
	fi
	kmake olddefconfig >/dev/null
	# Every option the fragments ask for must have survived dependency resolution (the last
	# line of an option wins: a flavour overrides base.config).
	local bad=0 line opt val seen=" "
	while read -r line; do
		case "$line" in
		CONFIG_*=*) opt=${line%%=*}; val=${line#*=} ;;
		"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; val=n ;;
		*) continue ;;
		esac
		case $seen in *" $opt "*) continue ;; esac
		seen="$seen$opt "
		if [ "$val" = n ]; then
			grep -q "^$opt=" "$BUILD/.config" && { log "config: $opt is set, wanted off"; bad=1; }
		else
			grep -qxF "$opt=$val" "$BUILD/.config" || { log "config: $opt=$val did not stick"; bad=1; }
		fi
	done < <(tac "$frag")
	[ $bad = 0 ] || die "config fragment not satisfied (missing dependency?)"
}

# Keep the full log, print warnings/errors and a step counter.
progress() {
	tee "$1" | awk '/^  [A-Z]/ { n++; if (n % 500 == 0) { printf "[build] %d steps\n", n; fflush() } next }
		{ print; fflush() }' >&2
}

# The compile-only dropin flavour (the Rust crates and the module's objects, no image) is
# also the clippy build.
KEXTRA=()
[ "$FLAVOUR" = dropin ] && KEXTRA=(CLIPPY=1 CLIPPY_DRIVER="$CLIPPY_DRIVER")

build() {
	build_lock ex
	prepare
	config
	log "building $FLAVOUR kernel (jobs=$JOBS) in $BUILD"
	local t0=$SECONDS
	if [ "$FLAVOUR" = dropin ] || [ "$FLAVOUR" = msrv ]; then
		# Compile-only: the Rust crates (prepare) and the module's objects, no image.
		kmake "${KEXTRA[@]}" drivers/target/tcmu_rs/ 2>&1 | progress "$BUILD/build.log" ||
			die "$FLAVOUR build failed (see $BUILD/build.log)"
		log "$FLAVOUR build done in $((SECONDS - t0)) s"
		return
	fi
	kmake "${KEXTRA[@]}" bzImage modules 2>&1 | progress "$BUILD/build.log" || die "kernel build failed (see $BUILD/build.log)"
	install_modules
	log "kernel build done in $((SECONDS - t0)) s"
}

install_modules() {
	rm -rf "$BUILD/staging"
	kmake INSTALL_MOD_PATH="$BUILD/staging" INSTALL_MOD_STRIP=1 modules_install >/dev/null
}

modules() {
	build_lock ex
	prepare
	[ -f "$BUILD/.config" ] || die "no configured kernel: run 'kernel.sh build' first"
	local t0=$SECONDS
	kmake bzImage modules 2>&1 | progress "$BUILD/module.log" || die "module build failed"
	install_modules
	log "module build done in $((SECONDS - t0)) s"
}

# The drop-in build (CONFIG_TCM_USER_RS_DROP_IN: the module named target_core_user) of the
# driver, against the configured kernel, as an external module: the test kernel keeps the C
# target_core_user for the differential tests, and the drop-in e2e installs this one in
# /lib/modules/<release>/updates, where modprobe prefers it.
dropin() {
	build_lock ex
	prepare
	[ -f "$BUILD/.config" ] || die "no configured kernel: run 'kernel.sh build' first"
	local dir=$BUILD/dropin
	mkdir -p "$dir"
	rsync -rc --delete --exclude '*.o' --exclude '*.ko' --exclude '.*' --exclude '*.mod*' \
		--exclude 'Module.symvers' --exclude 'modules.order' \
		"$SRC/drivers/target/tcmu_rs/" "$dir/"
	kmake M="$dir" CONFIG_TCM_USER_RS=m CONFIG_TCM_USER_RS_DROP_IN=y modules 2>&1 |
		progress "$BUILD/dropin.log" || die "drop-in module build failed (see $BUILD/dropin.log)"
	[ -f "$dir/target_core_user.ko" ] || die "the drop-in build made no target_core_user.ko"
	log "drop-in module: $dir/target_core_user.ko"
}

case "${1:-}" in
prepare) prepare ;;
dropin) dropin ;;
config) prepare; config ;;
build) build ;;
modules) modules ;;
path) echo "$BUILD" ;;
make) shift; prepare; kmake "$@" ;;
*) die "usage: kernel.sh prepare|config|build|modules|dropin|path|make ARGS" ;;
esac
