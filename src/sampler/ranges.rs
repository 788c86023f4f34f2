//! The valid range of each sampling parameter, shared by `rfc run`'s flags
//! and the server's 400 answers, so that a value is refused the same way
//! (and with the same words) wherever it comes from. NaN and infinities are
//! outside every range: a NaN temperature would make every probability NaN.
//!
//! The ranges are OpenAI's where OpenAI has the parameter (temperature 0 to
//! 2, penalties -2 to 2), llama.cpp's meaning otherwise.

use std::fmt;

/// One parameter's valid values, and how an error describes them.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// Completes "it must be ...".
    pub describe: &'static str,
    ok: fn(f64) -> bool,
}

/// A value outside its [`Range`].
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    pub param: String,
    pub value: String,
    pub range: &'static str,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is out of range: it must be {}",
            self.param, self.value, self.range
        )
    }
}

impl std::error::Error for OutOfRange {}

impl Range {
    pub fn contains(&self, v: f64) -> bool {
        v.is_finite() && (self.ok)(v)
    }

    /// `v`, or the error naming `param` and the range.
    pub fn check(&self, param: &str, v: f64) -> Result<f64, OutOfRange> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(OutOfRange {
                param: param.to_string(),
                value: v.to_string(),
                range: self.describe,
            })
        }
    }

    /// Parses `s` as a number and checks it (for command-line flags).
    pub fn parse(&self, param: &str, s: &str) -> Result<f64, OutOfRange> {
        match s.trim().parse::<f64>() {
            Ok(v) => self.check(param, v),
            Err(_) => Err(OutOfRange {
                param: param.to_string(),
                value: format!("{s:?}"),
                range: self.describe,
            }),
        }
    }
}

fn temperature(t: f64) -> bool {
    (0.0..=2.0).contains(&t)
}
fn top_p(p: f64) -> bool {
    p > 0.0 && p <= 1.0
}
fn unit(p: f64) -> bool {
    (0.0..=1.0).contains(&p)
}
fn additive_penalty(p: f64) -> bool {
    (-2.0..=2.0).contains(&p)
}
fn positive(p: f64) -> bool {
    p > 0.0
}

/// 0 is greedy.
pub const TEMPERATURE: Range = Range {
    describe: "between 0 and 2",
    ok: temperature,
};
/// 1 is off.
pub const TOP_P: Range = Range {
    describe: "greater than 0 and at most 1",
    ok: top_p,
};
/// 0 is off.
pub const MIN_P: Range = Range {
    describe: "between 0 and 1",
    ok: unit,
};
/// Presence and frequency penalties; 0 is off.
pub const ADDITIVE_PENALTY: Range = Range {
    describe: "between -2 and 2",
    ok: additive_penalty,
};
/// Divides (multiplies) the logits of recent tokens; 1 is off, and 0 would
/// divide by zero.
pub const REPEAT_PENALTY: Range = Range {
    describe: "greater than 0",
    ok: positive,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_outside_every_range() {
        for r in [TEMPERATURE, TOP_P, MIN_P, ADDITIVE_PENALTY, REPEAT_PENALTY] {
            for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                assert!(!r.contains(v), "{} {v}", r.describe);
            }
        }
    }

    #[test]
    fn the_error_names_the_parameter_and_the_range() {
        let e = TOP_P.parse("top_p", "2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "top_p = 2 is out of range: it must be greater than 0 and at most 1"
        );
        assert!(TEMPERATURE.parse("temperature", "warm").is_err());
        assert_eq!(TEMPERATURE.parse("temperature", "0").unwrap(), 0.0);
        assert!(REPEAT_PENALTY.check("repeat_penalty", 0.0).is_err());
        assert!(MIN_P.check("min_p", -1.0).is_err());
    }
}
