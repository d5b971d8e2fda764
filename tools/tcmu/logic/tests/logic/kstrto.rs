//! `kstrto*` parsing against the kernel's lib/kstrtox.c semantics.

use tcmu_logic::kstrto::*;

#[test]
fn unsigned_bases_and_newline() {
    assert_eq!(kstrtou32(b"30"), Ok(30));
    assert_eq!(kstrtou32(b"30\n"), Ok(30));
    assert_eq!(kstrtou32(b"+7"), Ok(7));
    assert_eq!(kstrtou32(b"0x1f"), Ok(31));
    assert_eq!(kstrtou32(b"010"), Ok(8));
    assert_eq!(kstrtou32(b"0"), Ok(0));
    assert_eq!(kstrtou32(b""), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"\n"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b" 1"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"1\n\n"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"08"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"0x"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"-1"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtou32(b"4294967296"), Err(KstrtoError::Range));
    assert_eq!(kstrtou8(b"256"), Err(KstrtoError::Range));
    assert_eq!(kstrtou16(b"65535"), Ok(65535));
    assert_eq!(kstrtoull(b"18446744073709551616"), Err(KstrtoError::Range));
}

#[test]
fn signed() {
    assert_eq!(kstrtos32(b"-1"), Ok(-1));
    assert_eq!(kstrtos32(b"-2147483648"), Ok(i32::MIN));
    assert_eq!(kstrtos32(b"-2147483649"), Err(KstrtoError::Range));
    assert_eq!(kstrtos32(b"2147483648"), Err(KstrtoError::Range));
    assert_eq!(kstrtos32(b"--1"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoll(b"-9223372036854775808"), Ok(i64::MIN));
}

#[test]
fn booleans() {
    assert_eq!(kstrtobool(b"1"), Ok(true));
    assert_eq!(kstrtobool(b"0\n"), Ok(false));
    assert_eq!(kstrtobool(b"on"), Ok(true));
    assert_eq!(kstrtobool(b"off"), Ok(false));
    assert_eq!(kstrtobool(b"x"), Err(KstrtoError::Invalid));
}

proptest::proptest! {
    #[test]
    fn never_panics(s in proptest::collection::vec(proptest::num::u8::ANY, 0..32)) {
        let _ = kstrtoull(&s);
        let _ = kstrtoll(&s);
        let _ = kstrtobool(&s);
    }

    #[test]
    fn roundtrip(v: u32) {
        let s = std::format!("{v}\n");
        proptest::prop_assert_eq!(kstrtou32(s.as_bytes()), Ok(v));
        let h = std::format!("{v:#x}");
        proptest::prop_assert_eq!(kstrtou32(h.as_bytes()), Ok(v));
    }
}

#[test]
fn kstrtoint_decimal_only() {
    // kstrtoint(s, 10, &v), as global_max_data_area_mb parses.
    assert_eq!(kstrtoint_dec(b"2048\n"), Ok(2048));
    assert_eq!(kstrtoint_dec(b"010"), Ok(10));
    assert_eq!(kstrtoint_dec(b"+7"), Ok(7));
    assert_eq!(kstrtoint_dec(b"-1"), Ok(-1));
    assert_eq!(kstrtoint_dec(b"-2147483648"), Ok(i32::MIN));
    assert_eq!(kstrtoint_dec(b"2147483647"), Ok(i32::MAX));
    assert_eq!(kstrtoint_dec(b"2147483648"), Err(KstrtoError::Range));
    assert_eq!(kstrtoint_dec(b"-2147483649"), Err(KstrtoError::Range));
    assert_eq!(kstrtoint_dec(b"0x10"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoint_dec(b"1a"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoint_dec(b""), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoint_dec(b"\n"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoint_dec(b"-"), Err(KstrtoError::Invalid));
    assert_eq!(kstrtoint_dec(b"5\n\n"), Err(KstrtoError::Invalid));
}
