// SPDX-License-Identifier: GPL-2.0

//! Compares the Rust ABI definitions with the C UAPI header.
//!
//! The C values are extracted by `build.rs` (see there for how the header is
//! located); the list of C items is parsed from the header, so the tests fail
//! both if a value differs and if an item exists on only one side.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};

use tcmu_abi::*;

mod c {
    include!(concat!(env!("OUT_DIR"), "/c_abi.rs"));
}

/// Panics (failing the test) if the C values could not be extracted.
fn c_header() -> &'static str {
    match c::C_HEADER {
        Some(h) => h,
        None => panic!("C header values unavailable: {}", c::C_ERROR),
    }
}

/// Size of the field selected by `f`.
fn fsize<T, F>(_f: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The Rust counterpart of every C value, keyed like `build.rs` keys them.
fn rust_values() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut v = |k: &str, val: usize| {
        assert!(
            m.insert(k.to_string(), val as i64).is_none(),
            "duplicate key {k}"
        );
    };

    // struct tcmu_mailbox
    let s = "struct tcmu_mailbox";
    v(&format!("sizeof({s})"), MAILBOX_SIZE);
    v(&format!("alignof({s})"), align_of::<Mailbox>());
    v(&format!("offsetof({s}, version)"), MAILBOX_VERSION_OFFSET);
    v(
        &format!("fieldsize({s}, version)"),
        fsize(|m: &Mailbox| &m.version),
    );
    v(&format!("offsetof({s}, flags)"), MAILBOX_FLAGS_OFFSET);
    v(
        &format!("fieldsize({s}, flags)"),
        fsize(|m: &Mailbox| &m.flags),
    );
    v(&format!("offsetof({s}, cmdr_off)"), MAILBOX_CMDR_OFF_OFFSET);
    v(
        &format!("fieldsize({s}, cmdr_off)"),
        fsize(|m: &Mailbox| &m.cmdr_off),
    );
    v(
        &format!("offsetof({s}, cmdr_size)"),
        MAILBOX_CMDR_SIZE_OFFSET,
    );
    v(
        &format!("fieldsize({s}, cmdr_size)"),
        fsize(|m: &Mailbox| &m.cmdr_size),
    );
    v(&format!("offsetof({s}, cmd_head)"), MAILBOX_CMD_HEAD_OFFSET);
    v(
        &format!("fieldsize({s}, cmd_head)"),
        fsize(|m: &Mailbox| &m.cmd_head),
    );
    v(&format!("offsetof({s}, cmd_tail)"), MAILBOX_CMD_TAIL_OFFSET);
    v(
        &format!("fieldsize({s}, cmd_tail)"),
        fsize(|m: &Mailbox| &m.cmd_tail),
    );

    // struct tcmu_cmd_entry_hdr
    let s = "struct tcmu_cmd_entry_hdr";
    v(&format!("sizeof({s})"), ENTRY_HDR_SIZE);
    v(&format!("alignof({s})"), align_of::<EntryHdr>());
    v(&format!("offsetof({s}, len_op)"), HDR_LEN_OP_OFFSET);
    v(
        &format!("fieldsize({s}, len_op)"),
        fsize(|h: &EntryHdr| &h.len_op),
    );
    v(&format!("offsetof({s}, cmd_id)"), HDR_CMD_ID_OFFSET);
    v(
        &format!("fieldsize({s}, cmd_id)"),
        fsize(|h: &EntryHdr| &h.cmd_id),
    );
    v(&format!("offsetof({s}, kflags)"), HDR_KFLAGS_OFFSET);
    v(
        &format!("fieldsize({s}, kflags)"),
        fsize(|h: &EntryHdr| &h.kflags),
    );
    v(&format!("offsetof({s}, uflags)"), HDR_UFLAGS_OFFSET);
    v(
        &format!("fieldsize({s}, uflags)"),
        fsize(|h: &EntryHdr| &h.uflags),
    );

    // struct tcmu_cmd_entry: header + union { CmdReq req; CmdRsp rsp; }
    let s = "struct tcmu_cmd_entry";
    v(&format!("sizeof({s})"), CMD_ENTRY_SIZE);
    // No Rust struct for the whole entry: its alignment is that of the
    // most aligned member.
    v(
        &format!("alignof({s})"),
        align_of::<EntryHdr>()
            .max(align_of::<CmdReq>())
            .max(align_of::<CmdRsp>()),
    );
    v(&format!("offsetof({s}, hdr)"), 0);
    v(&format!("fieldsize({s}, hdr)"), size_of::<EntryHdr>());
    v(&format!("offsetof({s}, req)"), REQ_OFFSET);
    v(&format!("fieldsize({s}, req)"), size_of::<CmdReq>());
    v(&format!("offsetof({s}, req.iov_cnt)"), REQ_IOV_CNT_OFFSET);
    v(
        &format!("fieldsize({s}, req.iov_cnt)"),
        fsize(|r: &CmdReq| &r.iov_cnt),
    );
    v(
        &format!("offsetof({s}, req.iov_bidi_cnt)"),
        REQ_IOV_BIDI_CNT_OFFSET,
    );
    v(
        &format!("fieldsize({s}, req.iov_bidi_cnt)"),
        fsize(|r: &CmdReq| &r.iov_bidi_cnt),
    );
    v(
        &format!("offsetof({s}, req.iov_dif_cnt)"),
        REQ_IOV_DIF_CNT_OFFSET,
    );
    v(
        &format!("fieldsize({s}, req.iov_dif_cnt)"),
        fsize(|r: &CmdReq| &r.iov_dif_cnt),
    );
    v(&format!("offsetof({s}, req.cdb_off)"), REQ_CDB_OFF_OFFSET);
    v(
        &format!("fieldsize({s}, req.cdb_off)"),
        fsize(|r: &CmdReq| &r.cdb_off),
    );
    v(
        &format!("offsetof({s}, req.__pad1)"),
        REQ_OFFSET + offset_of!(CmdReq, __pad1),
    );
    v(
        &format!("fieldsize({s}, req.__pad1)"),
        fsize(|r: &CmdReq| &r.__pad1),
    );
    v(
        &format!("offsetof({s}, req.__pad2)"),
        REQ_OFFSET + offset_of!(CmdReq, __pad2),
    );
    v(
        &format!("fieldsize({s}, req.__pad2)"),
        fsize(|r: &CmdReq| &r.__pad2),
    );
    v(&format!("offsetof({s}, req.iov)"), REQ_IOV_OFFSET);
    v(&format!("offsetof({s}, rsp)"), RSP_OFFSET);
    v(&format!("fieldsize({s}, rsp)"), size_of::<CmdRsp>());
    v(
        &format!("offsetof({s}, rsp.scsi_status)"),
        RSP_SCSI_STATUS_OFFSET,
    );
    v(
        &format!("fieldsize({s}, rsp.scsi_status)"),
        fsize(|r: &CmdRsp| &r.scsi_status),
    );
    v(
        &format!("offsetof({s}, rsp.__pad1)"),
        RSP_OFFSET + offset_of!(CmdRsp, __pad1),
    );
    v(
        &format!("fieldsize({s}, rsp.__pad1)"),
        fsize(|r: &CmdRsp| &r.__pad1),
    );
    v(
        &format!("offsetof({s}, rsp.__pad2)"),
        RSP_OFFSET + offset_of!(CmdRsp, __pad2),
    );
    v(
        &format!("fieldsize({s}, rsp.__pad2)"),
        fsize(|r: &CmdRsp| &r.__pad2),
    );
    v(&format!("offsetof({s}, rsp.read_len)"), RSP_READ_LEN_OFFSET);
    v(
        &format!("fieldsize({s}, rsp.read_len)"),
        fsize(|r: &CmdRsp| &r.read_len),
    );
    v(
        &format!("offsetof({s}, rsp.sense_buffer)"),
        RSP_SENSE_BUFFER_OFFSET,
    );
    v(
        &format!("fieldsize({s}, rsp.sense_buffer)"),
        fsize(|r: &CmdRsp| &r.sense_buffer),
    );
    for n in [0usize, 1, 2, 3, 4, 5, 16, 255] {
        v(
            &format!("offsetof({s}, req.iov[{n}])"),
            REQ_IOV_OFFSET + n * IOVEC_SIZE,
        );
    }

    // struct tcmu_tmr_entry
    let s = "struct tcmu_tmr_entry";
    v(&format!("sizeof({s})"), TMR_ENTRY_SIZE);
    v(&format!("alignof({s})"), align_of::<TmrEntry>());
    v(&format!("offsetof({s}, hdr)"), offset_of!(TmrEntry, hdr));
    v(
        &format!("fieldsize({s}, hdr)"),
        fsize(|t: &TmrEntry| &t.hdr),
    );
    v(&format!("offsetof({s}, tmr_type)"), TMR_TMR_TYPE_OFFSET);
    v(
        &format!("fieldsize({s}, tmr_type)"),
        fsize(|t: &TmrEntry| &t.tmr_type),
    );
    v(
        &format!("offsetof({s}, __pad1)"),
        offset_of!(TmrEntry, __pad1),
    );
    v(
        &format!("fieldsize({s}, __pad1)"),
        fsize(|t: &TmrEntry| &t.__pad1),
    );
    v(
        &format!("offsetof({s}, __pad2)"),
        offset_of!(TmrEntry, __pad2),
    );
    v(
        &format!("fieldsize({s}, __pad2)"),
        fsize(|t: &TmrEntry| &t.__pad2),
    );
    v(&format!("offsetof({s}, cmd_cnt)"), TMR_CMD_CNT_OFFSET);
    v(
        &format!("fieldsize({s}, cmd_cnt)"),
        fsize(|t: &TmrEntry| &t.cmd_cnt),
    );
    v(
        &format!("offsetof({s}, __pad3)"),
        offset_of!(TmrEntry, __pad3),
    );
    v(
        &format!("fieldsize({s}, __pad3)"),
        fsize(|t: &TmrEntry| &t.__pad3),
    );
    v(
        &format!("offsetof({s}, __pad4)"),
        offset_of!(TmrEntry, __pad4),
    );
    v(
        &format!("fieldsize({s}, __pad4)"),
        fsize(|t: &TmrEntry| &t.__pad4),
    );
    v(&format!("offsetof({s}, cmd_ids)"), TMR_CMD_IDS_OFFSET);

    // struct iovec (of the host, which must be 64-bit)
    let s = "struct iovec";
    v(&format!("sizeof({s})"), IOVEC_SIZE);
    v(&format!("offsetof({s}, iov_base)"), offset_of!(Iovec, base));
    v(&format!("offsetof({s}, iov_len)"), offset_of!(Iovec, len));
    v(
        &format!("fieldsize({s}, iov_base)"),
        fsize(|i: &Iovec| &i.base),
    );
    v(
        &format!("fieldsize({s}, iov_len)"),
        fsize(|i: &Iovec| &i.len),
    );

    // Constants.
    let consts: &[(&str, usize)] = &[
        ("TCMU_MAILBOX_VERSION", TCMU_MAILBOX_VERSION.into()),
        ("ALIGN_SIZE", ALIGN_SIZE),
        (
            "TCMU_MAILBOX_FLAG_CAP_OOOC",
            TCMU_MAILBOX_FLAG_CAP_OOOC.into(),
        ),
        (
            "TCMU_MAILBOX_FLAG_CAP_READ_LEN",
            TCMU_MAILBOX_FLAG_CAP_READ_LEN.into(),
        ),
        (
            "TCMU_MAILBOX_FLAG_CAP_TMR",
            TCMU_MAILBOX_FLAG_CAP_TMR.into(),
        ),
        (
            "TCMU_MAILBOX_FLAG_CAP_KEEP_BUF",
            TCMU_MAILBOX_FLAG_CAP_KEEP_BUF.into(),
        ),
        ("TCMU_UFLAG_UNKNOWN_OP", TCMU_UFLAG_UNKNOWN_OP.into()),
        ("TCMU_UFLAG_READ_LEN", TCMU_UFLAG_READ_LEN.into()),
        ("TCMU_UFLAG_KEEP_BUF", TCMU_UFLAG_KEEP_BUF.into()),
        ("TCMU_OP_MASK", TCMU_OP_MASK as usize),
        ("TCMU_SENSE_BUFFERSIZE", TCMU_SENSE_BUFFERSIZE),
        ("TCMU_TMR_UNKNOWN", TCMU_TMR_UNKNOWN.into()),
        ("TCMU_TMR_ABORT_TASK", TCMU_TMR_ABORT_TASK.into()),
        ("TCMU_TMR_ABORT_TASK_SET", TCMU_TMR_ABORT_TASK_SET.into()),
        ("TCMU_TMR_CLEAR_ACA", TCMU_TMR_CLEAR_ACA.into()),
        ("TCMU_TMR_CLEAR_TASK_SET", TCMU_TMR_CLEAR_TASK_SET.into()),
        ("TCMU_TMR_LUN_RESET", TCMU_TMR_LUN_RESET.into()),
        (
            "TCMU_TMR_TARGET_WARM_RESET",
            TCMU_TMR_TARGET_WARM_RESET.into(),
        ),
        (
            "TCMU_TMR_TARGET_COLD_RESET",
            TCMU_TMR_TARGET_COLD_RESET.into(),
        ),
        ("TCMU_TMR_LUN_RESET_PRO", TCMU_TMR_LUN_RESET_PRO.into()),
        ("TCMU_OP_ALIGN_SIZE", TCMU_OP_ALIGN_SIZE),
        ("TCMU_CMD_MAX", TCMU_CMD_MAX.into()),
        ("TCMU_ATTR_MAX", TCMU_ATTR_MAX.into()),
        ("TCMU_OP_PAD", TCMU_OP_PAD as usize),
        ("TCMU_OP_CMD", TCMU_OP_CMD as usize),
        ("TCMU_OP_TMR", TCMU_OP_TMR as usize),
        ("TCMU_CMD_UNSPEC", TCMU_CMD_UNSPEC.into()),
        ("TCMU_CMD_ADDED_DEVICE", TCMU_CMD_ADDED_DEVICE.into()),
        ("TCMU_CMD_REMOVED_DEVICE", TCMU_CMD_REMOVED_DEVICE.into()),
        ("TCMU_CMD_RECONFIG_DEVICE", TCMU_CMD_RECONFIG_DEVICE.into()),
        (
            "TCMU_CMD_ADDED_DEVICE_DONE",
            TCMU_CMD_ADDED_DEVICE_DONE.into(),
        ),
        (
            "TCMU_CMD_REMOVED_DEVICE_DONE",
            TCMU_CMD_REMOVED_DEVICE_DONE.into(),
        ),
        (
            "TCMU_CMD_RECONFIG_DEVICE_DONE",
            TCMU_CMD_RECONFIG_DEVICE_DONE.into(),
        ),
        ("TCMU_CMD_SET_FEATURES", TCMU_CMD_SET_FEATURES.into()),
        ("TCMU_ATTR_UNSPEC", TCMU_ATTR_UNSPEC.into()),
        ("TCMU_ATTR_DEVICE", TCMU_ATTR_DEVICE.into()),
        ("TCMU_ATTR_MINOR", TCMU_ATTR_MINOR.into()),
        ("TCMU_ATTR_PAD", TCMU_ATTR_PAD.into()),
        ("TCMU_ATTR_DEV_CFG", TCMU_ATTR_DEV_CFG.into()),
        ("TCMU_ATTR_DEV_SIZE", TCMU_ATTR_DEV_SIZE.into()),
        ("TCMU_ATTR_WRITECACHE", TCMU_ATTR_WRITECACHE.into()),
        ("TCMU_ATTR_CMD_STATUS", TCMU_ATTR_CMD_STATUS.into()),
        ("TCMU_ATTR_DEVICE_ID", TCMU_ATTR_DEVICE_ID.into()),
        (
            "TCMU_ATTR_SUPP_KERN_CMD_REPLY",
            TCMU_ATTR_SUPP_KERN_CMD_REPLY.into(),
        ),
    ];
    for (k, val) in consts {
        v(k, *val);
    }
    m
}

