//! Virtual network locators: `module://address[key=value/key/...]`.
//!
//! The grammar follows vdeplug4: no `://` means module `vde`; the address
//! ends at the first unquoted `[`; the parameters run to the last unquoted
//! `]` and are split on unquoted `/`. Single and double quotes group, a
//! backslash protects the next character and `%XX` stands for a byte. A key
//! may be abbreviated to any prefix of a known key (the first in the
//! module's list wins), as the C parser allows.

use std::fmt;

/// A parsed locator: the module, the address with quoting removed, and the
/// raw parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locator {
    pub module: String,
    pub address: String,
    pub params: Vec<Param>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    /// `None` for a bare word with no `=`.
    pub value: Option<String>,
}

/// A parameter key that no known key starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey(pub String);

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown key: {}", self.0)
    }
}

impl Locator {
    /// Splits `url` into module, address and parameters (no file-system
    /// look-ups; see [`crate::default_switch`] for the empty URL).
    pub fn parse(url: &str) -> Locator {
        let (module, rest) = match url.find("://") {
            Some(at) => (&url[..at], &url[at + 3..]),
            None => ("vde", url),
        };
        let (address, after) = next_token(rest.as_bytes(), b'[');
        let mut params = Vec::new();
        if let Some(after) = after {
            let inner = &after[..last_unquoted(after, b']').unwrap_or(after.len())];
            let mut cursor = Some(inner);
            while let Some(chunk) = cursor {
                let (elem, next) = next_token(chunk, b'/');
                cursor = next;
                let (key, value) = match elem.find('=') {
                    Some(eq) => (elem[..eq].to_string(), Some(elem[eq + 1..].to_string())),
                    None => (elem.clone(), None),
                };
                if !key.is_empty() {
                    params.push(Param { key, value });
                }
            }
        }
        Locator {
            module: module.to_string(),
            address,
            params,
        }
    }

    /// The locator of a module that takes its options after slashes, as
    /// vdeplug4's `vde_parseparms` reads them (vxlan, vxvde):
    /// `ADDRESS/key=value/key/...`, quoting as elsewhere. `rest` is what
    /// follows `module://`.
    pub(crate) fn parse_slashed(module: &str, rest: &str) -> Locator {
        let (address, mut cursor) = next_token(rest.as_bytes(), b'/');
        let mut params = Vec::new();
        while let Some(chunk) = cursor {
            let (elem, next) = next_token(chunk, b'/');
            cursor = next;
            let (key, value) = match elem.find('=') {
                Some(eq) => (elem[..eq].to_string(), Some(elem[eq + 1..].to_string())),
                None => (elem.clone(), None),
            };
            if !key.is_empty() {
                params.push(Param { key, value });
            }
        }
        Locator {
            module: module.to_string(),
            address,
            params,
        }
    }

