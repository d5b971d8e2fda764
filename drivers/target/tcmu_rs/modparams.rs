// SPDX-License-Identifier: GPL-2.0

//! The module parameters: `global_max_data_area_mb` (the limit of the data area pages of all
//! devices), `block_netlink` and `reset_netlink`.

use crate::params::{self, Limits};
use crate::reclaim::{over_global_limit, Reclaimer};
use crate::{kstrto, netlink};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    module_param::{ParamContext, ParamOps, ParamShared, ParamWriter},
    prelude::*,
    timer::ArcWork,
};

/// `global_max_data_area_mb` in pages (`tcmu_global_max_pages`).
static GLOBAL_MAX_PAGES: AtomicU32 = AtomicU32::new(params::TCMU_GLOBAL_MAX_PAGES_DEF);
/// The reclaimer, for the `global_max_data_area_mb` parameter.
pub(crate) static RECLAIMER: ParamShared<Reclaimer> = ParamShared::new();

/// The limits that follow from the page size and the module parameters.
pub(crate) fn limits() -> Limits {
    Limits {
        page_shift: kernel::page::PAGE_SHIFT as u32,
        global_max_pages: GLOBAL_MAX_PAGES.load(Ordering::Relaxed),
    }
}

/// `global_max_data_area_mb` in pages.
pub(crate) fn global_max_pages() -> usize {
    GLOBAL_MAX_PAGES.load(Ordering::Relaxed) as usize
}

/// Module parameter `global_max_data_area_mb` (as C: decimal, > 0, capped per device at
/// configure time; lowering it below what is held reclaims unused pages at once).
struct GlobalMaxDataAreaMb;

impl ParamOps for GlobalMaxDataAreaMb {
    fn set(ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let mb = kstrto::kstrtoint_dec(val).map_err(|_| EINVAL)?;
        if mb <= 0 {
            pr_err!("global_max_data_area must be larger than 0.\n");
            return Err(EINVAL);
        }
        let pages = limits().mbs_to_pages(mb as u32).min(u64::from(u32::MAX)) as u32;
        GLOBAL_MAX_PAGES.store(pages, Ordering::Relaxed);
        if over_global_limit() {
            if let Some(r) = RECLAIMER.get_arc(ctx) {
                ArcWork::schedule(r);
            }
        }
        Ok(())
    }

    fn get(_ctx: &ParamContext<'_>, f: &mut ParamWriter<'_>) -> Result {
        writeln!(f, "{}", limits().global_max_mb()).map_err(|_| EINVAL)
    }
}

/// Module parameter `block_netlink`: 1 makes events that would wait for a reply fail.
struct BlockNetlink;

impl ParamOps for BlockNetlink {
    fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let v = kstrto::kstrtou8(val).map_err(|e| Error::from_errno(e.to_errno()))?;
        if v > 1 {
            pr_err!("Invalid block netlink value {}\n", v);
            return Err(EINVAL);
        }
        netlink::BLOCKED.store(v == 1, Ordering::Relaxed);
        Ok(())
    }

    fn get(_ctx: &ParamContext<'_>, f: &mut ParamWriter<'_>) -> Result {
        let s = if netlink::BLOCKED.load(Ordering::Relaxed) {
            "blocked"
        } else {
            "unblocked"
        };
        writeln!(f, "{s}").map_err(|_| EINVAL)
    }
}

/// Module parameter `reset_netlink` (write-only): 1 fails the events waiting for a reply
/// with `EINTR`; refused with `EBUSY` unless `block_netlink` is set.
struct ResetNetlink;

impl ParamOps for ResetNetlink {
    fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let v = kstrto::kstrtou8(val).map_err(|e| Error::from_errno(e.to_errno()))?;
        if v != 1 {
            pr_err!("Invalid reset netlink value {}\n", v);
            return Err(EINVAL);
        }
        netlink::reset_waiting()
    }
}

kernel::module_param_cb!(
    "global_max_data_area_mb",
    GlobalMaxDataAreaMb,
    0o644,
    "Max MBs allowed to be allocated to all the tcmu device's data areas."
);
kernel::module_param_cb!(
    "block_netlink",
    BlockNetlink,
    0o644,
    "Block new netlink commands."
);
kernel::module_param_cb!(
    "reset_netlink",
    ResetNetlink,
    0o200,
    "Reset netlink commands.",
    write_only
);