fn c_values() -> BTreeMap<String, i64> {
    c_header();
    let mut m = BTreeMap::new();
    for (k, val) in c::C_VALUES {
        assert!(
            m.insert(k.to_string(), *val).is_none(),
            "duplicate C key {k}"
        );
    }
    m
}

#[test]
fn c_header_found() {
    let h = c_header();
    println!("C UAPI header: {h}");
    assert!(!c::C_VALUES.is_empty());
}

#[test]
fn every_c_item_has_a_rust_counterpart() {
    let (c, rust) = (c_values(), rust_values());
    let missing: Vec<_> = c.keys().filter(|k| !rust.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "C items not mirrored in Rust: {missing:#?}"
    );
}

#[test]
fn every_rust_item_exists_in_c() {
    let (c, rust) = (c_values(), rust_values());
    let extra: Vec<_> = rust.keys().filter(|k| !c.contains_key(*k)).collect();
    assert!(
        extra.is_empty(),
        "Rust items not found in the C header: {extra:#?}"
    );
}

#[test]
fn values_match_c() {
    let (c, rust) = (c_values(), rust_values());
    let mut bad = Vec::new();
    for (k, &cv) in &c {
        let Some(&rv) = rust.get(k) else { continue };
        let ok = if k.starts_with("alignof(") && cv == 1 {
            // C `__packed` struct: Rust cannot be less aligned than its
            // fields, but entries are TCMU_OP_ALIGN_SIZE-aligned in the ring.
            TCMU_OP_ALIGN_SIZE as i64 % rv == 0
        } else {
            cv == rv
        };
        if !ok {
            bad.push(format!("{k}: C = {cv}, Rust = {rv}"));
        }
    }
    assert!(
        bad.is_empty(),
        "mismatches with {}:\n{}",
        c_header(),
        bad.join("\n")
    );
}

