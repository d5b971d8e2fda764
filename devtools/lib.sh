# SPDX-License-Identifier: GPL-2.0
# Common settings for the devtools scripts. Sourced, not run.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TCMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tcmu-rs}
FLAVOUR=${FLAVOUR:-base}          # base | debug
JOBS=${JOBS:-$(nproc)}

# The Debian toolchain (see README): rustc-web, bindgen-cli 0.70.1, LLVM 19.
# FLAVOUR=msrv builds with the oldest rustc Linux 6.12 supports (1.78, installed by deps.sh).
MSRV_TOOLCHAIN=1.78.0
if [ "$FLAVOUR" = msrv ]; then
	RUSTC=$HOME/.rustup/toolchains/$MSRV_TOOLCHAIN-x86_64-unknown-linux-gnu/bin/rustc
	RUSTDOC=$HOME/.rustup/toolchains/$MSRV_TOOLCHAIN-x86_64-unknown-linux-gnu/bin/rustdoc
else
	RUSTC=/usr/bin/rustc
	RUSTDOC=/usr/bin/rustdoc
fi
CLIPPY_DRIVER=/usr/bin/clippy-driver
BINDGEN_ROOT=$CACHE/bindgen
BINDGEN=$BINDGEN_ROOT/bin/bindgen
export LIBCLANG_PATH=/usr/lib/llvm-19/lib

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

kernel_debver() { dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null; }

SRC=$CACHE/src/linux-$(kernel_debver 2>/dev/null || echo none)

# The build directory is keyed by what invalidates a whole build: the kernel source
# version and the toolchain. A change of the config fragments is applied to the same
# directory (kernel.sh reconfigures), and kbuild rebuilds what depends on it.
build_key() {
	{
		kernel_debver
		$RUSTC --version
		$BINDGEN --version 2>/dev/null || true
		clang-19 --version | head -1
	} | sha256sum | cut -c1-12
}
BUILD=$CACHE/build/$FLAVOUR-$(build_key 2>/dev/null || echo none)

kmake() {
	make -C "$SRC" O="$BUILD" LLVM=-19 \
		RUSTC="$RUSTC" RUSTDOC="$RUSTDOC" HOSTRUSTC="$RUSTC" BINDGEN="$BINDGEN" \
		-j"$JOBS" "$@"
}

kernelrelease() { cat "$BUILD/include/config/kernel.release"; }

# Serialises builds of one flavour and keeps readers of its output (the initramfs step)
# from seeing a half-installed tree: exclusive for builders, shared for readers.
build_lock() { # ex|sh
	mkdir -p "$CACHE/build"
	exec 9>"$CACHE/build/.lock-$FLAVOUR"
	flock "-${1:0:1}" 9
}
