//! A command line read with glibc's `getopt_long` rules, from a table of
//! options (vde_plug's own parser is getopt; a user's habits and scripts
//! follow its rules, not those of any other parser):
//!
//! - `-abc` is `-a -b -c`; an option that takes a value takes the rest of
//!   its cluster (`-mVALUE`) or else the next word, whatever that word is
//!   (`-D -v` describes the plug as `-v`; `-p --` writes a pid file `--`);
//! - `--name=value` or `--name value`; a long name may be shortened to any
//!   prefix that names one option only (an exact name always wins);
//! - options and operands mix (getopt's permutation): operands are kept
//!   in order, and a lone `--` ends the options, the words after it are
//!   operands (`-` alone is an operand);
//! - an option given twice is given twice: the caller applies them in
//!   order, so the last one wins.
//!
//! Two switches from glibc are the caller's: `posixly_correct` (options
//! end at the first operand, as with `POSIXLY_CORRECT` in the environment),
//! and stop words: an operand such as vde_plug's `=` after which every word
//! is an operand (getopt would read options there too).
//!
//! Errors carry getopt's own sentences, without the program name.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// One option of a table: a long name, a short letter, or both.
#[derive(Debug, Clone, Copy)]
pub struct Opt<K> {
    pub key: K,
    pub long: Option<&'static str>,
    pub short: Option<u8>,
    pub takes_value: bool,
}

impl<K> Opt<K> {
    /// `--long` (and `-s`) with no value.
    pub const fn flag(key: K, long: &'static str, short: Option<u8>) -> Opt<K> {
        Opt {
            key,
            long: Some(long),
            short,
            takes_value: false,
        }
    }

    /// `--long VALUE` (and `-s VALUE`).
    pub const fn value(key: K, long: &'static str, short: Option<u8>) -> Opt<K> {
        Opt {
            key,
            long: Some(long),
            short,
            takes_value: true,
        }
    }

    /// `-s VALUE` with no long name.
    pub const fn short_value(key: K, short: u8) -> Opt<K> {
        Opt {
            key,
            long: None,
            short: Some(short),
            takes_value: true,
        }
    }
}

/// What a command line held: the options in the order given, each with
/// its value, and the operands in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<K> {
    pub options: Vec<(K, Option<OsString>)>,
    pub operands: Vec<OsString>,
}

/// A word getopt turns away, in getopt's words (the program name goes in
/// front: `NAME: {error}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetoptError {
    /// `-x`: no such letter.
    InvalidShort(u8),
    /// `--xyz` (the whole word after `--`, `=value` included).
    Unrecognized(OsString),
    /// `--p` matches several names: the word and every name it matches.
    Ambiguous(OsString, Vec<&'static str>),
    /// `-p` last on the line.
    ShortNeedsValue(u8),
    /// `--pidfile` last on the line (the full name).
    LongNeedsValue(&'static str),
    /// `--daemon=1` (the full name).
    LongTakesNoValue(&'static str),
}

impl fmt::Display for GetoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |w: &OsString| String::from_utf8_lossy(w.as_bytes()).into_owned();
        match self {
            GetoptError::InvalidShort(c) => write!(f, "invalid option -- '{}'", *c as char),
            GetoptError::Unrecognized(w) => write!(f, "unrecognized option '--{}'", text(w)),
            GetoptError::Ambiguous(w, names) => {
                write!(f, "option '--{}' is ambiguous; possibilities:", text(w))?;
                names.iter().try_for_each(|n| write!(f, " '--{n}'"))
            }
            GetoptError::ShortNeedsValue(c) => {
                write!(f, "option requires an argument -- '{}'", *c as char)
            }
            GetoptError::LongNeedsValue(n) => write!(f, "option '--{n}' requires an argument"),
            GetoptError::LongTakesNoValue(n) => {
                write!(f, "option '--{n}' doesn't allow an argument")
            }
        }
    }
}

impl std::error::Error for GetoptError {}