#[test]
fn strings_match_c() {
    c_header();
    let rust: &[(&str, &str)] = &[("TCMU_VERSION", TCMU_VERSION)];
    assert_eq!(c::C_STRINGS, rust);
}

#[test]
fn len_op_helpers_match_c() {
    c_header();
    assert!(!c::C_LEN_OP.is_empty());
    let mut set_op_checked = 0;
    for &(f, x, arg, c_res) in c::C_LEN_OP {
        let rust = match f {
            "get_op" => hdr_get_op(x),
            "get_len" => hdr_get_len(x),
            "set_len" => hdr_set_len(x, arg),
            "set_op" => match Opcode::from_raw(arg) {
                Ok(op) => {
                    set_op_checked += 1;
                    hdr_set_op(x, op)
                }
                // Not representable in Rust (nor defined in C).
                Err(e) => {
                    assert_eq!(e, UnknownValue(arg));
                    continue;
                }
            },
            _ => panic!("unknown helper {f}"),
        };
        assert_eq!(rust, c_res, "{f}({x:#x}, {arg:#x})");
    }
    assert!(set_op_checked > 0);
}

#[test]
fn cmd_entry_base_size_matches_c() {
    let c = c_values();
    let entry = c["sizeof(struct tcmu_cmd_entry)"];
    for n in [0usize, 1, 2, 3, 4, 5, 16, 255] {
        let iov_end = c[&format!("offsetof(struct tcmu_cmd_entry, req.iov[{n}])")];
        let expected = iov_end.max(entry) as usize;
        assert_eq!(cmd_entry_base_size(n), Some(expected), "iov_cnt {n}");
    }
}

