//! The words of a `cmd://` locator, cut as vdeplug4's cmd module cuts them
//! (it hands the text after `cmd://` to libexecs' `s2argv`, as it stands:
//! no `[...]` parameters, no `%XX`):
//!
//! - blanks (space, tab, newline) separate words;
//! - `'...'` keeps everything inside as it is; `"..."` too, except that a
//!   backslash there keeps the next character and stays itself (`"a\"b"`
//!   is `a\"b`);
//! - outside quotes a backslash takes the next character as it is, and is
//!   dropped (`a\ b` is one word `a b`; a backslash at the end is dropped);
//! - quotes and escapes join their word (`x"y z"` is `xy z`);
//! - `;` ends the command: only the first one runs;
//! - `$NAME` at the start of a word is a word of its own with an empty
//!   value (libexecs looks no variable up unless told to; vde_plug does
//!   not tell it); a `$` inside a word is dropped.

const BLANKS: [char; 3] = [' ', '\t', '\n'];

/// Where the cut is: between words, or inside a word in some quoting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Between,
    Plain,
    Single,
    Double,
    /// After a backslash inside double quotes.
    DoubleEscaped,
    /// After a backslash outside quotes.
    Escaped,
    /// A `$` began the word: the rest of it is a variable name.
    Variable,
}

/// The command's words (its program first); empty when there is none.
pub fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut at = At::Between;
    for c in text.chars() {
        at = match (at, c) {
            (At::Between, c) if BLANKS.contains(&c) => At::Between,
            (At::Between, ';') => return words,
            (At::Between, '$') => At::Variable,
            (At::Between | At::Plain, '\'') => At::Single,
            (At::Between | At::Plain, '"') => At::Double,
            (At::Between | At::Plain, '\\') => At::Escaped,
            (At::Plain, c) if BLANKS.contains(&c) => {
                words.push(std::mem::take(&mut word));
                At::Between
            }
            (At::Plain, ';') => {
                words.push(word);
                return words;
            }
            (At::Plain, '$') => At::Plain,
            (At::Single, '\'') | (At::Double, '"') => At::Plain,
            (At::Double, '\\') => {
                word.push('\\');
                At::DoubleEscaped
            }
            (At::Single | At::Double, c) => {
                word.push(c);
                at
            }
            (At::DoubleEscaped, c) => {
                word.push(c);
                At::Double
            }
            (At::Between | At::Plain | At::Escaped, c) => {
                word.push(c);
                At::Plain
            }
            (At::Variable, c) if BLANKS.contains(&c) => {
                words.push(String::new());
                At::Between
            }
            (At::Variable, ';') => {
                words.push(String::new());
                return words;
            }
            (At::Variable, _) => At::Variable,
        };
    }
    match at {
        At::Between => {}
        At::Variable => words.push(String::new()),
        _ => words.push(word),
    }
    words
}

#[cfg(test)]
mod tests {
    use super::words;

    /// Cases checked against the C cmd module (tests/cli.rs runs them).
    #[test]
    fn as_vdeplug4_cuts_them() {
        let cases: [(&str, &[&str]); 18] = [
            ("touch /d/a\\ b", &["touch", "/d/a b"]),
            ("touch '/d/s q'", &["touch", "/d/s q"]),
            ("touch /d/br[3]", &["touch", "/d/br[3]"]),
            ("touch /d/pc%41", &["touch", "/d/pc%41"]),
            (
                "sh -c 'touch /d/sq; exec sleep 5'",
                &["sh", "-c", "touch /d/sq; exec sleep 5"],
            ),
            ("cat[foo=1]", &["cat[foo=1]"]),
            ("touch /d/x$y", &["touch", "/d/xy"]),
            ("touch $HOME /d/v", &["touch", "", "/d/v"]),
            ("touch \"/d/q\\\"x\"", &["touch", "/d/q\\\"x"]),
            ("touch /d/m1; touch /d/m2", &["touch", "/d/m1"]),
            ("touch /d/semi;x", &["touch", "/d/semi"]),
            ("touch '' /d/e", &["touch", "", "/d/e"]),
            ("touch /d/t\\", &["touch", "/d/t"]),
            ("touch /d/\"dq x\"y", &["touch", "/d/dq xy"]),
            ("  a\tb\nc  ", &["a", "b", "c"]),
            ("a 'unterminated q", &["a", "unterminated q"]),
            ("$", &[""]),
            ("\\", &[""]),
        ];
        for (text, want) in cases {
            assert_eq!(words(text), want, "{text:?}");
        }
        assert!(words("").is_empty());
        assert!(words(" ;x").is_empty());
    }
}
