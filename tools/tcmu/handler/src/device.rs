// SPDX-License-Identifier: GPL-2.0

//! Executes decoded SCSI commands against a backstore and the ring's data
//! buffers, and completes them.

use tcmu_ring::{Command, IoVec, Response, Ring, RingError, SAM_STAT_GOOD};

use crate::backstore::Backstore;
use crate::scsi::{self, LunParams, Op, Sense};

/// Counters, for the exit log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands completed.
    pub cmds: u64,
    /// Commands completed with CHECK CONDITION.
    pub errors: u64,
    /// Bytes read from the backstore.
    pub read_bytes: u64,
    /// Bytes written to the backstore.
    pub written_bytes: u64,
}

/// A logical unit: parameters, backstore and counters.
pub struct Device {
    /// Name for logs.
    pub name: String,
    /// SCSI parameters.
    pub lun: LunParams,
    /// The blocks.
    pub store: Box<dyn Backstore>,
    /// Counters.
    pub stats: Stats,
    /// Verbosity: 2 and more logs every command.
    pub verbose: u8,
}

fn short_buffer() -> Sense {
    // The initiator's buffer is smaller than the CDB's transfer length.
    Sense::new(scsi::key::ILLEGAL_REQUEST, 0x24, 0)
}

fn ring_failure(e: RingError) -> Sense {
    eprintln!("tcmu-rs-handler: data buffer access failed: {e}");
    Sense::internal_failure()
}

impl Device {
    /// A device with default counters.
    pub fn new(name: String, lun: LunParams, store: Box<dyn Backstore>) -> Self {
        Device {
            name,
            lun,
            store,
            stats: Stats::default(),
            verbose: 0,
        }
    }

    /// Executes `cmd` and completes it on `ring`. Only ring errors (the
    /// completion itself failing) are returned.
    pub fn handle(&mut self, ring: &mut Ring, cmd: &Command) -> Result<(), RingError> {
        let res = self.execute(ring, cmd);
        self.stats.cmds += 1;
        if self.verbose >= 2 {
            eprintln!(
                "tcmu-rs-handler: {}: cmd {} cdb {:02x?} -> {:?}",
                self.name, cmd.cmd_id, cmd.cdb, res
            );
        }
        match res {
            Ok(read_len) => ring.complete(
                cmd.cmd_id,
                &Response {
                    status: SAM_STAT_GOOD,
                    sense: &[],
                    read_len,
                },
            ),
            Err(sense) => {
                self.stats.errors += 1;
                if self.verbose == 1 {
                    eprintln!(
                        "tcmu-rs-handler: {}: cdb {:02x?}: CHECK CONDITION {:x}/{:02x}/{:02x}",
                        self.name, cmd.cdb, sense.key, sense.asc, sense.ascq
                    );
                }
                ring.complete(cmd.cmd_id, &Response::check_condition(&sense.fixed()))
            }
        }
    }

    /// Executes `cmd`; returns the Data-In length to report with READ_LEN
    /// (`None`: the whole buffer), or the sense for CHECK CONDITION.
    pub fn execute(&mut self, ring: &mut Ring, cmd: &Command) -> Result<Option<u32>, Sense> {
        let op = scsi::decode(&cmd.cdb, &self.lun)?;
        let bs = self.lun.block_size as u64;
        let have = cmd.data_len();
        match op {
            Op::Good => Ok(None),
            Op::Sync => {
                self.store.flush().map_err(|_| Sense::write_error())?;
                Ok(None)
            }
            Op::DataIn(payload) => {
                let n = ring
                    .copy_to_iovs(&cmd.iovs, &payload)
                    .map_err(ring_failure)?;
                ring.zero_iovs(&cmd.iovs, n as u64).map_err(ring_failure)?;
                Ok(Some(n as u32))
            }
            Op::Read { lba, blocks, .. } => {
                let need = blocks as u64 * bs;
                if have < need {
                    return Err(short_buffer());
                }
                self.transfer(ring, &cmd.iovs, lba * bs, need, true)?;
                self.stats.read_bytes += need;
                if have > need {
                    ring.zero_iovs(&cmd.iovs, need).map_err(ring_failure)?;
                    return Ok(Some(need as u32));
                }
                Ok(None)
            }
            Op::Write {
                lba, blocks, fua, ..
            } => {
                let need = blocks as u64 * bs;
                if have < need {
                    return Err(short_buffer());
                }
                self.transfer(ring, &cmd.iovs, lba * bs, need, false)?;
                self.stats.written_bytes += need;
                if fua {
                    self.store.flush().map_err(|_| Sense::write_error())?;
                }
                Ok(None)
            }
            Op::Verify {
                lba,
                blocks,
                bytchk,
            } => {
                let one_block = bytchk == 3;
                let need = match bytchk {
                    0 => return Ok(None),
                    1 => blocks as u64 * bs,
                    _ => bs,
                };
                if blocks == 0 {
                    return Ok(None);
                }
                if have < need {
                    return Err(short_buffer());
                }
                let mut expected = vec![0u8; need as usize];
                ring.copy_from_iovs(&cmd.iovs, &mut expected)
                    .map_err(ring_failure)?;
                let mut medium = vec![0u8; need as usize];
                let rounds = if one_block { blocks as u64 } else { 1 };
                for i in 0..rounds {
                    self.store
                        .read_at((lba + i) * bs, &mut medium)
                        .map_err(|_| Sense::read_error())?;
                    if medium != expected {
                        return Err(Sense::miscompare());
                    }
                }
                Ok(None)
            }
        }
    }

    /// Moves `len` bytes between the buffers `iovs` and the backstore at
    /// byte offset `off`, without an intermediate copy.
    fn transfer(
        &mut self,
        ring: &mut Ring,
        iovs: &[IoVec],
        mut off: u64,
        len: u64,
        read: bool,
    ) -> Result<(), Sense> {
        let mut left = len;
        for iov in iovs {
            if left == 0 {
                break;
            }
            let buf = ring.data_mut(iov).map_err(ring_failure)?;
            let n = (buf.len() as u64).min(left) as usize;
            if read {
                self.store.read_at(off, &mut buf[..n]).map_err(|e| {
                    eprintln!("tcmu-rs-handler: {}: read at {off}: {e}", self.name);
                    Sense::read_error()
                })?;
            } else {
                self.store.write_at(off, &buf[..n]).map_err(|e| {
                    eprintln!("tcmu-rs-handler: {}: write at {off}: {e}", self.name);
                    Sense::write_error()
                })?;
            }
            off += n as u64;
            left -= n as u64;
        }
        Ok(())
    }
}
