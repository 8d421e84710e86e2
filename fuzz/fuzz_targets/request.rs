//! The control request a vde client sends to a node (magic, version, type,
//! `sockaddr_un`, description), and the `sockaddr_un` alone (also a
//! switch's answer). The input is copied to a buffer of its exact length,
//! so a read past it is a panic. Asserts: no panic; an accepted request has
//! a legal length and a description inside it with no NUL; what is read
//! back from an accepted request, written again, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vde_plug_rs::wire::request::{emit, MAX_DESCRIPTION, MAX_REQUEST_LEN};
use vde_plug_rs::wire::{RequestV3, SockaddrUn, REQUEST_HEADER_LEN, SOCKADDR_UN_LEN};

fuzz_target!(|data: &[u8]| {
    let exact = data.to_vec();
    if let Ok(r) = RequestV3::new_checked(&exact[..]) {
        assert!((REQUEST_HEADER_LEN..=MAX_REQUEST_LEN).contains(&data.len()));
        let d = r.description();
        assert!(d.len() <= data.len() - REQUEST_HEADER_LEN && !d.contains(&0));
        if let Ok(path) = r.sock().path() {
            let mut buf = [0u8; MAX_REQUEST_LEN];
            let n = emit(&mut buf, r.req_type(), path, d).expect("a path read fits back");
            let back = RequestV3::new_checked(&buf[..n]).expect("an emitted request is valid");
            assert_eq!(back.req_type(), r.req_type());
            assert_eq!(back.sock().path().unwrap(), path);
            assert_eq!(back.description(), &d[..d.len().min(MAX_DESCRIPTION - 1)]);
        }
    }
    if let Ok(s) = SockaddrUn::new_checked(&exact[..]) {
        assert!(data.len() >= SOCKADDR_UN_LEN);
        let _ = s.family();
        if let Ok(path) = s.path() {
            use std::os::unix::ffi::OsStrExt;
            let p = path.as_os_str().as_bytes();
            assert!(!p.is_empty() && p.len() < 108 && !p.contains(&0));
            let mut buf = [0u8; SOCKADDR_UN_LEN];
            let back = SockaddrUn::emit(&mut buf[..], path).expect("a path read fits back");
            assert_eq!(back.path().unwrap(), path);
            assert_eq!(back.family(), s.family());
        }
    }
});
