//! Command lines: the input's NUL-separated words as the arguments of
//! `vde_plug_rs` and of the node programs. Asserts: no panic; getopt's
//! reading is a fixed point (the options it found, written back as
//! `--name=value` or `-c VALUE`, then `--` and the operands, read the
//! same, POSIXLY_CORRECT or not); operands keep their order; a command
//! comes only after `=`.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::cli::{parse, OtherSide, PLUG_OPTIONS};
use vde_plug_rs::endpoint::node::config::KindName;
use vde_plug_rs::getopt::{Getopt, Item};

fuzz_target!(|data: &[u8]| {
    let argv: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();
    let argv = if data.is_empty() { Vec::new() } else { argv };

    for posixly_correct in [false, true] {
        fixed_point(&argv, posixly_correct);
    }

    if let Ok(o) = parse("vde_plug_rs", argv.clone()) {
        if let OtherSide::Command(cmd) = &o.form.other {
            assert!(argv.iter().any(|w| w == "="));
            assert!(cmd.len() < argv.len());
        }
    }
    let _ = vde_plug_rs::node_cli::parse(argv.clone(), KindName::Bonding);
    let _ = vde_plug_rs::node_cli::parse(argv, KindName::Multi);
});

fn fixed_point(argv: &[OsString], posixly_correct: bool) {
    let getopt = Getopt::new(&PLUG_OPTIONS)
        .stop_words(&["="])
        .posixly_correct(posixly_correct);
    if let Ok(parsed) = getopt.parse(argv) {
        let mut again = Vec::new();
        for (key, value) in &parsed.options {
            let opt = PLUG_OPTIONS.iter().find(|o| o.key == *key).unwrap();
            match (opt.long, value) {
                (Some(l), Some(v)) => {
                    let mut w = format!("--{l}=").into_bytes();
                    w.extend_from_slice(v.as_bytes());
                    again.push(OsString::from_vec(w));
                }
                (Some(l), None) => again.push(format!("--{l}").into()),
                (None, v) => {
                    again.push(format!("-{}", opt.short.unwrap() as char).into());
                    again.extend(v.clone());
                }
            }
        }
        again.push("--".into());
        again.extend(parsed.operands.iter().cloned());
        let reread = getopt.parse(&again).expect("what getopt read reads again");
        assert_eq!(reread, parsed);
        // Operands are a subsequence of the words.
        let mut words = argv.iter();
        for op in &parsed.operands {
            assert!(words.any(|w| w == op), "operand {op:?} out of order");
        }
        let items: Vec<_> = getopt.items(argv).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            items
                .iter()
                .filter(|i| matches!(i, Item::Operand(_)))
                .count(),
            parsed.operands.len()
        );
    }
}
