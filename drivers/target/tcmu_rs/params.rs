// SPDX-License-Identifier: GPL-2.0

//! Device parameters: parsing of the configfs `control` attribute and
//! formatting of the `info` text, like C's `tcmu_set_configfs_dev_params`
//! and `tcmu_show_configfs_dev_params`.
//!
//! The `control` input is split on `,` and `\n`; empty tokens are skipped
//! and each token is matched against the patterns below exactly as the
//! kernel's `match_token` (`lib/parser.c`) does:
//!
//! | pattern                  | value                                   |
//! |--------------------------|-----------------------------------------|
//! | `dev_config=%s`          | config string, truncated to 255 bytes   |
//! | `dev_size=%s`            | `match_u64`: `kstrtoull(s, 0)`          |
//! | `hw_block_size=%d`       | `match_int`, must be > 0                |
//! | `hw_max_sectors=%d`      | `match_int`, must be > 0                |
//! | `nl_reply_supported=%d`  | `match_int`, any value                  |
//! | `max_data_area_mb=%d`    | `match_int`, > 0, capped to global limit|
//! | `data_pages_per_blk=%d`  | `match_int`, <= pages of the data area  |
//! | `cmd_ring_size_mb=%d`    | `match_int`, > 0, values > 8 mean 8     |
//!
//! Quirks of `match_token` that are reproduced:
//!
//! * a token that matches no pattern is silently ignored. `%d` only matches
//!   if `simple_strtol` (base 0: `0x` hex, `0` octal, optional leading `-`)
//!   consumes the rest of the token, so `hw_block_size=abc`,
//!   `hw_block_size=12k`, `hw_block_size=` and `hw_block_size= 1` are all
//!   ignored, not errors; `%s` needs a non-empty value, so `dev_config=` is
//!   ignored too;
//! * `-` alone matches `%d` and parses as 0 (so `hw_block_size=-` is
//!   EINVAL and `nl_reply_supported=-` sets 0);
//! * numbers of 24 characters or more give ERANGE (`NUMBER_BUF_LEN`);
//!   shorter ones that overflow 64 bits wrap before the `int` range check
//!   of `match_int` (as `simple_strtol` does);
//! * `dev_config` values longer than 255 bytes are silently truncated
//!   (`match_strlcpy` never fails on a non-empty value);
//! * the input stops at the first NUL byte (C works on a C string).
//!
//! Processing stops at the first error, and tokens before it stay applied,
//! as in C.
//!
//! Deviation from C: `data_pages_per_blk=0` is rejected with EINVAL (C
//! divides by zero), as is a value whose block size in bytes does not fit in
//! 32 bits (C's `data_blk_size` would wrap).
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use core::fmt;

use super::abi::MAILBOX_SIZE;

/// Size of the `dev_config` buffer in C, including the terminating NUL
/// (`TCMU_CONFIG_LEN`).
pub const TCMU_CONFIG_LEN: usize = 256;

/// Default size of mailbox plus command ring (`MB_CMDR_SIZE_DEF`, 8 MiB),
/// also the maximum.
pub const MB_CMDR_SIZE_DEF: u32 = 8 * 1024 * 1024;

/// Offset of the command ring: the mailbox size (`CMDR_OFF`).
pub const CMDR_OFF: u32 = MAILBOX_SIZE as u32;

/// Default command ring size (`CMDR_SIZE_DEF`).
pub const CMDR_SIZE_DEF: u32 = MB_CMDR_SIZE_DEF - CMDR_OFF;

/// Default number of pages per data block (`DATA_PAGES_PER_BLK_DEF`).
pub const DATA_PAGES_PER_BLK_DEF: u32 = 1;

/// Default size of the data area in pages (`DATA_AREA_PAGES_DEF`).
pub const DATA_AREA_PAGES_DEF: u32 = 256 * 1024;

/// Default global limit of data pages (`TCMU_GLOBAL_MAX_PAGES_DEF`).
pub const TCMU_GLOBAL_MAX_PAGES_DEF: u32 = 512 * 1024;

/// `match_token`'s `NUMBER_BUF_LEN`: numbers this long or longer give
/// ERANGE.
const NUMBER_BUF_LEN: usize = 24;

/// Errors of [`set_params`], mapped to errno values by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// `EINVAL`.
    Inval,
    /// `ERANGE`.
    Range,
}

