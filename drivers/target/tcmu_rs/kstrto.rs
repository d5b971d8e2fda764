// SPDX-License-Identifier: GPL-2.0

//! Parsing of numbers written to configfs attributes, as the kernel's `kstrtou32()` family:
//! optional sign (`+`, and `-` for signed types), base 0 (`0x` hexadecimal, leading `0` octal,
//! else decimal), one optional trailing newline, nothing else. Pure `core` code, host-tested.
#![allow(dead_code, unreachable_pub)]

/// Why a number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KstrtoError {
    /// Not a number (`EINVAL`).
    Invalid,
    /// Out of range of the type (`ERANGE`).
    Range,
}

impl KstrtoError {
    /// The negative errno the kernel returns.
    pub const fn to_errno(self) -> i32 {
        match self {
            KstrtoError::Invalid => -22,
            KstrtoError::Range => -34,
        }
    }
}

/// Strips one trailing newline and returns the digits with their base.
fn split(s: &[u8]) -> Result<(&[u8], u32), KstrtoError> {
    let s = match s.split_last() {
        Some((b'\n', rest)) => rest,
        _ => s,
    };
    let (digits, base) = if let Some(rest) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X"))
    {
        (rest, 16)
    } else if s.len() > 1 && s.first() == Some(&b'0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return Err(KstrtoError::Invalid);
    }
    Ok((digits, base))
}

/// `kstrtoull(s, 0, &v)`.
pub fn kstrtoull(s: &[u8]) -> Result<u64, KstrtoError> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    let (digits, base) = split(s)?;
    digits_value(digits, base)
}

/// `kstrtoint(s, 10, &v)`: decimal only (`010` is ten, `0x10` is invalid).
pub fn kstrtoint_dec(s: &[u8]) -> Result<i32, KstrtoError> {
    let s = match s.split_last() {
        Some((b'\n', rest)) => rest,
        _ => s,
    };
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(KstrtoError::Invalid);
    }
    let v = digits_value(digits, 10)?;
    if neg {
        if v > 1 << 31 {
            return Err(KstrtoError::Range);
        }
        Ok((v as i64).wrapping_neg() as i32)
    } else {
        i32::try_from(v).map_err(|_| KstrtoError::Range)
    }
}

fn digits_value(digits: &[u8], base: u32) -> Result<u64, KstrtoError> {
    let mut v: u64 = 0;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'a'..=b'f' => u32::from(c - b'a') + 10,
            b'A'..=b'F' => u32::from(c - b'A') + 10,
            _ => return Err(KstrtoError::Invalid),
        };
        if d >= base {
            return Err(KstrtoError::Invalid);
        }
        v = v
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(KstrtoError::Range)?;
    }
    Ok(v)
}

/// `kstrtoll(s, 0, &v)`.
pub fn kstrtoll(s: &[u8]) -> Result<i64, KstrtoError> {
    if let Some(rest) = s.strip_prefix(b"-") {
        let v = kstrtoull(rest)?;
        if v > (i64::MAX as u64) + 1 {
            return Err(KstrtoError::Range);
        }
        Ok((v as i64).wrapping_neg())
    } else {
        let v = kstrtoull(s)?;
        i64::try_from(v).map_err(|_| KstrtoError::Range)
    }
}

/// `kstrtou32(s, 0, &v)`.
pub fn kstrtou32(s: &[u8]) -> Result<u32, KstrtoError> {
    u32::try_from(kstrtoull(s)?).map_err(|_| KstrtoError::Range)
}

/// `kstrtou16(s, 0, &v)`.
pub fn kstrtou16(s: &[u8]) -> Result<u16, KstrtoError> {
    u16::try_from(kstrtoull(s)?).map_err(|_| KstrtoError::Range)
}

/// `kstrtou8(s, 0, &v)`.
pub fn kstrtou8(s: &[u8]) -> Result<u8, KstrtoError> {
    u8::try_from(kstrtoull(s)?).map_err(|_| KstrtoError::Range)
}

/// `kstrtos32(s, 0, &v)`.
pub fn kstrtos32(s: &[u8]) -> Result<i32, KstrtoError> {
    i32::try_from(kstrtoll(s)?).map_err(|_| KstrtoError::Range)
}

/// `kstrtobool(s, &v)`: `1yYtT` / `0nNfF`, and `on`/`off`.
pub fn kstrtobool(s: &[u8]) -> Result<bool, KstrtoError> {
    match s {
        [b'1' | b'y' | b'Y' | b't' | b'T', ..] => Ok(true),
        [b'0' | b'n' | b'N' | b'f' | b'F', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(KstrtoError::Invalid),
    }
}
