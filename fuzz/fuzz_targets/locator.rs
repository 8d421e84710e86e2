//! Locators: `module://address[params]` (quotes, escapes, `%XX`), the
//! slashed options of vxlan/vxvde, parameter keys and their prefixes, the
//! words of `cmd://`, `udp://` addresses. Asserts: no panic; the module is
//! the text before `://` (else `vde`); an unquoted text with no brackets is
//! its own address; resolved keys are known ones, each once; `cmd://`
//! text with no quoting is cut at blanks as it stands.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::fuzzing::{cmd_words, locator, resolve_params, slashed_locator, udp_spec};

const KEYS: [&str; 5] = ["mode", "dirmode", "grp", "port", "policy"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (module, address, params) = locator(&text);
    match text.find("://") {
        Some(at) => assert_eq!(module, text[..at]),
        None => assert_eq!(module, "vde"),
    }
    let rest = text.split_once("://").map_or(&*text, |(_, r)| r);
    if !rest.contains(['\'', '"', '\\', '%', '[']) {
        assert_eq!(address, rest);
        assert!(params.is_empty());
    }
    assert!(params.iter().all(|(k, _)| !k.is_empty()));
    if let Ok(resolved) = resolve_params(&text, &KEYS, Some("port")) {
        for (i, (k, _)) in resolved.iter().enumerate() {
            assert!(KEYS.contains(k));
            assert!(resolved[i + 1..].iter().all(|(other, _)| other != k));
        }
    }
    let _ = slashed_locator(rest);
    let words = cmd_words(rest);
    if !rest.contains(['\'', '"', '\\', '$', ';']) {
        let plain: Vec<&str> = rest
            .split([' ', '\t', '\n'])
            .filter(|w| !w.is_empty())
            .collect();
        assert_eq!(words, plain);
    }
    let _ = udp_spec(rest);
});