impl ParamError {
    /// The negative errno value the C driver returns.
    pub const fn to_errno(self) -> i32 {
        match self {
            Self::Inval => -22,
            Self::Range => -34,
        }
    }
}

/// Machine- and module-wide values the parameters depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `PAGE_SHIFT` (at most 20).
    pub page_shift: u32,
    /// Global limit of data pages (`tcmu_global_max_pages`);
    /// `max_data_area_mb` is capped to it.
    pub global_max_pages: u32,
}

impl Limits {
    /// Shift from MiB to pages (`20 - PAGE_SHIFT`).
    fn mb_shift(&self) -> u32 {
        20u32.saturating_sub(self.page_shift)
    }

    /// `TCMU_MBS_TO_PAGES`.
    pub fn mbs_to_pages(&self, mb: u32) -> u64 {
        // mb < 2^32 and the shift is at most 20: no overflow.
        u64::from(mb) << self.mb_shift()
    }

    /// `TCMU_PAGES_TO_MBS`.
    pub fn pages_to_mbs(&self, pages: u32) -> u32 {
        pages >> self.mb_shift()
    }

    /// The global limit in MiB (`TCMU_PAGES_TO_MBS(tcmu_global_max_pages)`).
    pub fn global_max_mb(&self) -> u32 {
        self.pages_to_mbs(self.global_max_pages)
    }
}

/// Device parameters set through `control`, with C's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    dev_config: [u8; TCMU_CONFIG_LEN - 1],
    dev_config_len: usize,
    /// Device size in bytes (`dev_size`).
    pub dev_size: u64,
    /// `hw_block_size` set through `control`; 0 if never set (C stores it
    /// in `dev_attrib.hw_block_size`, which `configure_device` defaults to
    /// 512 if still 0).
    pub hw_block_size: u32,
    /// `hw_max_sectors` set through `control`; 0 if never set (defaults to
    /// 128 at enable).
    pub hw_max_sectors: u32,
    /// `nl_reply_supported`: negative disables netlink replies; otherwise
    /// replaced by the module setting at enable.
    pub nl_reply_supported: i32,
    /// Size of the data area in MiB (`data_area_mb`).
    pub data_area_mb: u32,
    /// Pages per data block (`data_pages_per_blk`).
    pub data_pages_per_blk: u32,
    /// Number of data blocks (`max_blocks`).
    pub max_blocks: u32,
    /// Command ring size in bytes, without the mailbox (`cmdr_size`).
    pub cmdr_size: u32,
}

impl Params {
    /// The defaults of C's `tcmu_alloc_device`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            dev_config: [0; TCMU_CONFIG_LEN - 1],
            dev_config_len: 0,
            dev_size: 0,
            hw_block_size: 0,
            hw_max_sectors: 0,
            nl_reply_supported: 0,
            data_area_mb: limits.pages_to_mbs(DATA_AREA_PAGES_DEF),
            data_pages_per_blk: DATA_PAGES_PER_BLK_DEF,
            max_blocks: DATA_AREA_PAGES_DEF / DATA_PAGES_PER_BLK_DEF,
            cmdr_size: CMDR_SIZE_DEF,
        }
    }

    /// The config string (`dev_config`, no NUL byte, at most 255 bytes;
    /// empty if never set).
    pub fn dev_config(&self) -> &[u8] {
        self.dev_config.get(..self.dev_config_len).unwrap_or(&[])
    }

    /// Sets the config string, truncated to 255 bytes and at the first NUL
    /// byte (like `match_strlcpy` into `char dev_config[TCMU_CONFIG_LEN]`).
    pub fn set_dev_config(&mut self, value: &[u8]) {
        let value = until_nul(value);
        let len = value.len().min(self.dev_config.len());
        if let (Some(dst), Some(src)) = (self.dev_config.get_mut(..len), value.get(..len)) {
            dst.copy_from_slice(src);
            self.dev_config_len = len;
        }
    }

    /// Command ring size in MiB as shown in configfs:
    /// `(cmdr_size + CMDR_OFF) >> 20`.
    pub fn cmd_ring_size_mb(&self) -> u32 {
        self.cmdr_size.saturating_add(CMDR_OFF) >> 20
    }

    /// Size of a data block in bytes (`data_pages_per_blk * PAGE_SIZE`), or
    /// `None` if it does not fit in a `u32`.
    pub fn data_blk_size(&self, limits: &Limits) -> Option<u32> {
        let size = shl_checked(u64::from(self.data_pages_per_blk), limits.page_shift)?;
        u32::try_from(size).ok()
    }
}

