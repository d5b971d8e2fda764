// SPDX-License-Identifier: GPL-2.0

//! Extracts the layout and constants of the C TCMU UAPI header, for the tests.
//!
//! The header (`linux/target_core_user.h`) is located as follows:
//!
//! 1. `$TCMU_UAPI_HEADER`, if set;
//! 2. the newest `$HOME/.cache/tcmu-rs/src/linux-*/include/uapi/linux/target_core_user.h`;
//! 3. `/usr/include/linux/target_core_user.h` (package linux-libc-dev).
//!
//! It is copied to `$OUT_DIR/linux/` and a C program compiled with
//! `-I $OUT_DIR` (so `<linux/types.h>` and `<linux/uio.h>` come from the host)
//! prints `sizeof`/`_Alignof` of every struct, `offsetof` and `sizeof` of every
//! (nested) struct field, the value of every `#define` and enum member, and
//! the results of the `tcmu_hdr_*` inline helpers for a set of inputs. The
//! list of structs, fields and constants is parsed from the header itself, so
//! anything added to the header shows up in the tests.
//!
//! The result is written to `$OUT_DIR/c_abi.rs` and compared with the Rust
//! definitions by `tests/c_abi.rs`. Failures (no header, no C compiler, ...)
//! do not fail the build (other crates depend on this one), they are reported
//! as warnings and make the C comparison tests fail.

use std::cmp::Ordering;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADER_NAME: &str = "target_core_user.h";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TCMU_UAPI_HEADER");
    println!("cargo:rerun-if-env-changed=HOME");
    println!("cargo:rerun-if-env-changed=CC");

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR not set"));
    let generated = match generate(&out_dir) {
        Ok(s) => s,
        Err(e) => {
            println!("cargo:warning=tcmu-abi: cannot compare with the C header: {e}");
            format!(
                "/// UAPI header the values were extracted from.\n\
                 pub const C_HEADER: Option<&str> = None;\n\
                 /// Why the C values could not be extracted.\n\
                 pub const C_ERROR: &str = {e:?};\n\
                 /// Path of target_core_user.c next to the header, if any.\n\
                 pub const C_DRIVER_SOURCE: Option<&str> = None;\n\
                 /// Integer values.\n\
                 pub const C_VALUES: &[(&str, i64)] = &[];\n\
                 /// String constants.\n\
                 pub const C_STRINGS: &[(&str, &str)] = &[];\n\
                 /// Results of the len_op helpers.\n\
                 pub const C_LEN_OP: &[(&str, u32, u32, u32)] = &[];\n"
            )
        }
    };
    fs::write(out_dir.join("c_abi.rs"), generated).expect("cannot write c_abi.rs");
}

/// Finds the header, compiles and runs the extraction program, returns the
/// contents of `c_abi.rs`.
fn generate(out_dir: &Path) -> Result<String, String> {
    let header = find_header()?;
    println!("cargo:rerun-if-changed={}", header.display());
    println!(
        "cargo:warning=tcmu-abi: comparing with C UAPI header {}",
        header.display()
    );

    if env::var("HOST").ok() != env::var("TARGET").ok() {
        return Err("cross-compiling, cannot run the C extraction program".into());
    }

    let text = fs::read_to_string(&header)
        .map_err(|e| format!("cannot read {}: {e}", header.display()))?;
    let parsed = parse_header(&text)?;

    let inc_dir = out_dir.join("linux");
    fs::create_dir_all(&inc_dir)
        .map_err(|e| format!("cannot create {}: {e}", inc_dir.display()))?;
    fs::copy(&header, inc_dir.join(HEADER_NAME))
        .map_err(|e| format!("cannot copy {}: {e}", header.display()))?;

    let c_src = out_dir.join("tcmu_abi_dump.c");
    let c_bin = out_dir.join("tcmu_abi_dump");
    fs::write(&c_src, c_program(&parsed)).map_err(|e| format!("cannot write C program: {e}"))?;

    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-Wall")
        // The kernel's `headers_install.sh` replaces `__packed` when
        // exporting the header; do the same for a raw source tree header.
        .arg("-D__packed=__attribute__((packed))")
        .arg("-I")
        .arg(out_dir)
        .arg("-o")
        .arg(&c_bin)
        .arg(&c_src)
        .output()
        .map_err(|e| format!("cannot run C compiler `{cc}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "C compiler `{cc}` failed on {}:\n{}",
            c_src.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let output = Command::new(&c_bin)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", c_bin.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed", c_bin.display()));
    }
    let values = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;

    let header_str = header.to_string_lossy().into_owned();
    let driver = driver_source(&header).map(|p| p.to_string_lossy().into_owned());
    let mut s = String::new();
    writeln!(s, "/// UAPI header the values were extracted from.").unwrap();
    writeln!(
        s,
        "pub const C_HEADER: Option<&str> = Some({header_str:?});"
    )
    .unwrap();
    writeln!(s, "/// Why the C values could not be extracted.").unwrap();
    writeln!(s, "pub const C_ERROR: &str = \"\";").unwrap();
    writeln!(
        s,
        "/// Path of target_core_user.c next to the header, if any."
    )
    .unwrap();
    writeln!(s, "pub const C_DRIVER_SOURCE: Option<&str> = {driver:?};").unwrap();
    s.push_str(&values);
    Ok(s)
}

