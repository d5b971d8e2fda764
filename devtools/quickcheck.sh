#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Type-check rust/kernel and the module in seconds, without touching the build directory:
# reruns the kernel crate's rustc command (from the last build) on a scratch copy of
# rust/kernel with our files, emitting metadata only, then checks tcmu_rs against it.
. "$(dirname "$0")/lib.sh"
[ -f "$BUILD/rust/.kernel.o.cmd" ] || die "build the kernel once first"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export RUSTC_BOOTSTRAP=1
cp -r "$SRC/rust/kernel" "$W/kernel"
cp "$TOP"/rust/kernel/*.rs "$W/kernel/"
# Existing kernel files as devtools/patches would make them (pristine copy + patches).
mkdir -p "$W/tree"
for f in $(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$TOP"/devtools/patches/*.patch | sort -u); do
	mkdir -p "$W/tree/$(dirname "$f")"
	if [ -e "$SRC/.tcmu-pristine/$f" ]; then cp "$SRC/.tcmu-pristine/$f" "$W/tree/$f"; else cp "$SRC/$f" "$W/tree/$f"; fi
done
cat "$TOP"/devtools/patches/*.patch | patch -s -p1 -d "$W/tree"
cp "$W"/tree/rust/kernel/*.rs "$W/kernel/"
mkdir -p "$W/out"
cmd=$(sed -n 's/^savedcmd_rust\/kernel.o := //p' "$BUILD/rust/.kernel.o.cmd" | sed 's/; *\.\/tools\/objtool.*//' |
	sed "s| --emit=dep-info=[^ ]*| |; s| --emit=obj=[^ ]*| |; s| --emit=metadata=[^ ]*| --emit=metadata=$W/out/libkernel.rmeta|; s|$SRC/rust/kernel/lib.rs|$W/kernel/lib.rs|")
(cd "$BUILD" && eval "$cmd") || exit 1
log "rust/kernel: ok"
mcmd=$(sed -n 's/^savedcmd_drivers\/target\/tcmu_rs\/tcmu_rs.o := //p' "$BUILD/drivers/target/tcmu_rs/.tcmu_rs.o.cmd" 2>/dev/null | sed 's/; *\.\/tools\/objtool.*//')
[ -n "$mcmd" ] || { log "module: no saved command yet"; exit 0; }
mkdir -p "$W/mod"
cp "$TOP"/drivers/target/tcmu_rs/*.rs "$W/mod/"
mcmd=$(echo "$mcmd" | sed "s| --emit=dep-info=[^ ]*| |; s| --emit=obj=[^ ]*| --emit=metadata=$W/out/m.rmeta|; s|$SRC/drivers/target/tcmu_rs/tcmu_rs.rs|$W/mod/tcmu_rs.rs|; s|--extern kernel |--extern kernel=$W/out/libkernel.rmeta |")
(cd "$BUILD" && eval "$mcmd") || exit 1
log "tcmu_rs: ok"