/// `v << s`, or `None` if bits would be lost.
fn shl_checked(v: u64, s: u32) -> Option<u64> {
    v.checked_mul(1u64.checked_shl(s)?)
}

/// Returns the part of `s` before its first NUL byte.
fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => s.get(..n).unwrap_or(&[]),
        None => s,
    }
}

/// `_parse_integer_fixup_radix` with base 0: returns the base and the
/// number of prefix bytes to skip.
fn fixup_radix(s: &[u8]) -> (u32, usize) {
    let c0 = s.first().copied().unwrap_or(0);
    let c1 = s.get(1).copied().unwrap_or(0);
    let c2 = s.get(2).copied().unwrap_or(0);
    if c0 == b'0' {
        if c1.eq_ignore_ascii_case(&b'x') && c2.is_ascii_hexdigit() {
            (16, 2)
        } else {
            (8, 0)
        }
    } else {
        (10, 0)
    }
}

/// `_parse_integer`: parses digits of `base` at the start of `s`. Returns
/// the (wrapped) value, the number of digits and whether it overflowed.
fn parse_integer(s: &[u8], base: u32) -> (u64, usize, bool) {
    let mut res = 0u64;
    let mut n = 0usize;
    let mut overflow = false;
    for &c in s {
        let val = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'a'..=b'f' => u32::from(c - b'a') + 10,
            b'A'..=b'F' => u32::from(c - b'A') + 10,
            _ => break,
        };
        if val >= base {
            break;
        }
        match res
            .checked_mul(u64::from(base))
            .and_then(|r| r.checked_add(u64::from(val)))
        {
            Some(r) => res = r,
            None => {
                overflow = true;
                res = res
                    .wrapping_mul(u64::from(base))
                    .wrapping_add(u64::from(val));
            }
        }
        n += 1;
    }
    (res, n, overflow)
}

/// `simple_strtoull(s, &end, 0)`: returns the wrapped value and the number
/// of bytes consumed.
fn simple_strtoull(s: &[u8]) -> (u64, usize) {
    let (base, prefix) = fixup_radix(s);
    let (v, n, _) = parse_integer(s.get(prefix..).unwrap_or(&[]), base);
    (v, prefix + n)
}

/// `simple_strtol(s, &end, 0)` on a 64-bit kernel: returns the value and the
/// number of bytes consumed. A leading `-` is always consumed.
fn simple_strtol(s: &[u8]) -> (i64, usize) {
    match s.split_first() {
        Some((b'-', rest)) => {
            let (v, n) = simple_strtoull(rest);
            (v.wrapping_neg() as i64, n + 1)
        }
        _ => {
            let (v, n) = simple_strtoull(s);
            (v as i64, n)
        }
    }
}

/// `match_int` on an argument that matched `%d`.
fn match_int(arg: &[u8]) -> Result<i32, ParamError> {
    if arg.len() >= NUMBER_BUF_LEN {
        return Err(ParamError::Range);
    }
    let (val, n) = simple_strtol(arg);
    if n == 0 {
        return Err(ParamError::Inval);
    }
    i32::try_from(val).map_err(|_| ParamError::Range)
}

/// `match_u64` (`kstrtoull(s, 0)`) on an argument that matched `%s`.
fn match_u64(arg: &[u8]) -> Result<u64, ParamError> {
    if arg.len() >= NUMBER_BUF_LEN {
        return Err(ParamError::Range);
    }
    let s = match arg.split_first() {
        Some((b'+', rest)) => rest,
        _ => arg,
    };
    let (base, prefix) = fixup_radix(s);
    let s = s.get(prefix..).unwrap_or(&[]);
    let (v, n, overflow) = parse_integer(s, base);
    if overflow {
        return Err(ParamError::Range);
    }
    if n == 0 {
        return Err(ParamError::Inval);
    }
    let mut rest = s.get(n..).unwrap_or(&[]);
    if let Some((b'\n', r)) = rest.split_first() {
        rest = r;
    }
    if !rest.is_empty() {
        return Err(ParamError::Inval);
    }
    Ok(v)
}

/// The options of the `control` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    DevConfig,
    DevSize,
    HwBlockSize,
    HwMaxSectors,
    NlReplySupported,
    MaxDataAreaMb,
    DataPagesPerBlk,
    CmdRingSizeMb,
}

