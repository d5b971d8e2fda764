#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make run`: load our module and create a `user` device, showing each step.
set -e
step() { echo "+ $*"; "$@"; }
cd /sys/kernel/config/target/core
step modprobe tcmu_rs
step lsmod
step mkdir user_0
step mkdir user_0/d0
step sh -c 'echo -n dev_size=16777216 > user_0/d0/control'
step cat user_0/d0/info
step ls user_0/d0 user_0/d0/attrib
step sh -c 'echo 1 > user_0/d0/enable'
step cat user_0/d0/enable
step rmdir user_0/d0
step rmdir user_0
step rmmod tcmu_rs
dmesg | grep tcmu_rs || true
echo "run: OK"
