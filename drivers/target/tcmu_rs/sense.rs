// SPDX-License-Identifier: GPL-2.0

//! Validation of the sense data a handler returns with CHECK CONDITION.
//!
//! The target core passes the 96 bytes of a completion's `sense_buffer`
//! verbatim to the fabric (`transport_copy_sense_to_cmd`), and through
//! tcm_loop they land in the initiator's `scsi_sense_cache` object of the
//! same size. The kernel's parsers trust the lengths inside: in 6.12
//! `scsi_sense_desc_find()` returns a descriptor whose header starts at the
//! last byte, and `scsi_get_sense_info_fld()` then reads `ucp[1]` and
//! `ucp[4..12]` past the buffer (a KASAN slab-out-of-bounds from `sd_done`).
//! C's `tcmu_handle_completion` copies whatever the handler wrote; we make
//! the lengths consistent first with [`sanitize`]:
//!
//! * fixed format (response code 0x70/0x71, bit 7 is VALID): the additional
//!   length (byte 7) is clamped to 88, so that `8 + len <= 96`;
//! * descriptor format (0x72/0x73): the additional length is clamped to 88
//!   and the descriptors are walked from byte 8, each `[type, add_len, ..]`
//!   taking `2 + add_len` bytes. A descriptor that does not end within the
//!   additional sense bytes (including a header with fewer than 2 bytes
//!   left) is dropped with everything after it; a descriptor of a type with
//!   a fixed layout ([`min_add_len`]) that is shorter than that layout is
//!   dropped alone and the next ones move down. Byte 7 becomes the length
//!   kept and the bytes after it are zeroed;
//! * any other response code (0x00, 0x74..0x7f, garbage) is replaced by
//!   fixed-format sense HARDWARE ERROR, INTERNAL TARGET FAILURE (0x44/0x00).
//!   Only the response code says where the sense key is, so an unknown one
//!   leaves no key worth keeping.
//!
//! Well-formed sense (every descriptor complete, lengths within the buffer)
//! is left byte for byte as it is, including any bytes after the additional
//! length, which no parser reads. Bit 7 of a descriptor-format response code
//! (reserved) is left alone: `scsi_sense_desc_find()` then finds nothing.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

/// Size of the sense buffer of a completion (`TCMU_SENSE_BUFFERSIZE`) and
/// of the target core (`TRANSPORT_SENSE_BUFFER`).
pub const SENSE_LEN: usize = 96;

/// Bytes before the additional sense bytes, in both formats.
pub const HEADER_LEN: usize = 8;

/// The largest additional length (byte 7) that fits in [`SENSE_LEN`].
pub const MAX_ADDITIONAL_LEN: u8 = (SENSE_LEN - HEADER_LEN) as u8;

/// Sense key HARDWARE ERROR.
pub const HARDWARE_ERROR: u8 = 0x04;
/// ASC/ASCQ INTERNAL TARGET FAILURE.
pub const INTERNAL_TARGET_FAILURE: (u8, u8) = (0x44, 0x00);

/// What [`sanitize`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanitized {
    /// Well-formed: not a byte changed.
    Unchanged,
    /// Fixed or descriptor format with the additional length (byte 7)
    /// clamped or descriptors dropped; bytes 0..=6 (response code, sense
    /// key, and ASC/ASCQ of descriptor format) unchanged.
    Repaired,
    /// Unknown response code: replaced by fixed-format HARDWARE ERROR,
    /// INTERNAL TARGET FAILURE.
    Replaced,
}

/// Sense format, from the response code (byte 0 without bit 7).
enum Format {
    Fixed,
    Descriptor,
    Unknown,
}

const fn format(byte0: u8) -> Format {
    match byte0 & 0x7f {
        0x70 | 0x71 => Format::Fixed,
        0x72 | 0x73 => Format::Descriptor,
        _ => Format::Unknown,
    }
}

