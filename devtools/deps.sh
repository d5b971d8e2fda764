#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what the build and the guest need. Idempotent: a second run only checks.
. "$(dirname "$0")/lib.sh"

PKGS=(
	linux-source-6.12 rustc-web rust-web-src
	libclang-19-dev llvm-19 clang-19 lld-19
	bc bison flex libelf-dev libssl-dev cpio rsync patch make gcc python3
	qemu-system-x86 qemu-utils busybox-static kmod
	tcmu-runner targetcli-fb python3-rtslib-fb fio sg3-utils e2fsprogs dbus-daemon
	linux-perf
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if ! "$BINDGEN" --version 2>/dev/null | grep -q '0\.70\.1'; then
	log "installing bindgen-cli 0.70.1 from crates.io into $BINDGEN_ROOT"
	cargo install --locked bindgen-cli --version 0.70.1 --root "$BINDGEN_ROOT"
fi
log "dependencies present"
