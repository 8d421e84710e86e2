//! A link's own figures beyond its counters: typed, named values that a
//! node kind lists (bonding: what it learnt of a cable's path, what its
//! reorder buffer did), from which the counters table, the `--status`
//! answer and its JSON are all made. Listing one more is one line:
//!
//! ```text
//! f.section("in_order").count("held", self.ever_held).loss("dropped", self.dropped);
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

/// A figure's value; its type says its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A number of frames or events.
    Count(u64),
    /// A time, kept in µs; shown and given in ms.
    Micros(u64),
    /// A rate in bit/s.
    BitRate(u64),
    Flag(bool),
}

impl Value {
    /// Its name on the status socket.
    fn unit(self) -> &'static str {
        match self {
            Value::Count(_) => "n",
            Value::Micros(_) => "us",
            Value::BitRate(_) => "bps",
            Value::Flag(_) => "flag",
        }
    }

    fn raw(self) -> u64 {
        match self {
            Value::Count(v) | Value::Micros(v) | Value::BitRate(v) => v,
            Value::Flag(b) => u64::from(b),
        }
    }

    fn from_wire(unit: &str, raw: &str) -> Option<Value> {
        let v: u64 = raw.parse().ok()?;
        Some(match unit {
            "n" => Value::Count(v),
            "us" => Value::Micros(v),
            "bps" => Value::BitRate(v),
            "flag" => Value::Flag(v != 0),
            _ => return None,
        })
    }

    /// The number, if it is one (a count, a time in µs, a rate in bit/s).
    pub fn number(self) -> Option<u64> {
        match self {
            Value::Flag(_) => None,
            v => Some(v.raw()),
        }
    }
}

/// One figure: its section (`path`, `in_order`), its name in it, its
/// value, and whether it counts frames lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    pub section: Cow<'static, str>,
    pub name: Cow<'static, str>,
    pub value: Value,
    pub loss: bool,
}

impl Figure {
    /// Its key in the JSON: the name, with the unit of a time or a rate
    /// (`rtt_ms`, `rate_bps`).
    pub fn key(&self) -> String {
        match self.value {
            Value::Micros(_) => format!("{}_ms", self.name),
            Value::BitRate(_) => format!("{}_bps", self.name),
            _ => self.name.to_string(),
        }
    }

    /// Its value as a JSON number or boolean (ms with three decimals: no
    /// float formatting in the binary).
    pub fn json_value(&self) -> String {
        match self.value {
            Value::Micros(us) => format!("{}.{:03}", us / 1000, us % 1000),
            Value::Flag(b) => b.to_string(),
            v => v.raw().to_string(),
        }
    }

    /// As a person reads it in a table: `held 3`, `rtt 2.8 ms`, `rate
    /// 10000 kbit/s`, `silent`; a flag that is off says nothing.
    fn shown(&self) -> Option<String> {
        Some(match self.value {
            Value::Count(n) => format!("{} {n}", self.name),
            Value::Micros(us) => format!("{} {}.{} ms", self.name, us / 1000, us % 1000 / 100),
            Value::BitRate(b) => format!("{} {} kbit/s", self.name, b / 1000),
            Value::Flag(true) => self.name.to_string(),
            Value::Flag(false) => return None,
        })
    }
}

/// The figures of one link, in the order they were listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    list: Vec<Figure>,
}

