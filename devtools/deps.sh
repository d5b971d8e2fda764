#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what the build and the guest need. Idempotent: a second run only checks.
. "$(dirname "$0")/lib.sh"

PKGS=(
	linux-source-6.12 rustc-web rust-web-src rust-web-clippy
	libclang-19-dev llvm-19 clang-19 lld-19
	bc bison flex libelf-dev libssl-dev cpio rsync patch make gcc python3
	qemu-system-x86 qemu-utils busybox-static kmod
	tcmu-runner targetcli-fb python3-rtslib-fb fio sg3-utils e2fsprogs dbus-daemon open-iscsi
	linux-perf
)

# Two rounds: installing one package can remove another that was already there (a machine
# image with qemu-utils from bookworm-backports loses it to qemu-system-x86's exact-version
# dependencies), and the second round puts the matching version back.
for round in 1 2; do
	missing=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || break
	log "installing Debian packages (round $round): ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	[ "$round" = 2 ] || $SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
done
for c in qemu-img qemu-system-x86_64 fio tcmu-runner targetcli sg_inq busybox iscsiadm; do
	command -v "$c" >/dev/null || die "$c is missing after installing the Debian packages"
done

if ! "$BINDGEN" --version 2>/dev/null | grep -q '0\.70\.1'; then
	log "installing bindgen-cli 0.70.1 from crates.io into $BINDGEN_ROOT"
	cargo install --locked bindgen-cli --version 0.70.1 --root "$BINDGEN_ROOT"
fi
# The oldest rustc Linux 6.12 supports, for the msrv build of `make check` (devtools/lib.sh).
if [ ! -f "$HOME/.rustup/toolchains/$MSRV_TOOLCHAIN-x86_64-unknown-linux-gnu/lib/rustlib/src/rust/library/core/src/lib.rs" ]; then
	command -v rustup >/dev/null || die "rustup is needed to install rustc $MSRV_TOOLCHAIN (https://rustup.rs)"
	log "installing rustc $MSRV_TOOLCHAIN with rust-src (rustup)"
	rustup toolchain install "$MSRV_TOOLCHAIN" --profile minimal -c rust-src
fi
log "dependencies present"
