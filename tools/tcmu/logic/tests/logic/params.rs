// SPDX-License-Identifier: GPL-2.0

//! Parsing of the `control` attribute and the `info` text.

use tcmu_logic::params::*;

const L: Limits = Limits {
    page_shift: 12,
    global_max_pages: TCMU_GLOBAL_MAX_PAGES_DEF,
};

fn parse(input: &str, enabled: bool) -> (Result<(), ParamError>, Params) {
    let mut p = Params::new(&L);
    let r = set_params(&mut p, input.as_bytes(), enabled, &L);
    (r, p)
}

fn info(p: &Params) -> String {
    let mut s = String::new();
    format_info(p, &mut Lossy(&mut s)).unwrap();
    s
}

#[test]
fn defaults() {
    let p = Params::new(&L);
    assert_eq!(p.data_area_mb, 1024);
    assert_eq!(p.data_pages_per_blk, 1);
    assert_eq!(p.max_blocks, 262_144);
    assert_eq!(p.cmdr_size, 8 * 1024 * 1024 - 128);
    assert_eq!(
        (
            p.dev_size,
            p.hw_block_size,
            p.hw_max_sectors,
            p.nl_reply_supported
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(p.dev_config(), b"");
    assert_eq!(p.data_blk_size(&L), Some(4096));
    assert_eq!(L.global_max_mb(), 2048);
    assert_eq!(
        info(&p),
        "Config: NULL Size: 0 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n"
    );
    // 64 KiB pages.
    let l64 = Limits {
        page_shift: 16,
        global_max_pages: TCMU_GLOBAL_MAX_PAGES_DEF,
    };
    assert_eq!(Params::new(&l64).data_area_mb, 16384);
}

#[test]
fn typical() {
    let (r, p) = parse("dev_config=rbd/pool/img,dev_size=1073741824\n", false);
    assert_eq!(r, Ok(()));
    assert_eq!(p.dev_config(), b"rbd/pool/img");
    assert_eq!(p.dev_size, 1 << 30);
    assert_eq!(
        info(&p),
        "Config: rbd/pool/img Size: 1073741824 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n"
    );
}

/// (input, expected result, field getter, expected value)
type Case = (
    &'static str,
    Result<(), ParamError>,
    fn(&Params) -> i128,
    i128,
);

const INVAL: Result<(), ParamError> = Err(ParamError::Inval);
const RANGE: Result<(), ParamError> = Err(ParamError::Range);
const OK: Result<(), ParamError> = Ok(());

fn size(p: &Params) -> i128 {
    p.dev_size as i128
}
fn hwbs(p: &Params) -> i128 {
    p.hw_block_size as i128
}
fn hwms(p: &Params) -> i128 {
    p.hw_max_sectors as i128
}
fn nl(p: &Params) -> i128 {
    p.nl_reply_supported as i128
}
fn mb(p: &Params) -> i128 {
    p.data_area_mb as i128
}
fn blocks(p: &Params) -> i128 {
    p.max_blocks as i128
}
fn ppb(p: &Params) -> i128 {
    p.data_pages_per_blk as i128
}
fn ring(p: &Params) -> i128 {
    p.cmdr_size as i128
}

#[test]
fn table() {
    let cases: &[Case] = &[
        // dev_size: match_u64 = kstrtoull(base 0), errors stop parsing.
        ("dev_size=0x10", OK, size, 16),
        ("dev_size=0X1f", OK, size, 31),
        ("dev_size=010", OK, size, 8),
        ("dev_size=0", OK, size, 0),
        ("dev_size=+5", OK, size, 5),
        ("dev_size=-1", INVAL, size, 0),
        ("dev_size=abc", INVAL, size, 0),
        ("dev_size=0x", INVAL, size, 0),
        ("dev_size=08", INVAL, size, 0),
        ("dev_size=12 ", INVAL, size, 0),
        ("dev_size= 12", INVAL, size, 0),
        ("dev_size=+", INVAL, size, 0),
        ("dev_size=", OK, size, 0), // %s needs a value: no match, ignored
        ("dev_size=18446744073709551615", OK, size, u64::MAX as i128),
        ("dev_size=0xffffffffffffffff", OK, size, u64::MAX as i128),
        ("dev_size=18446744073709551616", RANGE, size, 0),
        ("dev_size=99999999999999999999x", RANGE, size, 0), // overflow before trailing check
        ("dev_size=000000000000000000000001", RANGE, size, 0), // 24 chars
        ("dev_size=00000000000000000000001", OK, size, 1),  // 23 chars
        // %d patterns: anything simple_strtol does not fully consume is
        // not a match and is silently ignored.
        ("hw_block_size=4096", OK, hwbs, 4096),
        ("hw_block_size=0x200", OK, hwbs, 512),
        ("hw_block_size=01000", OK, hwbs, 512),
        ("hw_block_size=0", INVAL, hwbs, 0),
        ("hw_block_size=-1", INVAL, hwbs, 0),
        ("hw_block_size=-", INVAL, hwbs, 0), // "-" parses as 0
        ("hw_block_size=abc", OK, hwbs, 0),
        ("hw_block_size=12k", OK, hwbs, 0),
        ("hw_block_size=", OK, hwbs, 0),
        ("hw_block_size= 1", OK, hwbs, 0),
        ("hw_block_size=+1", OK, hwbs, 0),
        ("hw_block_size=0x", OK, hwbs, 0),
        ("hw_block_size=08", OK, hwbs, 0),
        ("hw_block_size=--1", OK, hwbs, 0),
        ("hw_block_size=2147483647", OK, hwbs, 2147483647),
        ("hw_block_size=2147483648", RANGE, hwbs, 0),
        ("hw_block_size=000000000000000000000512", RANGE, hwbs, 0), // 24 chars
        ("hw_block_size=00000000000000000000512", OK, hwbs, 0o512), // 23 chars, octal
        // Wraps modulo 2^64 in simple_strtol before the int range check.
        ("hw_block_size=18446744073709551617", OK, hwbs, 1),
        ("hw_block_size=18446744073709551616", INVAL, hwbs, 0),
        ("hw_block_size=99999999999999999999999", RANGE, hwbs, 0),
        ("hw_max_sectors=1024", OK, hwms, 1024),
        ("hw_max_sectors=0", INVAL, hwms, 0),
        ("nl_reply_supported=-1", OK, nl, -1),
        ("nl_reply_supported=-", OK, nl, 0),
        ("nl_reply_supported=-2147483648", OK, nl, -2147483648),
        ("nl_reply_supported=-2147483649", RANGE, nl, 0),
        ("nl_reply_supported=-18446744073709551615", OK, nl, 1),
        ("nl_reply_supported=0x7fffffff", OK, nl, 0x7fffffff),
        // max_data_area_mb
        ("max_data_area_mb=64", OK, blocks, 16384),
        ("max_data_area_mb=64", OK, mb, 64),
        ("max_data_area_mb=4096", OK, mb, 2048), // capped to the global limit
        ("max_data_area_mb=4096", OK, blocks, 524288),
        ("max_data_area_mb=0", INVAL, mb, 1024),
        ("max_data_area_mb=-5", INVAL, mb, 1024),
        ("data_pages_per_blk=512,max_data_area_mb=1", INVAL, mb, 1024),
        ("data_pages_per_blk=256,max_data_area_mb=1", OK, blocks, 1),
        // data_pages_per_blk
        ("data_pages_per_blk=4", OK, blocks, 65536),
        ("data_pages_per_blk=4", OK, ppb, 4),
        ("data_pages_per_blk=262144", OK, blocks, 1),
        ("data_pages_per_blk=262145", INVAL, ppb, 1),
        ("data_pages_per_blk=-1", INVAL, ppb, 1),
        ("data_pages_per_blk=0", INVAL, ppb, 1), // C divides by zero
        ("max_data_area_mb=16,data_pages_per_blk=8", OK, blocks, 512),
        // cmd_ring_size_mb
        ("cmd_ring_size_mb=2", OK, ring, 2 * 1024 * 1024 - 128),
        ("cmd_ring_size_mb=8", OK, ring, 8 * 1024 * 1024 - 128),
        ("cmd_ring_size_mb=9", OK, ring, 8 * 1024 * 1024 - 128),
        (
            "cmd_ring_size_mb=2147483647",
            OK,
            ring,
            8 * 1024 * 1024 - 128,
        ),
        (
            "cmd_ring_size_mb=1,cmd_ring_size_mb=0",
            INVAL,
            ring,
            1024 * 1024 - 128,
        ),
        // Stop at the first error; earlier tokens stay applied.
        ("dev_size=5,hw_block_size=0,dev_size=6", INVAL, size, 5),
        ("dev_size=5,hw_block_size=x,dev_size=6", OK, size, 6),
        // Splitting and unknown keys.
        ("foo=1,,\n\nDEV_SIZE=5, dev_size=6,dev_size", OK, size, 0),
        ("dev_size=5\n,\ndev_size=7\n", OK, size, 7),
        ("dev_size=5\0,dev_size=6", OK, size, 5),
        ("\0dev_size=5", OK, size, 0),
    ];
    for &(input, res, get, want) in cases {
        let (r, p) = parse(input, false);
        assert_eq!(r, res, "{input:?}");
        assert_eq!(get(&p), want, "{input:?}");
    }
}

#[test]
fn enabled_device() {
    for input in [
        "max_data_area_mb=64",
        "data_pages_per_blk=2",
        "cmd_ring_size_mb=2",
    ] {
        let (r, p) = parse(input, true);
        assert_eq!(r, INVAL, "{input}");
        assert_eq!(p, Params::new(&L));
    }
    // Validation errors come first but are EINVAL as well.
    assert_eq!(parse("max_data_area_mb=0", true).0, INVAL);
    // Everything else may still be set.
    let (r, p) = parse(
        "dev_config=x,dev_size=4096,hw_block_size=512,nl_reply_supported=1",
        true,
    );
    assert_eq!(r, OK);
    assert_eq!(
        (
            p.dev_config(),
            p.dev_size,
            p.hw_block_size,
            p.nl_reply_supported
        ),
        (&b"x"[..], 4096, 512, 1)
    );
}

#[test]
fn dev_config_values() {
    let (r, p) = parse("dev_config=a=b c/d", false);
    assert_eq!(r, OK);
    assert_eq!(p.dev_config(), b"a=b c/d");
    assert_eq!(
        info(&p),
        "Config: a=b c/d Size: 0 MaxDataAreaMB: 1024 DataPagesPerBlk: 1 CmdRingSizeMB: 8\n"
    );
    // Empty: ignored, previous value kept.
    let mut p = Params::new(&L);
    set_params(&mut p, b"dev_config=abc", false, &L).unwrap();
    set_params(&mut p, b"dev_config=", false, &L).unwrap();
    assert_eq!(p.dev_config(), b"abc");
    // Truncated to 255 bytes.
    let long = format!("dev_config={}", "x".repeat(300));
    let (r, p) = parse(&long, false);
    assert_eq!(r, OK);
    assert_eq!(p.dev_config(), "x".repeat(255).as_bytes());
    // Exactly 255 bytes kept.
    let (_, p) = parse(&format!("dev_config={}", "y".repeat(255)), false);
    assert_eq!(p.dev_config().len(), 255);
    // Invalid UTF-8 is shown as U+FFFD.
    let mut p = Params::new(&L);
    set_params(&mut p, b"dev_config=a\xffb", false, &L).unwrap();
    assert_eq!(p.dev_config(), b"a\xffb");
    assert!(info(&p).starts_with("Config: a\u{fffd}b Size: 0 "));
    p.set_dev_config(b"q\0r");
    assert_eq!(p.dev_config(), b"q");
}

#[test]
fn info_ring_size() {
    let (_, p) = parse(
        "cmd_ring_size_mb=3,dev_size=0x100000,max_data_area_mb=8,data_pages_per_blk=16",
        false,
    );
    assert_eq!(
        info(&p),
        "Config: NULL Size: 1048576 MaxDataAreaMB: 8 DataPagesPerBlk: 16 CmdRingSizeMB: 3\n"
    );
    assert_eq!(p.max_blocks, 128);
    assert_eq!(p.data_blk_size(&L), Some(65536));
}

#[test]
fn errno_values() {
    assert_eq!(ParamError::Inval.to_errno(), -22);
    assert_eq!(ParamError::Range.to_errno(), -34);
}

#[test]
fn last_lba_like_c() {
    assert_eq!(last_lba(1 << 30, 512), (1 << 21) - 1);
    assert_eq!(last_lba(1000, 512), 0);
    assert_eq!(last_lba(1024, 512), 1);
    // dev_size < block_size wraps like C's u64 arithmetic.
    assert_eq!(last_lba(0, 512), (1 << 55) - 1);
    assert_eq!(last_lba(100, 512), (u64::MAX - 411) / 512);
    assert_eq!(last_lba(100, 0), 0);
    assert_eq!(last_lba_checked(0, 512), None);
    assert_eq!(last_lba_checked(100, 0), None);
    assert_eq!(last_lba_checked(4096, 512), Some(7));
}