/// A parser over one table of options.
pub struct Getopt<'t, K> {
    table: &'t [Opt<K>],
    posixly_correct: bool,
    stop_words: &'t [&'t str],
}

impl<'t, K: Copy + PartialEq> Getopt<'t, K> {
    pub fn new(table: &'t [Opt<K>]) -> Self {
        Getopt {
            table,
            posixly_correct: false,
            stop_words: &[],
        }
    }

    /// Options end at the first operand (glibc does so when the
    /// environment holds `POSIXLY_CORRECT`).
    pub fn posixly_correct(mut self, on: bool) -> Self {
        self.posixly_correct = on;
        self
    }

    /// Operands after which every word is an operand; the stop word itself
    /// is kept among the operands.
    pub fn stop_words(mut self, words: &'t [&'t str]) -> Self {
        self.stop_words = words;
        self
    }

    /// Reads `args` (the words after the program name) one item at a
    /// time, as getopt hands them out: a caller that acts on each option as
    /// it comes (`-h`) never sees an error further on.
    pub fn items<'a>(&'a self, args: &'a [OsString]) -> Items<'a, 't, K> {
        Items {
            getopt: self,
            words: args.iter(),
            cluster: &[],
            only_operands: false,
        }
    }

    /// Reads the whole of `args`; the first error ends it.
    pub fn parse(&self, args: &[OsString]) -> Result<Parsed<K>, GetoptError> {
        let mut parsed = Parsed {
            options: Vec::new(),
            operands: Vec::new(),
        };
        for item in self.items(args) {
            match item? {
                Item::Opt(key, value) => parsed.options.push((key, value)),
                Item::Operand(word) => parsed.operands.push(word),
            }
        }
        Ok(parsed)
    }

    /// The option named by `--name[=value]`, `name[=value]` being `word`.
    fn long(&self, word: &[u8]) -> Result<&'t Opt<K>, GetoptError> {
        let name = &word[..word.iter().position(|&b| b == b'=').unwrap_or(word.len())];
        let named = |o: &&Opt<K>| o.long.is_some_and(|l| l.as_bytes().starts_with(name));
        let exact = self
            .table
            .iter()
            .find(|o| o.long.is_some_and(|l| l.as_bytes() == name));
        if let Some(o) = exact {
            return Ok(o);
        }
        // Names that all mean one option (the same key, taking a value or
        // not alike) are no ambiguity, as with getopt.
        let mut matches = self.table.iter().filter(named);
        let first = matches.next();
        let other = matches
            .find(|o| first.is_some_and(|f| f.key != o.key || f.takes_value != o.takes_value));
        match (first, other) {
            (Some(o), None) => Ok(o),
            (None, _) => Err(GetoptError::Unrecognized(OsString::from_vec(word.to_vec()))),
            (Some(_), Some(_)) => Err(GetoptError::Ambiguous(
                OsString::from_vec(word.to_vec()),
                self.table
                    .iter()
                    .filter(named)
                    .filter_map(|o| o.long)
                    .collect(),
            )),
        }
    }
}

/// One thing a command line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<K> {
    Opt(K, Option<OsString>),
    Operand(OsString),
}

/// The items of a command line, in getopt's order (see [`Getopt::items`]).
pub struct Items<'a, 't, K> {
    getopt: &'a Getopt<'t, K>,
    words: std::slice::Iter<'a, OsString>,
    /// Letters of a short cluster still to read (`-dl` after `-d`).
    cluster: &'a [u8],
    /// After `--`, a stop word, or (posixly correct) the first operand.
    only_operands: bool,
}

impl<K: Copy + PartialEq> Items<'_, '_, K> {
    /// The next word, as the value of an option.
    fn value(&mut self) -> Option<OsString> {
        self.words.next().cloned()
    }

