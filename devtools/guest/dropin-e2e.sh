#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The drop-in: our module built as target_core_user (CONFIG_TCM_USER_RS_DROP_IN, by
# `kernel.sh dropin`) is installed in /lib/modules/<release>/updates, where modprobe prefers
# it over the C module of the same name. "modprobe target_core_user" must load ours, its
# parameters must be where tcmu-runner writes them, and the tcmu-runner end-to-end test must
# pass with no error in the runner's log. The C module is back in place afterwards.
set -euo pipefail
. /tcmu/lib.sh
KO=/tcmu/dropin/target_core_user.ko
UPD=/lib/modules/$(uname -r)/updates

cleanup() {
	set +e
	rmmod tcm_loop target_core_user 2>/dev/null
	rm -rf "$UPD"
	depmod -a
}
trap cleanup EXIT

[ -f "$KO" ] || { echo "no $KO"; exit 1; }
for m in tcmu_rs target_core_user; do
	[ -e "/sys/module/$m" ] && rmmod tcm_loop "$m" 2>/dev/null
	[ -e "/sys/module/$m" ] && { echo "$m is still loaded"; exit 1; }
done
mkdir -p "$UPD"
cp "$KO" "$UPD/"
depmod -a
modprobe target_core_user
desc=$(modinfo -F description target_core_user)
case $desc in
*Rust*) ;;
*) echo "modprobe target_core_user loaded \"$desc\", not the drop-in"; exit 1 ;;
esac
for p in global_max_data_area_mb block_netlink reset_netlink; do
	[ -e "/sys/module/target_core_user/parameters/$p" ] || {
		echo "no /sys/module/target_core_user/parameters/$p"; exit 1; }
done
echo "drop-in: modprobe target_core_user loaded \"$desc\", with its parameters"
TCMU_MODULE=target_core_user RUNNER_STRICT=1 bash /tcmu/runner-e2e.sh