/// Kind of the single argument of a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    /// `%s`: the (non-empty) rest of the token.
    Str,
    /// `%d`: a number as accepted by `simple_strtol`, ending the token.
    Int,
}

/// The `tokens` match table of C, in order.
const TOKENS: [(Opt, &[u8], Arg); 8] = [
    (Opt::DevConfig, b"dev_config=", Arg::Str),
    (Opt::DevSize, b"dev_size=", Arg::Str),
    (Opt::HwBlockSize, b"hw_block_size=", Arg::Int),
    (Opt::HwMaxSectors, b"hw_max_sectors=", Arg::Int),
    (Opt::NlReplySupported, b"nl_reply_supported=", Arg::Int),
    (Opt::MaxDataAreaMb, b"max_data_area_mb=", Arg::Int),
    (Opt::DataPagesPerBlk, b"data_pages_per_blk=", Arg::Int),
    (Opt::CmdRingSizeMb, b"cmd_ring_size_mb=", Arg::Int),
];

/// `match_token`: returns the option and its argument, or `None` for
/// `Opt_err`.
fn match_token(token: &[u8]) -> Option<(Opt, &[u8])> {
    for (opt, prefix, arg) in TOKENS {
        let rest = match token.strip_prefix(prefix) {
            Some(rest) => rest,
            None => continue,
        };
        let matched = match arg {
            Arg::Str => !rest.is_empty(),
            Arg::Int => {
                let (_, n) = simple_strtol(rest);
                n != 0 && n == rest.len()
            }
        };
        if matched {
            return Some((opt, rest));
        }
    }
    None
}

/// `tcmu_set_dev_attrib`: a positive `int`.
fn positive_int(arg: &[u8]) -> Result<u32, ParamError> {
    let val = match_int(arg)?;
    if val <= 0 {
        return Err(ParamError::Inval);
    }
    u32::try_from(val).map_err(|_| ParamError::Inval)
}

/// Applies one matched option.
fn apply(
    p: &mut Params,
    opt: Opt,
    arg: &[u8],
    enabled: bool,
    limits: &Limits,
) -> Result<(), ParamError> {
    match opt {
        Opt::DevConfig => p.set_dev_config(arg),
        Opt::DevSize => p.dev_size = match_u64(arg)?,
        Opt::HwBlockSize => p.hw_block_size = positive_int(arg)?,
        Opt::HwMaxSectors => p.hw_max_sectors = positive_int(arg)?,
        Opt::NlReplySupported => p.nl_reply_supported = match_int(arg)?,
        Opt::MaxDataAreaMb => {
            // tcmu_set_max_blocks_param
            let mut val = positive_int(arg)?;
            let global_mb = limits.global_max_mb();
            if val > global_mb {
                val = global_mb;
            }
            let pages = limits.mbs_to_pages(val);
            if pages < u64::from(p.data_pages_per_blk) {
                return Err(ParamError::Inval);
            }
            if enabled {
                return Err(ParamError::Inval);
            }
            let max_blocks = pages
                .checked_div(u64::from(p.data_pages_per_blk))
                .and_then(|b| u32::try_from(b).ok())
                .ok_or(ParamError::Inval)?;
            p.data_area_mb = val;
            p.max_blocks = max_blocks;
        }
        Opt::DataPagesPerBlk => {
            // tcmu_set_data_pages_per_blk
            let val = match_int(arg)?;
            let pages = limits.mbs_to_pages(p.data_area_mb);
            // A negative value is huge as size_t in C: EINVAL as well.
            let val = u32::try_from(val).map_err(|_| ParamError::Inval)?;
            if u64::from(val) > pages {
                return Err(ParamError::Inval);
            }
            // Deviation: C divides by zero / lets data_blk_size wrap.
            let blk_bytes = shl_checked(u64::from(val), limits.page_shift);
            if val == 0 || blk_bytes.map_or(true, |b| b > u64::from(u32::MAX)) {
                return Err(ParamError::Inval);
            }
            if enabled {
                return Err(ParamError::Inval);
            }
            let max_blocks =
                u32::try_from(pages / u64::from(val)).map_err(|_| ParamError::Inval)?;
            p.data_pages_per_blk = val;
            p.max_blocks = max_blocks;
        }
        Opt::CmdRingSizeMb => {
            // tcmu_set_cmd_ring_size
            let val = positive_int(arg)?;
            if enabled {
                return Err(ParamError::Inval);
            }
            p.cmdr_size = if val > (MB_CMDR_SIZE_DEF >> 20) {
                CMDR_SIZE_DEF
            } else {
                (val << 20) - CMDR_OFF
            };
        }
    }
    Ok(())
}