    /// Resolves every parameter against `known` (in priority order, as
    /// prefixes). A bare word that matches no key goes to `bare_to` when the
    /// module accepts one (vde's port or port group). Later values win.
    pub fn resolve<'k>(
        &self,
        known: &[&'k str],
        bare_to: Option<&'k str>,
    ) -> Result<Vec<(&'k str, String)>, UnknownKey> {
        let mut out: Vec<(&'k str, String)> = Vec::new();
        for p in &self.params {
            let found = known.iter().find(|k| k.starts_with(p.key.as_str()));
            let (key, value) = match (found, &p.value, bare_to) {
                (Some(k), v, _) => (*k, v.clone().unwrap_or_default()),
                (None, None, Some(b)) => (b, p.key.clone()),
                _ => return Err(UnknownKey(p.key.clone())),
            };
            out.retain(|(k, _)| *k != key);
            out.push((key, value));
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Plain,
    Single,
    Double,
    Escape,
}

/// Reads one token up to an unquoted `delim`, removing quotes and escapes
/// and decoding `%XX`; returns the token and what follows the delimiter.
fn next_token(s: &[u8], delim: u8) -> (String, Option<&[u8]>) {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut state = Lex::Plain;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match state {
            Lex::Plain => match c {
                b'\'' => state = Lex::Single,
                b'"' => state = Lex::Double,
                b'\\' => state = Lex::Escape,
                b'%' if i + 2 < s.len() && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some() => {
                    out.push(hex(s[i + 1]).unwrap() << 4 | hex(s[i + 2]).unwrap());
                    i += 2;
                }
                c if c == delim => {
                    return (
                        String::from_utf8_lossy(&out).into_owned(),
                        Some(&s[i + 1..]),
                    );
                }
                c => out.push(c),
            },
            Lex::Single if c == b'\'' => state = Lex::Plain,
            Lex::Double if c == b'"' => state = Lex::Plain,
            Lex::Escape => {
                out.push(c);
                state = Lex::Plain;
            }
            _ => out.push(c),
        }
        i += 1;
    }
    (String::from_utf8_lossy(&out).into_owned(), None)
}

/// Position of the last `delim` outside quotes and escapes.
fn last_unquoted(s: &[u8], delim: u8) -> Option<usize> {
    let mut state = Lex::Plain;
    let mut last = None;
    for (i, &c) in s.iter().enumerate() {
        state = match (state, c) {
            (Lex::Plain, b'\'') => Lex::Single,
            (Lex::Plain, b'"') => Lex::Double,
            (Lex::Plain, b'\\') => Lex::Escape,
            (Lex::Plain, c) if c == delim => {
                last = Some(i);
                Lex::Plain
            }
            (Lex::Single, b'\'') | (Lex::Double, b'"') | (Lex::Escape, _) => Lex::Plain,
            (s, _) => s,
        };
    }
    last
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_defaults() {
        let l = Locator::parse("/tmp/sw");
        assert_eq!((l.module.as_str(), l.address.as_str()), ("vde", "/tmp/sw"));
        let l = Locator::parse("bonding:///tmp/b[mode=0666/grp=users]");
        assert_eq!(l.module, "bonding");
        assert_eq!(l.address, "/tmp/b");
        assert_eq!(l.params.len(), 2);
        assert_eq!(l.params[1].value.as_deref(), Some("users"));
        assert_eq!(Locator::parse("").address, "");
    }

    #[test]
    fn quoting_escapes_and_hex() {
        let l = Locator::parse("hub://'/tmp/a[b'[grp=\"x/y\"/mode=06%366]");
        assert_eq!(l.address, "/tmp/a[b");
        assert_eq!(l.params[0].value.as_deref(), Some("x/y"));
        assert_eq!(l.params[1].value.as_deref(), Some("0666"));
        let l = Locator::parse("vde:///tmp/a\\[b[3]");
        assert_eq!(l.address, "/tmp/a[b");
        assert_eq!(l.params[0].key, "3");
        // %zz is not a byte: kept as written.
        assert_eq!(Locator::parse("/tmp/%zz").address, "/tmp/%zz");
    }

    #[test]
    fn resolve_prefixes_bare_and_unknown() {
        let l = Locator::parse("/tmp/sw[3/m=0660]");
        let r = l
            .resolve(&["port", "portgroup", "group", "mode"], Some("portgroup"))
            .unwrap();
        assert_eq!(r, vec![("portgroup", "3".into()), ("mode", "0660".into())]);
        let l = Locator::parse("hub:///x[foo=1]");
        assert_eq!(
            l.resolve(&["mode"], None).unwrap_err(),
            UnknownKey("foo".into())
        );
        let l = Locator::parse("hub:///x[mode=1/mode=2//]");
        assert_eq!(
            l.resolve(&["mode"], None).unwrap(),
            vec![("mode", "2".into())]
        );
    }

    #[test]
    fn slashed_options() {
        let l = Locator::parse_slashed("vxvde", "239.1.2.3/port=5/v6//vni='a/b'");
        assert_eq!(l.address, "239.1.2.3");
        assert_eq!(l.params.len(), 3);
        assert_eq!(l.params[1].value, None);
        assert_eq!(l.params[2].value.as_deref(), Some("a/b"));
        let l = Locator::parse_slashed("vxlan", "");
        assert_eq!((l.address.as_str(), l.params.len()), ("", 0));
        let r = Locator::parse_slashed("vxlan", "/v=3/po=9")
            .resolve(&["port", "vni", "v6"], None)
            .unwrap();
        assert_eq!(r, vec![("vni", "3".into()), ("port", "9".into())]);
    }

    /// 20,000 random locators over an alphabet rich in the characters the
    /// grammar gives a meaning to: parsing and resolving never panic, and
    /// what comes out keeps its invariants.
    #[test]
    fn random_locators_never_panic() {
        use crate::wire::test_rng::XorShift;
        const PIECES: [&str; 28] = [
            "[", "]", "/", "'", "\"", "\\", "%", "=", ":", "://", "%41", "%zz", "%4", "a", "b",
            "m", "mode", "grp", "port", "0", "7", " ", "é", "€", "\u{0}", "[[", "]]", "//",
        ];
        let known = ["mode", "dirmode", "grp", "port", "portgroup"];
        let mut rng = XorShift::new(0x0bad_5eed);
        for case in 0..20_000 {
            let n = rng.below(24);
            let url: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
            let l = Locator::parse(&url);
            match url.find("://") {
                Some(at) => assert_eq!(l.module, url[..at], "case {case}: {url:?}"),
                None => assert_eq!(l.module, "vde", "case {case}: {url:?}"),
            }
            assert!(l.params.iter().all(|p| !p.key.is_empty()), "{url:?}");
            for bare in [None, Some("portgroup")] {
                if let Ok(r) = l.resolve(&known, bare) {
                    assert!(r.len() <= l.params.len(), "{url:?}");
                    assert!(r.iter().all(|(k, _)| known.contains(k)), "{url:?}");
                    let mut keys: Vec<&str> = r.iter().map(|(k, _)| *k).collect();
                    keys.sort();
                    keys.dedup();
                    assert_eq!(keys.len(), r.len(), "a key twice: {url:?}");
                }
            }
            // Plain text parses to itself.
            let plain: String = url.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            let p = Locator::parse(&plain);
            assert_eq!(
                (p.module.as_str(), p.address.as_str()),
                ("vde", plain.as_str())
            );
            assert!(p.params.is_empty());
        }
    }
}
