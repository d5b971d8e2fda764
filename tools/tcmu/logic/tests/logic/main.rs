// SPDX-License-Identifier: GPL-2.0

//! Tests of the pure logic of the `tcmu_rs` kernel module.

mod blocks;
mod kstrto;
mod entry;
mod ids;
mod nopanic;
mod params;
mod response;
mod ring;
mod sense;
mod sim;