/// Parses a write to the `control` attribute and applies it to `p`, like
/// C's `tcmu_set_configfs_dev_params` (see the module documentation).
///
/// `enabled` is whether the device has been enabled (C: `data_bitmap`
/// allocated); then `max_data_area_mb`, `data_pages_per_blk` and
/// `cmd_ring_size_mb` fail with EINVAL. Processing stops at the first
/// error; options before it stay applied. On success the caller returns
/// the full input length.
pub fn set_params(
    p: &mut Params,
    input: &[u8],
    enabled: bool,
    limits: &Limits,
) -> Result<(), ParamError> {
    for token in until_nul(input).split(|&b| b == b',' || b == b'\n') {
        if token.is_empty() {
            continue;
        }
        if let Some((opt, arg)) = match_token(token) {
            apply(p, opt, arg, enabled, limits)?;
        }
    }
    Ok(())
}

/// Output that takes bytes as they are, as C's `%s` writes them: the
/// `dev_config` string is the handler's, in any encoding.
pub trait WriteBytes: fmt::Write {
    /// Appends `bytes` unchanged.
    fn write_bytes(&mut self, bytes: &[u8]) -> fmt::Result;
}

/// A [`WriteBytes`] over a writer of UTF-8 only (a `String`, say): invalid
/// UTF-8 is written as U+FFFD.
pub struct Lossy<'a, W: ?Sized>(pub &'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Lossy<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

impl<W: fmt::Write + ?Sized> WriteBytes for Lossy<'_, W> {
    fn write_bytes(&mut self, mut bytes: &[u8]) -> fmt::Result {
        // (`<[u8]>::utf8_chunks` is newer than the kernel's minimum Rust.)
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => return self.0.write_str(s),
                Err(e) => {
                    let n = e.valid_up_to();
                    let valid = bytes.get(..n).unwrap_or_default();
                    self.0
                        .write_str(core::str::from_utf8(valid).map_err(|_| fmt::Error)?)?;
                    self.0.write_char(char::REPLACEMENT_CHARACTER)?;
                    // `None`: the input ends in the middle of a sequence.
                    let Some(bad) = e.error_len() else {
                        return Ok(());
                    };
                    bytes = bytes.get(n + bad..).unwrap_or_default();
                }
            }
        }
    }
}

/// Writes the `info` text of C's `tcmu_show_configfs_dev_params`:
/// `Config: %s Size: %llu MaxDataAreaMB: %u DataPagesPerBlk: %u
/// CmdRingSizeMB: %u\n`, with `NULL` for an empty config; the config bytes
/// as they are, as C.
pub fn format_info<W: WriteBytes + ?Sized>(p: &Params, w: &mut W) -> fmt::Result {
    w.write_str("Config: ")?;
    if p.dev_config().is_empty() {
        w.write_str("NULL")?;
    } else {
        w.write_bytes(p.dev_config())?;
    }
    writeln!(
        w,
        " Size: {} MaxDataAreaMB: {} DataPagesPerBlk: {} CmdRingSizeMB: {}",
        p.dev_size,
        p.data_area_mb,
        p.data_pages_per_blk,
        p.cmd_ring_size_mb()
    )
}

/// The last LBA of the device, as C's `tcmu_get_blocks` computes it:
/// `(dev_size - block_size) / block_size` in 64-bit unsigned arithmetic.
///
/// Like C, a `dev_size` smaller than `block_size` (in particular 0, a size
/// never set) wraps around and gives a huge value, which is what an
/// initiator sees in READ CAPACITY; the handler then fails out-of-range
/// I/O. This is kept for compatibility; [`last_lba_checked`] is the strict
/// variant. Returns 0 for a `block_size` of 0 (C would divide by zero; the
/// target core never uses 0).
pub fn last_lba(dev_size: u64, block_size: u32) -> u64 {
    dev_size
        .wrapping_sub(u64::from(block_size))
        .checked_div(u64::from(block_size))
        .unwrap_or(0)
}

/// Like [`last_lba`] but `None` when `dev_size < block_size` or
/// `block_size == 0`.
pub fn last_lba_checked(dev_size: u64, block_size: u32) -> Option<u64> {
    dev_size
        .checked_sub(u64::from(block_size))?
        .checked_div(u64::from(block_size))
}