#[test]
fn tmr_entry_base_size_matches_c() {
    let c = c_values();
    let entry = c["sizeof(struct tcmu_tmr_entry)"] as usize;
    let id = c["fieldsize(struct tcmu_cmd_entry_hdr, cmd_id)"] as usize;
    for n in [0usize, 1, 3, 4, 100] {
        assert_eq!(tmr_entry_base_size(n), Some(entry + n * id));
    }
}

/// Normalizes whitespace, for substring searches in C source.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn netlink_family_matches_c_driver() {
    c_header();
    let Some(path) = c::C_DRIVER_SOURCE else {
        println!("no target_core_user.c next to {}: skipped", c_header());
        return;
    };
    let src = squash(&std::fs::read_to_string(path).expect("cannot read C driver"));
    let fam = src
        .find("static struct genl_family tcmu_genl_family")
        .expect("tcmu_genl_family not found");
    let fam = &src[fam..fam + src[fam..].find("};").expect("unterminated family")];
    assert!(
        fam.contains(&format!(".name = \"{TCMU_GENL_FAMILY_NAME}\",")),
        "family name: {fam}"
    );
    assert!(
        fam.contains(&format!(".version = {TCMU_GENL_VERSION},")),
        "family version: {fam}"
    );
    assert!(
        src.contains(&format!(
            "[TCMU_MCGRP_CONFIG] = {{ .name = \"{TCMU_GENL_MCGRP_CONFIG_NAME}\", }}"
        )),
        "multicast group name"
    );
    assert_eq!(TCMU_GENL_FAMILY_NAME_C.to_str(), Ok(TCMU_GENL_FAMILY_NAME));
    assert_eq!(
        TCMU_GENL_MCGRP_CONFIG_NAME_C.to_str(),
        Ok(TCMU_GENL_MCGRP_CONFIG_NAME)
    );
}