/// Locates the C header, see the crate documentation.
fn find_header() -> Result<PathBuf, String> {
    if let Some(p) = env::var_os("TCMU_UAPI_HEADER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("TCMU_UAPI_HEADER={} is not a file", p.display()))
        };
    }

    if let Some(home) = env::var_os("HOME") {
        let src = Path::new(&home).join(".cache/tcmu-rs/src");
        // Not a rerun-if-changed on `src`: cargo would scan whole kernel
        // trees. Touch build.rs (or set TCMU_UAPI_HEADER) after adding one.
        let mut trees: Vec<(String, PathBuf)> = fs::read_dir(&src)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let header = e.path().join("include/uapi/linux").join(HEADER_NAME);
                (name.starts_with("linux-") && header.is_file()).then_some((name, header))
            })
            .collect();
        trees.sort_by(|a, b| version_cmp(&a.0, &b.0));
        if let Some((_, header)) = trees.pop() {
            return Ok(header);
        }
    }

    let p = PathBuf::from("/usr/include/linux").join(HEADER_NAME);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "no {HEADER_NAME} found (set TCMU_UAPI_HEADER, or install linux-libc-dev)"
        ))
    }
}

/// `drivers/target/target_core_user.c` of the kernel tree `header` is in.
fn driver_source(header: &Path) -> Option<PathBuf> {
    // <tree>/include/uapi/linux/target_core_user.h
    let tree = header.parent()?.parent()?.parent()?.parent()?;
    let p = tree.join("drivers/target/target_core_user.c");
    p.is_file().then(|| {
        println!("cargo:rerun-if-changed={}", p.display());
        p
    })
}

/// Compares version-like strings, numeric runs by value ("6.12.9" < "6.12.10").
fn version_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut v = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                v.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        v
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

// ---------------------------------------------------------------------------
// A minimal parser for the (simple, declarative) UAPI header.
// ---------------------------------------------------------------------------

/// A struct field, with its path from the struct (e.g. `req.iov_cnt`).
struct Field {
    path: String,
    /// Flexible array member: no `sizeof`.
    flex: bool,
}

struct Struct {
    name: String,
    fields: Vec<Field>,
}

enum Constant {
    Int(String),
    Str(String),
}

struct Parsed {
    structs: Vec<Struct>,
    constants: Vec<Constant>,
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find("*/") {
            Some(j) => rest = &rest[i + 2 + j + 2..],
            None => {
                rest = "";
            }
        }
        out.push(' ');
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

fn tokenize(code: &str) -> Vec<String> {
    let mut toks = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(chars[start..i].iter().collect());
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            toks.push(chars[start..i.min(chars.len())].iter().collect());
        } else {
            toks.push(c.to_string());
            i += 1;
        }
    }
    toks
}

