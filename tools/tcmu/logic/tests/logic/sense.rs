// SPDX-License-Identifier: GPL-2.0

//! Sanitizing handler sense data, checked against a model of the kernel's
//! sense parsers.

use proptest::prelude::*;
use tcmu_logic::sense::*;

type Sense = [u8; SENSE_LEN];

/// A model of the 6.12 kernel's sense parsers, transcribed from
/// drivers/scsi/scsi_common.c and scsi_error.c. Every read the C code does
/// goes through [`rd`], which reports one outside the 96-byte
/// `scsi_sense_cache` object (KASAN's slab-out-of-bounds) instead of
/// reading it.
mod kernel {
    /// A byte read outside the sense buffer, at this offset.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Oob(pub usize);

    fn rd(sb: &[u8], i: usize) -> Result<u8, Oob> {
        sb.get(i).copied().ok_or(Oob(i))
    }

    /// `scsi_sense_desc_find()`: offset of the first descriptor of
    /// `desc_type`.
    pub fn desc_find(sb: &[u8], sb_len: i32, desc_type: i32) -> Result<Option<usize>, Oob> {
        if sb_len < 8 {
            return Ok(None);
        }
        let mut add_sen_len = i32::from(rd(sb, 7)?);
        if add_sen_len == 0 {
            return Ok(None);
        }
        let b0 = rd(sb, 0)?;
        if !(0x72..=0x73).contains(&b0) {
            return Ok(None);
        }
        add_sen_len = add_sen_len.min(sb_len - 8);
        let mut descp = 8usize;
        let (mut desc_len, mut k) = (0i32, 0i32);
        while k < add_sen_len {
            descp += desc_len as usize;
            let add_len = if k < add_sen_len - 1 {
                i32::from(rd(sb, descp + 1)?)
            } else {
                -1
            };
            desc_len = add_len + 2;
            if i32::from(rd(sb, descp)?) == desc_type {
                return Ok(Some(descp));
            }
            if add_len < 0 {
                break;
            }
            k += desc_len;
        }
        Ok(None)
    }

    fn be(sb: &[u8], at: usize, n: usize) -> Result<u64, Oob> {
        (at..at + n).try_fold(0u64, |v, i| Ok(v << 8 | u64::from(rd(sb, i)?)))
    }

