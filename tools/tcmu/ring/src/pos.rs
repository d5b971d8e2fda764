// SPDX-License-Identifier: GPL-2.0

//! Ring position arithmetic (offsets relative to the start of the ring,
//! modulo `cmdr_size`), as in `target_core_user.c` (`UPDATE_HEAD`,
//! `spc_used`, `spc_free`, `head_to_end`).

/// Bytes from `from` to `to` going forward around a ring of `size` bytes
/// (`spc_used(to, from, size)`). Both positions must be `< size`.
pub const fn distance(from: u32, to: u32, size: u32) -> u32 {
    if to >= from {
        to - from
    } else {
        size - from + to
    }
}

/// `pos` advanced by `len` bytes around a ring of `size` bytes
/// (`UPDATE_HEAD`). `pos < size` and `len <= size` are assumed; the
/// arithmetic is done in 64 bits so it cannot overflow.
pub const fn advance(pos: u32, len: u32, size: u32) -> u32 {
    ((pos as u64 % size as u64 + len as u64) % size as u64) as u32
}

/// Bytes from `pos` to the end of the ring (`head_to_end`).
pub const fn to_end(pos: u32, size: u32) -> u32 {
    size - pos
}

/// Free space of the ring as the kernel computes it (`spc_free`): one byte
/// is kept unused so that a full ring differs from an empty one.
pub const fn free_space(head: u32, tail: u32, size: u32) -> u32 {
    size - distance(tail, head, size) - 1
}

/// Checks that `pos` is a valid ring position: `< size` and
/// [`tcmu_abi::TCMU_OP_ALIGN_SIZE`]-aligned.
pub const fn valid_pos(pos: u32, size: u32) -> bool {
    pos < size && (pos as usize).is_multiple_of(tcmu_abi::TCMU_OP_ALIGN_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(distance(0, 0, 64), 0);
        assert_eq!(distance(8, 24, 64), 16);
        assert_eq!(distance(56, 8, 64), 16);
        assert_eq!(distance(8, 0, 64), 56);
        assert_eq!(advance(56, 8, 64), 0);
        assert_eq!(advance(48, 24, 64), 8);
        assert_eq!(advance(u32::MAX - 7, 16, u32::MAX), 9);
        assert_eq!(to_end(40, 64), 24);
        assert_eq!(free_space(0, 0, 64), 63);
        assert_eq!(free_space(16, 8, 64), 55);
        assert_eq!(free_space(8, 16, 64), 7);
        assert!(valid_pos(0, 64));
        assert!(valid_pos(56, 64));
        assert!(!valid_pos(64, 64));
        assert!(!valid_pos(4, 64));
    }
}
