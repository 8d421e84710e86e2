//! A node's status answer as `vde_plug_rs --status` reads it. Asserts: no
//! panic; for an answer it accepts, the table (with and without rates
//! against itself) is drawn, and the JSON is well formed.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::status::Status;

/// Checks one JSON value at the start of `s`; returns what follows it.
fn value(s: &[u8]) -> Option<&[u8]> {
    match *s.first()? {
        b'{' => members(&s[1..], b'}', |s| value(string(s)?.strip_prefix(b":")?)),
        b'[' => members(&s[1..], b']', value),
        b'"' => string(s),
        b't' => s.strip_prefix(b"true"),
        b'f' => s.strip_prefix(b"false"),
        b'n' => s.strip_prefix(b"null"),
        b'-' | b'0'..=b'9' => {
            let n = s
                .iter()
                .take_while(|c| c.is_ascii_digit() || b"-+.eE".contains(c))
                .count();
            std::str::from_utf8(&s[..n]).ok()?.parse::<f64>().ok()?;
            Some(&s[n..])
        }
        _ => None,
    }
}

/// Elements separated by commas up to `close`.
fn members(mut s: &[u8], close: u8, one: impl Fn(&[u8]) -> Option<&[u8]>) -> Option<&[u8]> {
    if let Some(rest) = s.strip_prefix(&[close]) {
        return Some(rest);
    }
    loop {
        s = one(s)?;
        match *s.first()? {
            b',' => s = &s[1..],
            c if c == close => return Some(&s[1..]),
            _ => return None,
        }
    }
}

/// A JSON string at the start of `s`: no raw control characters, known
/// escapes only.
fn string(s: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    if s.first() != Some(&b'"') {
        return None;
    }
    loop {
        match *s.get(i)? {
            b'"' => return Some(&s[i + 1..]),
            b'\\' => match *s.get(i + 1)? {
                b'u' => {
                    let hex = s.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                _ => return None,
            },
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(status) = Status::parse(&text) else {
        return;
    };
    let _ = status.table(None);
    let _ = status.table(Some((&status, Duration::from_millis(1))));
    let json = status.json();
    assert_eq!(value(json.as_bytes()), Some(&b""[..]), "not JSON: {json}");
});