/// Makes handler sense safe for the kernel's sense parsers (see the module
/// documentation for the rules).
pub fn sanitize(sense: &mut [u8; SENSE_LEN]) -> Sanitized {
    match format(sense[0]) {
        Format::Fixed => {
            if sense[7] <= MAX_ADDITIONAL_LEN {
                return Sanitized::Unchanged;
            }
            sense[7] = MAX_ADDITIONAL_LEN;
            Sanitized::Repaired
        }
        Format::Descriptor => sanitize_descriptors(sense),
        Format::Unknown => {
            *sense = replacement();
            Sanitized::Replaced
        }
    }
}

/// Fixed-format CURRENT sense HARDWARE ERROR, INTERNAL TARGET FAILURE
/// (additional length 10: 18 bytes, as `scsi_build_sense_buffer()`).
pub const fn replacement() -> [u8; SENSE_LEN] {
    let mut s = [0u8; SENSE_LEN];
    s[0] = 0x70;
    s[2] = HARDWARE_ERROR;
    s[7] = 0x0a;
    s[12] = INTERNAL_TARGET_FAILURE.0;
    s[13] = INTERNAL_TARGET_FAILURE.1;
    s
}

/// The smallest additional length of descriptor types with a fixed layout
/// (SPC-4 4.5.2), which kernel code reads or writes at fixed offsets once
/// `scsi_sense_desc_find()` returns them; 0 for the others.
pub const fn min_add_len(desc_type: u8) -> u8 {
    match desc_type {
        // Information (`scsi_get_sense_info_fld`, `scsi_set_sense_information`:
        // 8 bytes at offset 4) and command-specific information.
        0x00 | 0x01 => 0x0a,
        // Sense key specific (`scsi_set_sense_field_pointer`: bytes 4..7).
        0x02 => 0x06,
        // Field replaceable unit, stream commands (st, usb-storage read
        // byte 3), block commands.
        0x03..=0x05 => 0x02,
        // ATA status return (libata writes 14 bytes).
        0x09 => 0x0c,
        _ => 0,
    }
}

/// The descriptor at `pos` and the position after it, if all of it lies
/// before `end`.
fn descriptor_at(sense: &[u8], pos: usize, end: usize) -> Option<(&[u8], usize)> {
    let add_len = *sense.get(pos.checked_add(1)?)?;
    let next = pos.checked_add(2)?.checked_add(usize::from(add_len))?;
    if next > end {
        return None;
    }
    Some((sense.get(pos..next)?, next))
}

/// Keeps the complete, long-enough descriptors of descriptor-format sense.
fn sanitize_descriptors(sense: &mut [u8; SENSE_LEN]) -> Sanitized {
    let end = HEADER_LEN + usize::from(sense[7].min(MAX_ADDITIONAL_LEN));
    let mut out = [0u8; SENSE_LEN];
    let mut kept = HEADER_LEN;
    let mut pos = HEADER_LEN;
    while let Some((desc, next)) = descriptor_at(sense, pos, end) {
        pos = next;
        let (Some(&ty), Some(&add_len)) = (desc.first(), desc.get(1)) else {
            break;
        };
        if add_len < min_add_len(ty) {
            continue;
        }
        // Never fails: `kept + desc.len() <= next <= end`.
        let Some((dst, after)) = kept
            .checked_add(desc.len())
            .and_then(|after| Some((out.get_mut(kept..after)?, after)))
        else {
            break;
        };
        for (d, b) in dst.iter_mut().zip(desc) {
            *d = *b;
        }
        kept = after;
    }
    // Every byte of the original additional length was kept: nothing to do.
    if kept == HEADER_LEN + usize::from(sense[7]) {
        return Sanitized::Unchanged;
    }
    for (o, s) in out.iter_mut().zip(sense.iter()).take(HEADER_LEN) {
        *o = *s;
    }
    // `kept <= SENSE_LEN`, so the difference fits in a byte.
    out[7] = u8::try_from(kept.saturating_sub(HEADER_LEN)).unwrap_or(MAX_ADDITIONAL_LEN);
    *sense = out;
    Sanitized::Repaired
}