    /// `scsi_get_sense_info_fld()`.
    pub fn get_info_fld(sb: &[u8], sb_len: i32) -> Result<Option<u64>, Oob> {
        if sb_len < 7 {
            return Ok(None);
        }
        match rd(sb, 0)? & 0x7f {
            0x70 | 0x71 if rd(sb, 0)? & 0x80 != 0 => Ok(Some(be(sb, 3, 4)?)),
            0x72 | 0x73 => match desc_find(sb, sb_len, 0)? {
                Some(u) if rd(sb, u + 1)? == 0xa => Ok(Some(be(sb, u + 4, 8)?)),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// `scsi_normalize_sense()`: response code, key, ASC, ASCQ, additional
    /// length.
    pub fn normalize(sb: &[u8], mut sb_len: i32) -> Result<Option<[u8; 5]>, Oob> {
        if sb_len == 0 {
            return Ok(None);
        }
        let mut h = [rd(sb, 0)? & 0x7f, 0, 0, 0, 0];
        if h[0] & 0x70 != 0x70 {
            return Ok(None);
        }
        if h[0] >= 0x72 {
            for (f, i) in [(1, 1), (2, 2), (3, 3), (4, 7)] {
                if sb_len > i as i32 {
                    h[f] = rd(sb, i)?;
                }
            }
            h[1] &= 0xf;
        } else {
            if sb_len > 2 {
                h[1] = rd(sb, 2)? & 0xf;
            }
            if sb_len > 7 {
                sb_len = sb_len.min(i32::from(rd(sb, 7)?) + 8);
                if sb_len > 12 {
                    h[2] = rd(sb, 12)?;
                }
                if sb_len > 13 {
                    h[3] = rd(sb, 13)?;
                }
            }
        }
        Ok(Some(h))
    }

    /// What sd, st, usb-storage and the setters of scsi_common.c do with
    /// sense: `normalize`, `get_info_fld`, `desc_find` of every type with
    /// the buffer size and with `8 + byte 7` (the setters' `sb_len`), and
    /// the callers' accesses at fixed offsets of a descriptor found:
    /// `ucp[3]` of type 4 (st, usb-storage), `ucp[0..12]` of type 0
    /// (`scsi_set_sense_information`), `ucp[0..7]` of type 2
    /// (`scsi_set_sense_field_pointer`).
    pub fn consume(sb: &[u8]) -> Result<(), Oob> {
        let n = sb.len() as i32;
        normalize(sb, n)?;
        get_info_fld(sb, n)?;
        for sb_len in [n, 8 + i32::from(rd(sb, 7)?)] {
            for t in 0..=255 {
                desc_find(sb, sb_len, t)?;
            }
        }
        if let Some(u) = desc_find(sb, n, 4)? {
            rd(sb, u + 3)?;
        }
        let setter_len = 8 + i32::from(rd(sb, 7)?);
        for (t, last) in [(0, 11), (2, 6)] {
            if let Some(u) = desc_find(sb, setter_len, t)? {
                rd(sb, u + last)?;
            }
        }
        Ok(())
    }
}

/// Descriptor types with a fixed layout and their ADDITIONAL LENGTH in
/// SPC-4 (4.5.2.x) and SAT (ATA status return).
const LAYOUTS: [(u8, u8); 7] = [
    (0x00, 0x0a),
    (0x01, 0x0a),
    (0x02, 0x06),
    (0x03, 0x02),
    (0x04, 0x02),
    (0x05, 0x02),
    (0x09, 0x0c),
];

fn spc_min_add_len(t: u8) -> u8 {
    LAYOUTS.iter().find(|l| l.0 == t).map_or(0, |l| l.1)
}

#[test]
fn layouts_match_spc() {
    for t in 0..=255u8 {
        assert_eq!(min_add_len(t), spc_min_add_len(t), "{t:#x}");
    }
}

/// Descriptor-format sense with these descriptors, additional length their
/// total (which may exceed 88: the caller knows).
fn desc_sense(key: u8, descs: &[&[u8]]) -> Sense {
    let mut s = [0u8; SENSE_LEN];
    s[0] = 0x72;
    s[1] = key;
    s[2] = 0x11;
    s[3] = 0x04;
    let mut at = 8;
    for d in descs {
        for &b in *d {
            if at < SENSE_LEN {
                s[at] = b;
            }
            at += 1;
        }
    }
    s[7] = (at - 8).min(255) as u8;
    s
}

/// A descriptor of type `ty` with `add_len` bytes of `fill` after the header.
fn desc(ty: u8, add_len: u8, fill: u8) -> Vec<u8> {
    let mut d = vec![fill; 2 + usize::from(add_len)];
    d[0] = ty;
    d[1] = add_len;
    d
}

/// The fuzzer's reproducer: a vendor descriptor of 87 bytes puts the next
/// header at byte 95, of type 0 (information).
fn header_at(start: usize, add_len: u8) -> Sense {
    let mut s = desc_sense(3, &[&desc(0x80, (start - 10) as u8, 0xee)]);
    s[7] = MAX_ADDITIONAL_LEN;
    s[start] = 0x00;
    if start + 1 < SENSE_LEN {
        s[start + 1] = add_len;
    }
    s
}

fn sanitized(mut s: Sense) -> (Sanitized, Sense) {
    let r = sanitize(&mut s);
    (r, s)
}

#[test]
fn model_sees_the_kasan_report() {
    let s = header_at(95, 0);
    assert_eq!(kernel::desc_find(&s, 96, 0), Ok(Some(95)));
    assert_eq!(kernel::get_info_fld(&s, 96), Err(kernel::Oob(96)));
    assert_eq!(kernel::consume(&s), Err(kernel::Oob(96)));
    // Header at 94 claiming a full information descriptor: reads 98..106.
    let s = header_at(94, 0x0a);
    assert_eq!(kernel::get_info_fld(&s, 96), Err(kernel::Oob(98)));
    for s in [header_at(95, 0), header_at(94, 0x0a)] {
        let (r, out) = sanitized(s);
        assert_eq!(r, Sanitized::Repaired);
        assert_eq!(kernel::consume(&out), Ok(()));
        assert_eq!(kernel::get_info_fld(&out, 96), Ok(None));
        // The vendor descriptor before it is kept.
        assert_eq!(usize::from(out[7]), s[9] as usize + 2);
        assert_eq!(out[8..out[7] as usize + 8], s[8..out[7] as usize + 8]);
        assert!(out[8 + out[7] as usize..].iter().all(|&b| b == 0));
    }
}

#[test]
fn well_formed_fixed_is_unchanged() {
    // tcmu-runner: MEDIUM ERROR, UNRECOVERED READ ERROR, information valid.
    let mut s = [0u8; SENSE_LEN];
    s[0] = 0xf0;
    s[2] = 0x03;
    s[3..7].copy_from_slice(&1234u32.to_be_bytes());
    s[7] = 0x0a;
    s[12] = 0x11;
    for len in [0, 0x0a, 40, 88] {
        s[7] = len;
        s[90] = 0x5a; // bytes after the additional length are left alone
        assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
    }
}

#[test]
fn fixed_additional_length_clamped() {
    for len in [89, 100, 255] {
        let mut s = [0x33u8; SENSE_LEN];
        s[0] = 0x71;
        s[7] = len;
        let (r, out) = sanitized(s);
        assert_eq!(r, Sanitized::Repaired);
        let mut want = s;
        want[7] = 88;
        assert_eq!(out, want);
    }
}

#[test]
fn well_formed_descriptors_are_unchanged() {
    let info = [0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    let sks = [0x02, 0x06, 0, 0, 0x80, 0, 0x10, 0];
    let cases: [&[&[u8]]; 4] = [&[], &[&info], &[&info, &sks], &[&sks, &desc(0xc0, 60, 1)]];
    for descs in cases {
        let s = desc_sense(0x03, descs);
        assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
        assert_eq!(kernel::consume(&s), Ok(()));
    }
    let s = desc_sense(0x03, &[&info]);
    assert_eq!(kernel::get_info_fld(&s, 96), Ok(Some(0x1234)));
    // Exactly filling 88 bytes.
    let s = desc_sense(0x03, &[&info, &desc(0x80, 74, 7)]);
    assert_eq!(s[7], 88);
    assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
}

#[test]
fn descriptor_additional_length_clamped() {
    // Descriptors fill 88 bytes; byte 7 says 200.
    let mut s = desc_sense(0x05, &[&desc(0x80, 86, 9)]);
    s[7] = 200;
    let (r, out) = sanitized(s);
    assert_eq!(r, Sanitized::Repaired);
    let mut want = s;
    want[7] = 88;
    assert_eq!(out, want);
    // Byte 7 says 255, a descriptor crosses byte 96: dropped.
    let mut s = desc_sense(0x05, &[&desc(0x80, 20, 9), &desc(0x81, 100, 8)]);
    s[7] = 255;
    let (r, out) = sanitized(s);
    assert_eq!(r, Sanitized::Repaired);
    assert_eq!(out[7], 22);
    assert!(out[30..].iter().all(|&b| b == 0));
    assert_eq!(out[..7], s[..7]);
}

#[test]
fn descriptor_past_additional_length_dropped_with_the_rest() {
    // The second descriptor ends 1 byte past the additional length, inside
    // the buffer; the third is never reached.
    let mut s = desc_sense(
        0x05,
        &[&desc(0x80, 4, 9), &desc(0x00, 0x0a, 1), &desc(0x02, 6, 2)],
    );
    s[7] = 6 + 11;
    let (r, out) = sanitized(s);
    assert_eq!(r, Sanitized::Repaired);
    assert_eq!(out[7], 6);
    assert_eq!(out[8..14], s[8..14]);
    assert!(out[14..].iter().all(|&b| b == 0));
    // A lone header byte at the end of the additional length.
    let mut s = desc_sense(0x05, &[&desc(0x80, 4, 9), &[0x00]]);
    s[7] = 7;
    let (_, out) = sanitized(s);
    assert_eq!(out[7], 6);
    assert_eq!(out[14], 0);
}

#[test]
fn short_fixed_layout_descriptors_dropped_alone() {
    let info_short = desc(0x00, 2, 0xaa);
    let stream_short = desc(0x04, 1, 0xbb);
    let sks = desc(0x02, 6, 0xcc);
    let vendor = desc(0x80, 0, 0);
    let s = desc_sense(0x05, &[&info_short, &sks, &stream_short, &vendor]);
    let (r, out) = sanitized(s);
    assert_eq!(r, Sanitized::Repaired);
    let want = desc_sense(0x05, &[&sks, &vendor]);
    assert_eq!(out, want);
    // Longer than the layout is kept.
    let s = desc_sense(0x05, &[&desc(0x00, 0x0c, 1), &desc(0x04, 4, 2)]);
    assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
    for t in 0..=255u8 {
        let min = spc_min_add_len(t);
        if min > 0 {
            let s = desc_sense(0x05, &[&desc(t, min - 1, 3)]);
            assert_eq!(sanitized(s).1, desc_sense(0x05, &[]), "type {t:#x}");
        }
    }
}

#[test]
fn unknown_response_codes_replaced() {
    let want = replacement();
    assert_eq!(
        want[..14],
        [0x70, 0, 4, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x44, 0]
    );
    assert_eq!(
        kernel::normalize(&want, 96),
        Ok(Some([0x70, 4, 0x44, 0, 0]))
    );
    for b0 in (0..=255u8).filter(|b| !(0x70..=0x73).contains(&(b & 0x7f))) {
        let mut s = [0x72u8; SENSE_LEN];
        s[0] = b0;
        assert_eq!(sanitized(s), (Sanitized::Replaced, want), "{b0:#x}");
    }
    assert_eq!(sanitized([0; SENSE_LEN]), (Sanitized::Replaced, want));
    // Bit 7 is VALID in fixed format, reserved in descriptor format: kept.
    for b0 in [0xf0, 0xf1, 0xf2, 0xf3] {
        let mut s = desc_sense(0x05, &[]);
        s[0] = b0;
        assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
    }
}

/// Every header position and length, as the kernel's KUnit test does.
#[test]
fn every_end_offset() {
    for start in (8..SENSE_LEN).filter(|&s| s != 9) {
        for add_len in 0..=255u8 {
            let s = if start == 8 {
                let mut s = desc_sense(0x05, &[]);
                s[7] = MAX_ADDITIONAL_LEN;
                s[8] = 0;
                s[9] = add_len;
                s
            } else {
                header_at(start, add_len)
            };
            let (r, out) = sanitized(s);
            assert_eq!(kernel::consume(&out), Ok(()), "{start} {add_len}");
            let fits = start + 2 + usize::from(add_len) <= SENSE_LEN;
            let info = fits && add_len >= 0x0a;
            assert!(r != Sanitized::Replaced);
            assert!(fits || r == Sanitized::Repaired, "{start} {add_len}");
            assert_eq!(kernel::desc_find(&out, 96, 0), Ok(info.then_some(start)));
        }
    }
}

/// Well-formed sense: fixed with any additional length up to 88, or
/// descriptors of valid lengths within 88 bytes; any bytes after.
fn well_formed() -> impl Strategy<Value = Sense> {
    let descs = proptest::collection::vec(
        (any::<u8>(), 0u8..40, any::<u8>()).prop_map(|(t, extra, fill)| {
            let len = spc_min_add_len(t).saturating_add(extra);
            desc(t, len, fill)
        }),
        0..8,
    );
    let fixed = (
        prop_oneof![Just(0x70u8), Just(0x71), Just(0xf0), Just(0xf1)],
        0..=MAX_ADDITIONAL_LEN,
    );
    (
        any::<bool>(),
        fixed,
        0x72u8..=0x73,
        descs,
        proptest::collection::vec(any::<u8>(), SENSE_LEN),
    )
        .prop_map(|(is_fixed, (f0, flen), d0, descs, noise)| {
            let mut s: Sense = noise.try_into().unwrap();
            if is_fixed {
                s[0] = f0;
                s[7] = flen;
                return s;
            }
            let mut at = 8;
            for d in descs.iter().filter(|d| d.len() <= SENSE_LEN - 8) {
                if at + d.len() > SENSE_LEN {
                    break;
                }
                s[at..at + d.len()].copy_from_slice(d);
                at += d.len();
            }
            s[0] = d0;
            s[7] = (at - 8) as u8;
            s
        })
}

/// Hostile sense: random bytes with a likely response code, additional
/// length and descriptor headers near the end.
fn hostile() -> impl Strategy<Value = Sense> {
    (
        proptest::collection::vec(any::<u8>(), SENSE_LEN),
        prop_oneof![Just(0x72u8), Just(0x73), Just(0x70), any::<u8>()],
        prop_oneof![Just(88u8), Just(87), Just(86), Just(255), any::<u8>()],
        proptest::collection::vec((8usize..SENSE_LEN, any::<u8>()), 0..6),
    )
        .prop_map(|(noise, b0, b7, pokes)| {
            let mut s: Sense = noise.try_into().unwrap();
            s[0] = b0;
            s[7] = b7;
            for (at, v) in pokes {
                s[at] = v;
            }
            s
        })
}

/// Descriptor chains of the fixed-layout types and others, with lengths
/// around the layouts' and an additional length around their total.
fn chains() -> impl Strategy<Value = Sense> {
    let ty = prop_oneof![(0u8..=5), Just(9u8), Just(0x80), any::<u8>()];
    let one = (ty, -2i16..=2, any::<u8>(), any::<bool>()).prop_map(|(t, delta, fill, wild)| {
        let len = if wild {
            fill
        } else {
            (i16::from(spc_min_add_len(t)) + delta).clamp(0, 255) as u8
        };
        desc(t, len, fill)
    });
    (
        proptest::collection::vec(one, 0..10),
        0x72u8..=0x73,
        -20i16..=20,
        any::<bool>(),
    )
        .prop_map(|(descs, b0, delta, exact)| {
            let refs: Vec<&[u8]> = descs.iter().map(|d| &d[..]).collect();
            let mut s = desc_sense(0x04, &refs);
            s[0] = b0;
            if !exact {
                s[7] = (i16::from(s[7]) + delta).clamp(0, 255) as u8;
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// (1) Whatever the handler wrote, the kernel's parsers stay inside the
    /// buffer, and only complete, long-enough descriptors are found.
    #[test]
    fn output_is_safe_for_the_kernel(s in prop_oneof![hostile(), chains(), any::<Sense>()]) {
        let (r, out) = sanitized(s);
        prop_assert_eq!(kernel::consume(&out), Ok(()));
        prop_assert!(usize::from(out[7]) + 8 <= SENSE_LEN);
        prop_assert_eq!(r == Sanitized::Unchanged, out == s);
        if r == Sanitized::Repaired {
            prop_assert_eq!(&out[..7], &s[..7]);
        }
        for t in 0..=255u8 {
            if let Ok(Some(u)) = kernel::desc_find(&out, 96, i32::from(t)) {
                let add_len = out[u + 1];
                prop_assert!(u + 2 + usize::from(add_len) <= 8 + usize::from(out[7]));
                prop_assert!(add_len >= spc_min_add_len(t));
            }
        }
    }

    /// (2) Well-formed sense comes out byte for byte.
    #[test]
    fn well_formed_is_unchanged(s in well_formed()) {
        prop_assert_eq!(sanitized(s), (Sanitized::Unchanged, s));
    }

    /// (3) Sanitizing twice changes nothing more.
    #[test]
    fn idempotent(s in prop_oneof![hostile(), chains(), any::<Sense>(), well_formed()]) {
        let (_, once) = sanitized(s);
        prop_assert_eq!(sanitized(once), (Sanitized::Unchanged, once));
    }
}