/// Index after the group opened at `toks[i]` (one of `(`, `[`, `{`).
fn skip_group(toks: &[String], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < toks.len() {
        match toks[i].as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// Removes `__attribute__((...))` groups.
fn strip_attributes(toks: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i] == "__attribute__" {
            i = skip_group(toks, i + 1);
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// Parses struct/union members from `toks[i]` (after `{`) to the matching
/// `}`; returns the fields and the index after the `}`.
fn parse_members(toks: &[String], mut i: usize) -> Result<(Vec<Field>, usize), String> {
    let mut fields = Vec::new();
    loop {
        let t = toks.get(i).ok_or("unterminated struct")?;
        if t == "}" {
            return Ok((fields, i + 1));
        }
        if (t == "union" || t == "struct") && toks.get(i + 1).map(String::as_str) == Some("{") {
            let (sub, mut j) = parse_members(toks, i + 2)?;
            let mut name = None;
            while j < toks.len() && toks[j] != ";" {
                if toks[j] == "__attribute__" {
                    j = skip_group(toks, j + 1);
                    continue;
                }
                if is_ident(&toks[j]) && toks[j] != "__packed" && name.is_none() {
                    name = Some(toks[j].clone());
                }
                j += 1;
            }
            match name {
                Some(n) => {
                    fields.push(Field {
                        path: n.clone(),
                        flex: false,
                    });
                    fields.extend(sub.into_iter().map(|f| Field {
                        path: format!("{n}.{}", f.path),
                        flex: f.flex,
                    }));
                }
                None => fields.extend(sub),
            }
            i = j + 1;
            continue;
        }
        // A plain declaration, up to `;` outside of parentheses.
        let start = i;
        let mut depth = 0i32;
        while i < toks.len() && !(depth == 0 && toks[i] == ";") {
            match toks[i].as_str() {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        let decl = strip_attributes(&toks[start..i]);
        i += 1;
        fields.push(parse_decl(&decl)?);
    }
}

fn parse_decl(decl: &[String]) -> Result<Field, String> {
    let bad = || format!("cannot parse member `{}`", decl.join(" "));
    if decl.first().map(String::as_str) == Some("__DECLARE_FLEX_ARRAY") {
        let name = decl.iter().rev().find(|t| is_ident(t)).ok_or_else(bad)?;
        return Ok(Field {
            path: name.clone(),
            flex: true,
        });
    }
    if let Some(b) = decl.iter().position(|t| t == "[") {
        let name = decl[..b].last().filter(|t| is_ident(t)).ok_or_else(bad)?;
        let dim: Vec<&str> = decl[b + 1..]
            .iter()
            .take_while(|t| *t != "]")
            .map(String::as_str)
            .collect();
        return Ok(Field {
            path: name.clone(),
            flex: dim.is_empty() || dim == ["0"],
        });
    }
    let name = decl.iter().rev().find(|t| is_ident(t)).ok_or_else(bad)?;
    Ok(Field {
        path: name.clone(),
        flex: false,
    })
}

fn parse_header(text: &str) -> Result<Parsed, String> {
    let text = strip_comments(&text.replace("\\\n", " "));
    let mut constants = Vec::new();
    let mut code = String::new();
    for line in text.lines() {
        let l = line.trim_start();
        if let Some(directive) = l.strip_prefix('#') {
            let directive = directive.trim_start();
            if let Some(def) = directive.strip_prefix("define") {
                let def = def.trim_start();
                let name_end = def
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(def.len());
                let (name, value) = def.split_at(name_end);
                // Skip include guards, internal names and function-like macros.
                if name.starts_with("__") || value.starts_with('(') || value.trim().is_empty() {
                    continue;
                }
                constants.push(if value.trim().starts_with('"') {
                    Constant::Str(name.to_string())
                } else {
                    Constant::Int(name.to_string())
                });
            }
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }

    let toks = tokenize(&code);
    let mut structs = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        let next = |k: usize| toks.get(i + k).map(String::as_str);
        if t == "struct" && next(2) == Some("{") {
            let name = toks[i + 1].clone();
            let (fields, j) = parse_members(&toks, i + 3)?;
            structs.push(Struct { name, fields });
            i = j;
        } else if t == "enum" && next(2) == Some("{") {
            let end = skip_group(&toks, i + 2);
            let mut expect_member = true;
            let mut depth = 0i32;
            for tok in &toks[i + 3..end - 1] {
                match tok.as_str() {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    "," if depth == 0 => expect_member = true,
                    name if expect_member && is_ident(name) => {
                        if !name.starts_with("__") {
                            constants.push(Constant::Int(name.to_string()));
                        }
                        expect_member = false;
                    }
                    _ => {}
                }
            }
            i = end;
        } else if t == "static" {
            // Inline function: skip its body.
            while i < toks.len() && toks[i] != "{" {
                i += 1;
            }
            i = skip_group(&toks, i);
        } else {
            i += 1;
        }
    }
    if structs.is_empty() {
        return Err("no struct found in the header".into());
    }
    Ok(Parsed { structs, constants })
}

// ---------------------------------------------------------------------------
// The C extraction program.
// ---------------------------------------------------------------------------

/// Inputs for the `len_op` helper comparison.
const LEN_OPS: &[u32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 0x10, 0x3d, 0x70, 0x71, 0x1000, 0x12345678, 0x7ffffff9,
    0x80000001, 0xfffffff8, 0xfffffffa, 0xffffffff,
];
const LENS: &[u32] = &[
    0, 1, 7, 8, 13, 64, 100, 112, 0x100000, 0xfffffff8, 0xffffffff,
];
/// iovec counts for `offsetof(struct tcmu_cmd_entry, req.iov[n])`.
const IOV_CNTS: &[u32] = &[0, 1, 2, 3, 4, 5, 16, 255];

fn c_program(p: &Parsed) -> String {
    let mut c = String::new();
    c.push_str(
        r#"#include <stdio.h>
#include <stddef.h>
#include <linux/target_core_user.h>

#define V(key, expr) printf("    (\"%s\", %lld),\n", key, (long long)(expr))

static void str(const char *key, const char *s)
{
	printf("    (\"%s\", \"", key);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	printf("\"),\n");
}

static void len_op(const char *f, __u32 a, __u32 b, __u32 r)
{
	printf("    (\"%s\", %u, %u, %u),\n", f, a, b, r);
}

int main(void)
{
	static const __u32 len_ops[] = {"#,
    );
    for v in LEN_OPS {
        write!(c, "{v:#x}u, ").unwrap();
    }
    c.push_str("};\n\tstatic const __u32 lens[] = {");
    for v in LENS {
        write!(c, "{v:#x}u, ").unwrap();
    }
    c.push_str("};\n\tsize_t i, j;\n\n");

    c.push_str("\tprintf(\"/// Integer values, by C expression.\\n\");\n");
    c.push_str("\tprintf(\"pub const C_VALUES: &[(&str, i64)] = &[\\n\");\n");
    for s in &p.structs {
        let name = format!("struct {}", s.name);
        writeln!(c, "\tV(\"sizeof({name})\", sizeof({name}));").unwrap();
        writeln!(c, "\tV(\"alignof({name})\", _Alignof({name}));").unwrap();
        for f in &s.fields {
            let path = &f.path;
            writeln!(
                c,
                "\tV(\"offsetof({name}, {path})\", offsetof({name}, {path}));"
            )
            .unwrap();
            if !f.flex {
                writeln!(
                    c,
                    "\tV(\"fieldsize({name}, {path})\", sizeof((({name} *)0)->{path}));"
                )
                .unwrap();
            }
        }
    }
    // Not defined in the header, but part of the ABI.
    c.push_str(
        "\tV(\"sizeof(struct iovec)\", sizeof(struct iovec));\n\
         \tV(\"offsetof(struct iovec, iov_base)\", offsetof(struct iovec, iov_base));\n\
         \tV(\"offsetof(struct iovec, iov_len)\", offsetof(struct iovec, iov_len));\n\
         \tV(\"fieldsize(struct iovec, iov_base)\", sizeof(((struct iovec *)0)->iov_base));\n\
         \tV(\"fieldsize(struct iovec, iov_len)\", sizeof(((struct iovec *)0)->iov_len));\n",
    );
    for n in IOV_CNTS {
        writeln!(
            c,
            "\tV(\"offsetof(struct tcmu_cmd_entry, req.iov[{n}])\", \
             offsetof(struct tcmu_cmd_entry, req.iov[{n}]));"
        )
        .unwrap();
    }
    for k in &p.constants {
        if let Constant::Int(name) = k {
            writeln!(c, "\tV(\"{name}\", {name});").unwrap();
        }
    }
    c.push_str("\tprintf(\"];\\n\");\n\n");

    c.push_str("\tprintf(\"/// String constants.\\n\");\n");
    c.push_str("\tprintf(\"pub const C_STRINGS: &[(&str, &str)] = &[\\n\");\n");
    for k in &p.constants {
        if let Constant::Str(name) = k {
            writeln!(c, "\tstr(\"{name}\", {name});").unwrap();
        }
    }
    c.push_str("\tprintf(\"];\\n\");\n\n");

    c.push_str(
        r#"	printf("/// Results of the C len_op helpers: (helper, len_op, arg, result).\n");
	printf("pub const C_LEN_OP: &[(&str, u32, u32, u32)] = &[\n");
	for (i = 0; i < sizeof(len_ops) / sizeof(len_ops[0]); i++) {
		__u32 x = len_ops[i];

		len_op("get_op", x, 0, tcmu_hdr_get_op(x));
		len_op("get_len", x, 0, tcmu_hdr_get_len(x));
		for (j = 0; j <= TCMU_OP_MASK; j++) {
			__u32 y = x;

			tcmu_hdr_set_op(&y, (enum tcmu_opcode)j);
			len_op("set_op", x, j, y);
		}
		for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			__u32 y = x;

			tcmu_hdr_set_len(&y, lens[j]);
			len_op("set_len", x, lens[j], y);
		}
	}
	printf("];\n");
	return 0;
}
"#,
    );
    c
}
