// SPDX-License-Identifier: GPL-2.0

//! The commands on a ring: [`Inflight`], and the [`CmdTable`] that holds them by command id.

use crate::device::User;
use crate::ids;
use crate::response::CmdInfo;
use crate::smallvec::SmallVec;
use kernel::{prelude::*, target::PendingCmd, time::Jiffies};

/// A command on the ring.
pub(crate) struct Inflight {
    /// `None` once the command timed out and was failed: the handler still owns its entry
    /// and blocks until it completes it (that late completion is ignored) or the ring is reset.
    pub(crate) cmd: Option<PendingCmd<User>>,
    pub(crate) deadline: Option<Jiffies>,
    /// Completed with `KEEP_BUF`: the handler still uses the blocks until `free_kept_buf`.
    pub(crate) kept: bool,
    /// Data blocks: first the Data-Out (or Data-In) ones, then the bidi Data-In ones.
    pub(crate) dbis: SmallVec<u32, INLINE_BLOCKS>,
    pub(crate) n_first: usize,
    pub(crate) info: CmdInfo,
}

/// The commands on a ring by id: a slot per id up to the highest used so far (index 0
/// unused), and a bitmap of the ids in use, so the lowest free id is found without walking
/// the slots. A slot is `Some` exactly when its id is marked in use.
pub(crate) struct CmdTable {
    slots: KVVec<Option<Inflight>>,
    ids: ids::IdMap<KVVec<u64>>,
}

impl CmdTable {
    pub(crate) fn new() -> Result<Self> {
        let mut slots = KVVec::new();
        slots.push(None, GFP_KERNEL)?;
        let bits = KVVec::from_elem(0, ids::ID_WORDS, GFP_KERNEL)?;
        Ok(Self {
            slots,
            ids: ids::IdMap::new(bits).ok_or(EINVAL)?,
        })
    }

    /// The lowest free id (as C's `xa_alloc`), with a slot ready for it; `None` if all ids
    /// are in use or the table cannot grow.
    pub(crate) fn free_id(&mut self) -> Option<u16> {
        let id = self.ids.lowest_free()?;
        while self.slots.len() <= usize::from(id) {
            self.slots.push(None, GFP_NOIO).ok()?;
        }
        Some(id)
    }

    /// Puts `inf` in the slot of `id`, which `free_id` returned. Returns whether it did (not
    /// if the id is in use).
    pub(crate) fn insert(&mut self, id: u16, inf: Inflight) -> bool {
        match self.slots.get_mut(usize::from(id)) {
            Some(slot @ None) if self.ids.set(id) => {
                *slot = Some(inf);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn get(&self, id: u16) -> Option<&Inflight> {
        self.slots.get(usize::from(id))?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: u16) -> Option<&mut Inflight> {
        self.slots.get_mut(usize::from(id))?.as_mut()
    }

    pub(crate) fn remove(&mut self, id: u16) -> Option<Inflight> {
        let inf = self.slots.get_mut(usize::from(id))?.take()?;
        self.ids.clear(id);
        Some(inf)
    }

    /// Number of commands in the table (on the ring, timed out or kept).
    pub(crate) fn len(&self) -> usize {
        self.ids.used() as usize
    }

    /// One past the highest id that has a slot.
    pub(crate) fn id_limit(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Inflight> {
        self.slots.iter_mut().flatten()
    }

    /// Empties the table, passing each command to `f`.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(Inflight)) {
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if let Some(inf) = slot.take() {
                // `id` < `slots.len()` <= 0x10000.
                self.ids.clear(id as u16);
                f(inf);
            }
        }
    }
}

/// Blocks a command keeps without allocating (256 KiB with the default 16 KiB blocks).
pub(crate) const INLINE_BLOCKS: usize = 16;

#[kunit_tests(tcmu_rs_cmds)]
mod tests {
    use super::*;
    use crate::response::DataDirection;

    #[test]
    fn lowest_free_id() {
        let Ok(mut cmds) = CmdTable::new() else {
            assert!(false);
            return;
        };
        assert_eq!(cmds.free_id(), Some(1));
        // Not taken until inserted.
        assert_eq!(cmds.free_id(), Some(1));
        assert_eq!(cmds.id_limit(), 2);
        assert!(cmds.get(1).is_none());
        assert!(cmds.remove(1).is_none());
        let idle = || -> Option<Inflight> {
            Some(Inflight {
                cmd: None,
                deadline: None,
                kept: false,
                dbis: SmallVec::filled(0, 0).ok()?,
                n_first: 0,
                info: CmdInfo {
                    dir: DataDirection::None,
                    data_length: 0,
                    bidi_length: 0,
                },
            })
        };
        for want in 1..=3u16 {
            let id = cmds.free_id();
            assert_eq!(id, Some(want));
            if let (Some(id), Some(inf)) = (id, idle()) {
                assert!(cmds.insert(id, inf));
            }
        }
        // An id in use is not taken twice.
        if let Some(inf) = idle() {
            assert!(!cmds.insert(2, inf));
        }
        assert_eq!(cmds.len(), 3);
        assert!(cmds.remove(2).is_some());
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds.free_id(), Some(2));
        let mut n = 0;
        cmds.drain(|_| n += 1);
        assert_eq!(n, 2);
        assert_eq!(cmds.len(), 0);
        assert_eq!(cmds.free_id(), Some(1));
    }
}
