// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the parser of the configfs `control` attribute.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcmu_logic::params::{format_info, Lossy, set_params, Limits, Params, TCMU_GLOBAL_MAX_PAGES_DEF};

fuzz_target!(|data: &[u8]| {
    let l = Limits { page_shift: 12, global_max_pages: TCMU_GLOBAL_MAX_PAGES_DEF };
    let mut p = Params::new(&l);
    let enabled = data.first().is_some_and(|b| b & 1 != 0);
    let _ = set_params(&mut p, data, enabled, &l);
    let mut s = String::new();
    let _ = format_info(&p, &mut Lossy(&mut s));
    assert!(p.data_pages_per_blk > 0);
});
