//! Durations on the command line and the console: `250us`, `500ms`, `30s`,
//! `2m`, `1h`.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number before the unit.
    #[error("bad duration {0:?}: expected a number and a unit, like 500ms, 30s or 2m")]
    Malformed(String),
    /// The unit is missing or unknown.
    #[error("bad duration {0:?}: unit must be one of us, ms, s, m, h")]
    Unit(String),
    /// Too large to represent.
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses `<number><unit>` with unit `us`, `ms`, `s`, `m` or `h`.
///
/// ```
/// use std::time::Duration;
/// use tether_chat::parse_duration;
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("30").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| DurationError::Malformed(clip(text)))?;
    let overflow = || DurationError::Overflow(clip(text));
    match unit {
        "us" => Ok(Duration::from_micros(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(overflow),
        "h" => value
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(overflow),
        _ => Err(DurationError::Unit(clip(text))),
    }
}

/// Writes a duration in the largest unit that keeps it exact, e.g. `1500ms`, `2m`.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        "0ms".to_owned()
    } else if us % 3_600_000_000 == 0 {
        format!("{}h", us / 3_600_000_000)
    } else if us % 60_000_000 == 0 {
        format!("{}m", us / 60_000_000)
    } else if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1_000 == 0 {
        format!("{}ms", us / 1_000)
    } else {
        format!("{us}us")
    }
}

/// Bad input is echoed back in errors, but never more than a screenful.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_duration(" 250us "), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(matches!(
            parse_duration("ms"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(parse_duration("5 s"), Err(DurationError::Unit(_))));
        assert!(matches!(parse_duration("5d"), Err(DurationError::Unit(_))));
        assert!(matches!(
            parse_duration("-5s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration(&format!("{}h", u64::MAX)),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for text in ["0ms", "250us", "1500ms", "30s", "2m", "1h"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