    fn next_letter(&mut self) -> Result<Item<K>, GetoptError> {
        let (&c, attached) = self.cluster.split_first().expect("a letter is left");
        self.cluster = attached;
        let opt = self
            .getopt
            .table
            .iter()
            .find(|o| o.short == Some(c))
            .ok_or(GetoptError::InvalidShort(c))?;
        if !opt.takes_value {
            return Ok(Item::Opt(opt.key, None));
        }
        let value = if attached.is_empty() {
            self.value().ok_or(GetoptError::ShortNeedsValue(c))?
        } else {
            self.cluster = &[];
            OsStr::from_bytes(attached).to_os_string()
        };
        Ok(Item::Opt(opt.key, Some(value)))
    }

    fn next_long(&mut self, word: &[u8]) -> Result<Item<K>, GetoptError> {
        let opt = self.getopt.long(word)?;
        let full = opt.long.unwrap_or_default();
        let eq = word.iter().position(|&b| b == b'=');
        let value = match (opt.takes_value, eq) {
            (false, None) => None,
            (false, Some(_)) => return Err(GetoptError::LongTakesNoValue(full)),
            (true, Some(at)) => Some(OsString::from_vec(word[at + 1..].to_vec())),
            (true, None) => Some(self.value().ok_or(GetoptError::LongNeedsValue(full))?),
        };
        Ok(Item::Opt(opt.key, value))
    }
}

