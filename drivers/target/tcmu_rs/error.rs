// SPDX-License-Identifier: GPL-2.0

//! Typed errors of the driver.

use core::fmt;

/// Why the handler broke its ring: what the reap found in the shared memory that no correct
/// handler writes. The device then fails new commands until `reset_ring` (as C's
/// `TCMU_DEV_BIT_BROKEN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BrokenRing {
    /// `cmd_tail` is not inside the ring, or not between the old tail and the head.
    BadCmdTail,
    /// `cmd_tail` points inside an entry.
    TailInsideEntry,
    /// An entry's header could not be read.
    Unreadable,
    /// An entry's length or opcode changed since the driver wrote it.
    HeaderChanged,
    /// A command entry's response does not decode.
    BadEntry,
    /// A completion names a cmd_id that is not on the ring.
    UnknownCmdId,
    /// A completion names a command completed with `KEEP_BUF` before.
    KeptTwice,
    /// The ring's bookkeeping refused an entry the reap had just peeked.
    Bookkeeping,
    /// A command the reap had just found was gone from the command table.
    CmdTable,
}

impl BrokenRing {
    /// What the warning says.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BadCmdTail => "bad cmd_tail",
            Self::TailInsideEntry => "cmd_tail inside an entry",
            Self::Unreadable => "entry",
            Self::HeaderChanged => "entry header changed",
            Self::BadEntry => "bad entry",
            Self::UnknownCmdId => "unknown cmd_id",
            Self::KeptTwice => "cmd_id already completed with KEEP_BUF",
            Self::Bookkeeping => "ring",
            Self::CmdTable => "cmd table",
        }
    }
}

impl fmt::Display for BrokenRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
