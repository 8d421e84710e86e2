//! Numbers given by the user, on the command line or as locator
//! parameters: one strict parser per notation. A value is all digits (no
//! sign, no spaces, no trailing text) and in its range, or it is refused
//! with a message that names it. vdeplug4 reads them with `strtol`/`atoi`,
//! which turn `abc` into 0 and `0999` into 0: a mode nobody can use.

use std::fmt;
use std::ops::RangeInclusive;

/// A value that is not a valid number for `what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNumber {
    pub what: &'static str,
    pub value: String,
    expected: String,
}

impl fmt::Display for BadNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} '{}': expected {}",
            self.what, self.value, self.expected
        )
    }
}

impl std::error::Error for BadNumber {}

/// The largest socket mode: permission bits only.
pub const MAX_MODE: u32 = 0o777;
/// The largest directory mode: set-gid and sticky bits too.
pub const MAX_DIRMODE: u32 = 0o7777;

/// An octal mode such as `0660` or `660` (`0o660` too), at most `max`.
pub fn octal(what: &'static str, s: &str, max: u32) -> Result<u32, BadNumber> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let ok = !digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    ok.then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .filter(|&m| m <= max)
        .ok_or_else(|| BadNumber {
            what,
            value: s.to_string(),
            expected: format!("an octal mode from 0 to 0{max:o}"),
        })
}

/// A decimal whole number in `range`.
pub fn decimal(what: &'static str, s: &str, range: RangeInclusive<u64>) -> Result<u64, BadNumber> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| s.parse::<u64>().ok())
        .flatten()
        .filter(|n| range.contains(n))
        .ok_or_else(|| BadNumber {
            what,
            value: s.to_string(),
            expected: format!("a whole number from {} to {}", range.start(), range.end()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes() {
        assert_eq!(octal("mode", "0660", MAX_MODE), Ok(0o660));
        assert_eq!(octal("mode", "660", MAX_MODE), Ok(0o660));
        assert_eq!(octal("mode", "0o640", MAX_MODE), Ok(0o640));
        assert_eq!(octal("mode", "0", MAX_MODE), Ok(0));
        assert_eq!(octal("dirmode", "02711", MAX_DIRMODE), Ok(0o2711));
        for bad in [
            "", "abc", "0999", "8", "06a0", " 0600", "0600 ", "-600", "+600", "0o",
        ] {
            assert!(octal("mode", bad, MAX_MODE).is_err(), "{bad:?}");
        }
        assert!(octal("mode", "02700", MAX_MODE).is_err());
        assert!(octal("dirmode", "017777", MAX_DIRMODE).is_err());
        assert!(octal("mode", "77777777777777777777", MAX_DIRMODE).is_err());
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("port", "3", 0..=10), Ok(3));
        assert_eq!(decimal("port", "007", 0..=10), Ok(7));
        for bad in [
            "",
            "x",
            "3x",
            "-1",
            "+1",
            " 1",
            "1.5",
            "11",
            "99999999999999999999999",
        ] {
            assert!(decimal("port", bad, 0..=10).is_err(), "{bad:?}");
        }
        let e = decimal("hashsize", "0", 1..=10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid hashsize '0': expected a whole number from 1 to 10"
        );
    }
}