impl<K: Copy + PartialEq> Iterator for Items<'_, '_, K> {
    type Item = Result<Item<K>, GetoptError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.cluster.is_empty() {
            return Some(self.next_letter());
        }
        let mut word = self.words.next()?;
        if !self.only_operands && word.as_bytes() == b"--" {
            self.only_operands = true;
            word = self.words.next()?;
        }
        let bytes = word.as_bytes();
        if self.only_operands || bytes.len() < 2 || bytes[0] != b'-' {
            let g = self.getopt;
            if g.posixly_correct || g.stop_words.iter().any(|s| s.as_bytes() == bytes) {
                self.only_operands = true;
            }
            return Some(Ok(Item::Operand(word.clone())));
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            return Some(self.next_long(long));
        }
        self.cluster = &bytes[1..];
        Some(self.next_letter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum K {
        Pidfile,
        Daemon,
        Port,
        Port2,
        Descr,
        Log,
        C,
    }

    const TABLE: [Opt<K>; 7] = [
        Opt::value(K::Pidfile, "pidfile", Some(b'p')),
        Opt::flag(K::Daemon, "daemon", Some(b'd')),
        Opt::value(K::Port, "port", None),
        Opt::value(K::Port2, "port2", None),
        Opt::value(K::Descr, "descr", Some(b'D')),
        Opt::flag(K::Log, "log", Some(b'l')),
        Opt::short_value(K::C, b'c'),
    ];

    fn words(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    fn parse(s: &[&str]) -> Result<Parsed<K>, GetoptError> {
        Getopt::new(&TABLE).stop_words(&["="]).parse(&words(s))
    }

    fn opts(s: &[&str]) -> Vec<(K, Option<String>)> {
        parse(s)
            .unwrap()
            .options
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| v.into_string().unwrap())))
            .collect()
    }

    fn err(s: &[&str]) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn values_are_the_next_word_whatever_it_is() {
        let v = |k, s: &str| (k, Some(s.to_string()));
        assert_eq!(opts(&["-D", "-vm1"]), [v(K::Descr, "-vm1")]);
        assert_eq!(opts(&["-p", "-d"]), [v(K::Pidfile, "-d")]);
        assert_eq!(opts(&["-p", "--"]), [v(K::Pidfile, "--")]);
        assert_eq!(opts(&["--descr", "="]), [v(K::Descr, "=")]);
        assert_eq!(opts(&["-Dx"]), [v(K::Descr, "x")]);
        assert_eq!(
            opts(&["-dlpF"]),
            [(K::Daemon, None), (K::Log, None), v(K::Pidfile, "F")]
        );
        assert_eq!(opts(&["-dp", "F"]), [(K::Daemon, None), v(K::Pidfile, "F")]);
        assert_eq!(opts(&["--pidfile=a=b"]), [v(K::Pidfile, "a=b")]);
        assert_eq!(opts(&["--pidfile="]), [v(K::Pidfile, "")]);
        assert_eq!(opts(&["-c", "vde_plug"]), [v(K::C, "vde_plug")]);
    }

    #[test]
    fn repeats_come_in_order() {
        let v = |k, s: &str| (k, Some(s.to_string()));
        assert_eq!(
            opts(&["-p", "A", "--pid", "B", "-d", "-d"]),
            [
                v(K::Pidfile, "A"),
                v(K::Pidfile, "B"),
                (K::Daemon, None),
                (K::Daemon, None)
            ]
        );
    }

    #[test]
    fn long_prefixes() {
        assert_eq!(opts(&["--daem"]), [(K::Daemon, None)]);
        assert_eq!(opts(&["--port", "1"])[0].0, K::Port, "an exact name wins");
        assert_eq!(opts(&["--port2=1"])[0].0, K::Port2);
        assert_eq!(
            err(&["--p"]),
            "option '--p' is ambiguous; possibilities: '--pidfile' '--port' '--port2'"
        );
        assert_eq!(
            err(&["--d=x"]),
            "option '--d=x' is ambiguous; possibilities: '--daemon' '--descr'"
        );
        assert_eq!(err(&["--x=3"]), "unrecognized option '--x=3'");
        assert_eq!(err(&["---x"]), "unrecognized option '---x'");
        assert_eq!(
            err(&["--daem=1"]),
            "option '--daemon' doesn't allow an argument"
        );
        assert_eq!(err(&["--pid"]), "option '--pidfile' requires an argument");
        assert!(err(&["--=x"])
            .starts_with("option '--=x' is ambiguous; possibilities: '--pidfile' '--daemon'"));
    }

    #[test]
    fn aliases_are_one_option() {
        const ALIASES: [Opt<K>; 3] = [
            Opt::value(K::Descr, "descr", Some(b'D')),
            Opt::value(K::Descr, "description", None),
            Opt::value(K::Pidfile, "pid", None),
        ];
        let g = Getopt::new(&ALIASES);
        let parsed = g.parse(&words(&["--desc", "x"])).unwrap();
        assert_eq!(parsed.options, [(K::Descr, Some("x".into()))]);
        assert_eq!(
            g.parse(&words(&["--"])).map(|p| p.operands.len()),
            Ok(0),
            "a lone -- is no option"
        );
    }

    #[test]
    fn short_errors() {
        assert_eq!(err(&["-x"]), "invalid option -- 'x'");
        assert_eq!(err(&["-dx"]), "invalid option -- 'x'");
        assert_eq!(err(&["-d-"]), "invalid option -- '-'");
        assert_eq!(err(&["-p"]), "option requires an argument -- 'p'");
        assert_eq!(
            err(&["/a", "-d", "-c"]),
            "option requires an argument -- 'c'"
        );
    }

    #[test]
    fn operands_permute_until_a_stop_word() {
        let p = parse(&["/a", "-d", "-", "/b", "-l"]).unwrap();
        assert_eq!(p.operands, words(&["/a", "-", "/b"]));
        assert_eq!(p.options, [(K::Daemon, None), (K::Log, None)]);
        let p = parse(&["/a", "--", "-d", "=", "x"]).unwrap();
        assert_eq!(p.operands, words(&["/a", "-d", "=", "x"]));
        assert!(p.options.is_empty());
        let p = parse(&["-d", "/a", "=", "ssh", "-p", "22", "--", "-l"]).unwrap();
        assert_eq!(
            p.operands,
            words(&["/a", "=", "ssh", "-p", "22", "--", "-l"])
        );
        assert_eq!(p.options, [(K::Daemon, None)]);
        let posix = Getopt::new(&TABLE).posixly_correct(true);
        let p = posix.parse(&words(&["-d", "/a", "-l"])).unwrap();
        assert_eq!(p.operands, words(&["/a", "-l"]));
        assert_eq!(p.options, [(K::Daemon, None)]);
    }
}