impl Figures {
    /// Figures of `section` follow.
    pub(crate) fn section(&mut self, name: &'static str) -> Section<'_> {
        Section {
            figures: self,
            name,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Figure> {
        self.list.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The value of `name` in `section`.
    pub fn get(&self, section: &str, name: &str) -> Option<Value> {
        self.list
            .iter()
            .find(|f| f.section == section && f.name == name)
            .map(|f| f.value)
    }

    /// Frames these figures count as lost.
    pub fn lost(&self) -> u64 {
        self.list
            .iter()
            .filter(|f| f.loss)
            .map(|f| f.value.raw())
            .sum()
    }

    /// The sections in order, each with its figures.
    pub fn sections(&self) -> Vec<(&str, Vec<&Figure>)> {
        let mut out: Vec<(&str, Vec<&Figure>)> = Vec::new();
        for f in &self.list {
            match out.iter_mut().find(|(s, _)| *s == f.section) {
                Some((_, figs)) => figs.push(f),
                None => out.push((&f.section, vec![f])),
            }
        }
        out
    }

    /// As a table shows them: `path: rate 10000 kbit/s, rtt 2.8 ms`.
    pub fn shown(&self) -> String {
        let mut out = String::new();
        for (section, figs) in self.sections() {
            let shown: Vec<String> = figs.iter().filter_map(|f| f.shown()).collect();
            if !out.is_empty() {
                out.push_str("  ");
            }
            let _ = write!(out, "{section}: {}", shown.join(", "));
        }
        out
    }

    /// One line of the status socket per figure: `fig SECTION NAME UNIT
    /// VALUE LOSS`, tab-separated.
    pub(crate) fn to_wire(&self, out: &mut String) {
        for f in &self.list {
            let _ = writeln!(
                out,
                "fig\t{}\t{}\t{}\t{}\t{}",
                f.section,
                f.name,
                f.value.unit(),
                f.value.raw(),
                u8::from(f.loss)
            );
        }
    }

    /// Takes one figure line of the status socket (after `fig\t`); false
    /// if it is not one.
    pub(crate) fn push_wire(&mut self, rest: &str) -> bool {
        let f: Vec<&str> = rest.split('\t').collect();
        let [section, name, unit, raw, loss] = f[..] else {
            return false;
        };
        let Some(value) = Value::from_wire(unit, raw) else {
            return false;
        };
        self.list.push(Figure {
            section: Cow::Owned(section.to_string()),
            name: Cow::Owned(name.to_string()),
            value,
            loss: loss == "1",
        });
        true
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Where the figures of one section are listed, one call each.
pub(crate) struct Section<'a> {
    figures: &'a mut Figures,
    name: &'static str,
}

impl Section<'_> {
    fn push(&mut self, name: &'static str, value: Value, loss: bool) -> &mut Self {
        self.figures.list.push(Figure {
            section: Cow::Borrowed(self.name),
            name: Cow::Borrowed(name),
            value,
            loss,
        });
        self
    }

    /// A number of frames or events that are no loss.
    pub(crate) fn count(&mut self, name: &'static str, n: u64) -> &mut Self {
        self.push(name, Value::Count(n), false)
    }

    /// A number of frames lost.
    pub(crate) fn loss(&mut self, name: &'static str, n: u64) -> &mut Self {
        self.push(name, Value::Count(n), true)
    }

    /// A time (shown in ms).
    pub(crate) fn time(&mut self, name: &'static str, t: Duration) -> &mut Self {
        let us = u64::try_from(t.as_micros()).unwrap_or(u64::MAX);
        self.push(name, Value::Micros(us), false)
    }

    /// A time given in µs (shown in ms).
    pub(crate) fn micros(&mut self, name: &'static str, us: u64) -> &mut Self {
        self.push(name, Value::Micros(us), false)
    }

    /// A rate in bit/s.
    pub(crate) fn bit_rate(&mut self, name: &'static str, bps: u64) -> &mut Self {
        self.push(name, Value::BitRate(bps), false)
    }

    pub(crate) fn flag(&mut self, name: &'static str, on: bool) -> &mut Self {
        self.push(name, Value::Flag(on), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Figures {
        let mut f = Figures::default();
        f.section("path")
            .bit_rate("rate", 10_000_000)
            .micros("rtt", 2_812)
            .flag("silent", false);
        f.section("in_order").count("held", 3).loss("dropped", 2);
        f
    }

    #[test]
    fn shown_keyed_and_back_from_the_wire() {
        let f = sample();
        assert_eq!(
            f.shown(),
            "path: rate 10000 kbit/s, rtt 2.8 ms  in_order: held 3, dropped 2"
        );
        let keys: Vec<(String, String)> = f.iter().map(|x| (x.key(), x.json_value())).collect();
        assert_eq!(keys[0], ("rate_bps".into(), "10000000".into()));
        assert_eq!(keys[1], ("rtt_ms".into(), "2.812".into()));
        assert_eq!(keys[2], ("silent".into(), "false".into()));
        assert_eq!(f.lost(), 2);
        let mut wire = String::new();
        f.to_wire(&mut wire);
        let mut back = Figures::default();
        for line in wire.lines() {
            assert!(
                back.push_wire(line.strip_prefix("fig\t").unwrap()),
                "{line}"
            );
        }
        assert_eq!(back, f);
        assert_eq!(back.get("in_order", "held"), Some(Value::Count(3)));
        assert!(!back.push_wire("path\trate\tfurlongs\t3\t0"));
    }
}
