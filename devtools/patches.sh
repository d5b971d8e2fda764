#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make patches`: the overlay as a git format-patch series against the pristine Debian 6.12
# tree, in out/patches (devtools/patches.py says how it is cut), then checked: the series
# applies with git am to a fresh pristine branch and gives the tested tree.
. "$(dirname "$0")/lib.sh"
REPO=$CACHE/patches/linux
OUT=${PATCHES_OUT:-$TOP/out/patches}

pristine_repo() {
	[ -f "$REPO/.git/tcmu-pristine-$(kernel_debver)" ] && return
	log "patches: a git repository of the pristine tree in $REPO (once)"
	rm -rf "$REPO" && mkdir -p "$REPO"
	tar -C "$REPO" --strip-components=1 -xf /usr/src/linux-source-6.12.tar.xz
	git -C "$REPO" init -q -b pristine
	# Debian's tree ignores everything in its .gitignore (/*): add by force.
	git -C "$REPO" add -A -f
	git -C "$REPO" -c user.name=pristine -c user.email=pristine@invalid commit -q \
		-m "Debian linux-source-6.12 $(kernel_debver)"
	touch "$REPO/.git/tcmu-pristine-$(kernel_debver)"
}

pristine_repo
bash "$TOP/devtools/kernel.sh" prepare
python3 "$TOP/devtools/patches.py" "$REPO" "$SRC" "$TOP" "$OUT" || die "the series does not give the tested tree"
# A reviewer's check: the files apply to a fresh tree with git am.
git -C "$REPO" checkout -q -f -B am-check pristine
git -C "$REPO" -c user.name=check -c user.email=check@invalid am -q "$OUT"/*.patch ||
	die "the series does not apply with git am"
git -C "$REPO" diff --quiet series am-check || die "git am of the series differs from the series"
log "patches: $(ls "$OUT" | wc -l) patches apply with git am to the pristine tree ($OUT)"
