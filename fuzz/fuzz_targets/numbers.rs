//! The number parsers of options and locator keys, and the node kinds'
//! values. Asserts: no panic; a decimal or octal taken is all digits, in
//! its range, and the value the digits say; a port is the digits modulo
//! 65536 (or 65535 when they overflow, as `strtoul` saturates).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::fuzzing::{decimal, inet_port, node_values, octal};

fuzz_target!(|data: &[u8]| {
    let (lo, hi, text) = match data {
        [a, b, rest @ ..] => (u64::from(*a), u64::from(*a) + u64::from(*b) * 1000, rest),
        _ => return,
    };
    let text = String::from_utf8_lossy(text);
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let value = text.parse::<u128>().ok();
    if let Some(n) = decimal(&text, lo, hi) {
        assert!(digits && (lo..=hi).contains(&n));
        assert_eq!(Some(u128::from(n)), value);
    } else if digits {
        assert!(value.is_none_or(|v| v < u128::from(lo) || v > u128::from(hi)));
    }
    for max in [0o777, 0o7777] {
        if let Some(m) = octal(&text, max) {
            let d = text.strip_prefix("0o").unwrap_or(&text);
            assert!(m <= max && u32::from_str_radix(d, 8) == Ok(m));
        }
    }
    match inet_port(&text) {
        Some(p) => {
            assert!(text.bytes().all(|b| b.is_ascii_digit()));
            let want = match value {
                Some(v) if v < u128::from(u64::MAX) => (v % 65536) as u16,
                Some(_) => 65535,
                None if text.is_empty() => 0,
                None => 65535,
            };
            assert_eq!(p, want, "{text:?}");
        }
        None => assert!(!text.bytes().all(|b| b.is_ascii_digit())),
    }
    let _ = node_values(&text);
});
