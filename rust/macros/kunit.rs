// SPDX-License-Identifier: GPL-2.0

//! `#[kunit_tests(suite)]`: a module of `#[test]` functions as a KUnit suite.
//!
//! Mirrors mainline's `macros::kunit_tests` (same name, attribute and test syntax), so that a
//! rebase onto a kernel that has it keeps the suites unchanged. Linux 6.12 has no `syn`, so
//! the module is taken apart token by token.

use proc_macro::{Delimiter, Group, Span, TokenStream, TokenTree};

/// Whether `tt` is the `[test]` group of a `#[test]` attribute.
fn is_test_attr(tt: &TokenTree) -> bool {
    match tt {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket => {
            let inner: Vec<_> = g.stream().into_iter().collect();
            matches!(inner.as_slice(), [TokenTree::Ident(i)] if i.to_string() == "test")
        }
        _ => false,
    }
}

/// Whether a `#[test]` hides in a nested item of `tokens` (it would never run: refused).
fn nested_test(tokens: &[TokenTree]) -> bool {
    tokens.iter().any(|t| match t {
        TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            inner.windows(2).any(|w| {
                matches!(&w[0], TokenTree::Punct(p) if p.as_char() == '#') && is_test_attr(&w[1])
            }) || nested_test(&inner)
        }
        _ => false,
    })
}

/// The leading inner attributes (`#![...]`, `//!`) of a module body, which must stay first.
fn take_inner_attrs(items: &mut Vec<TokenTree>) -> Vec<TokenTree> {
    let mut n = 0;
    while let [TokenTree::Punct(h), TokenTree::Punct(b), TokenTree::Group(g), ..] = &items[n..] {
        if h.as_char() != '#' || b.as_char() != '!' || g.delimiter() != Delimiter::Bracket {
            break;
        }
        n += 3;
    }
    items.drain(..n).collect()
}

/// The body of the module with the `#[test]` attributes taken out, and the names of the
/// functions they marked, in order.
fn take_tests(body: TokenStream) -> (Vec<TokenTree>, Vec<String>) {
    let tokens: Vec<TokenTree> = body.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut tests = Vec::new();
    let mut pending = false;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Punct(p)
                if p.as_char() == '#' && tokens.get(i + 1).is_some_and(is_test_attr) =>
            {
                pending = true;
                i += 2;
                continue;
            }
            TokenTree::Ident(id) if pending && id.to_string() == "fn" => {
                match tokens.get(i + 1) {
                    Some(TokenTree::Ident(name)) => tests.push(name.to_string()),
                    _ => panic!("`#[test]` must be on a function"),
                }
                pending = false;
            }
            _ => {}
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    if pending {
        panic!("`#[test]` must be on a function");
    }
    (out, tests)
}

pub(crate) fn kunit_tests(attr: TokenStream, ts: TokenStream) -> TokenStream {
    let suite = attr.to_string();
    if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        panic!("expected `#[kunit_tests(suite_name)]`");
    }
    if suite.len() > 255 {
        panic!("the suite name `{suite}` is longer than 255 bytes");
    }
    let mut tokens: Vec<TokenTree> = ts.into_iter().collect();
    // `mod name { ... }`: the body is the last token.
    let body = match tokens.pop() {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => g,
        _ => panic!("`#[kunit_tests]` must be on a module with a body"),
    };
    if !tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "mod"))
    {
        panic!("`#[kunit_tests]` must be on a module");
    }
    let (mut items, tests) = take_tests(body.stream());
    if tests.is_empty() {
        panic!("the suite `{suite}` has no `#[test]` function");
    }
    if nested_test(&items) {
        panic!("`#[test]` only works on the functions of the suite's module itself");
    }
    let inner = take_inner_attrs(&mut items);
    // Inside the suite `assert!`, `assert_eq!` and `assert_ne!` report to KUnit instead of
    // panicking (a failed check marks the case failed; the case goes on), and the suite is
    // declared. Other panicking macros keep their meaning: tests must not use them. A
    // `#[test]` function under a `#[cfg]` would be listed whatever the cfg says: not supported.
    let prologue: TokenStream = "
        #[allow(unused_macros)]
        macro_rules! assert { ($($t:tt)*) => { ::kernel::kunit_expect!($($t)*) }; }
        #[allow(unused_macros)]
        macro_rules! assert_eq { ($($t:tt)*) => { ::kernel::kunit_expect_eq!($($t)*) }; }
        #[allow(unused_macros)]
        macro_rules! assert_ne {
            ($l:expr, $r:expr $(,)?) => { ::kernel::kunit_expect!($l != $r) };
        }
    "
    .parse()
    .expect("the prologue parses");
    let epilogue: TokenStream = format!("::kernel::kunit_suite!({suite}, [{}]);", tests.join(", "))
        .parse()
        .expect("the suite declaration parses");
    let mut new_body = inner;
    new_body.extend(prologue);
    new_body.append(&mut items);
    new_body.extend(epilogue);
    let mut body = Group::new(Delimiter::Brace, new_body.into_iter().collect());
    body.set_span(Span::call_site());

    // `#[cfg(CONFIG_KUNIT)]` on the module: without KUnit the suite is not built.
    let cfg: TokenStream = "#[cfg(CONFIG_KUNIT)]".parse().expect("the cfg parses");
    let mut out: Vec<TokenTree> = cfg.into_iter().collect();
    out.extend(tokens);
    out.push(TokenTree::Group(body));
    out.into_iter().collect()
}
