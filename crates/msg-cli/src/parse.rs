//! Parsers for the human-friendly values on the command line: durations
//! (`500ms`, `10s`), sizes (`64`, `16KiB`) and rates (`100/s`).

use std::time::Duration;

/// Parses a duration: a number with a unit `ms`, `s`, `m` or `h`, or a bare
/// number of seconds. Fractions are allowed (`1.5s`, `0.25`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration (try 500ms, 10s or 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("\"{text}\" is out of range"))
}

/// Parses a size in bytes: a number with an optional binary unit (`B`, `K`,
/// `KB`, `KiB`, `M`, `MB`, `MiB`, `G`, `GB`, `GiB`; all powers of 1024).
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a size (try 64, 16KiB or 1MiB)"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" in \"{text}\" (use B, KiB, MiB or GiB)"
            ));
        }
    };
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("\"{text}\" is too large"))
}

/// Parses a rate in messages per second: `N`, `N/s`, `N/m` (per minute) or
/// `N/h`. Must be positive.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = text.split_once('/').unwrap_or((text, "s"));
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("\"{text}\" is not a rate (try 100 or 100/s)"))?;
    let per_second = match per.trim() {
        "s" => value,
        "m" | "min" => value / 60.0,
        "h" => value / 3600.0,
        other => {
            return Err(format!(
                "unknown period \"{other}\" in \"{text}\" (use /s, /m or /h)"
            ));
        }
    };
    if per_second.is_finite() && per_second > 0.0 {
        Ok(per_second)
    } else {
        Err(format!("\"{text}\" must be a positive rate"))
    }
}

/// A duration the way a person reads it: `42 µs`, `300 ms`, `1.50 ms`,
/// `10 s`, `2.10 s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000_000 {
        format!("{} µs", nanos / 1_000)
    } else if nanos < 1_000_000_000 {
        if nanos % 1_000_000 == 0 {
            format!("{} ms", nanos / 1_000_000)
        } else {
            format!("{:.2} ms", d.as_secs_f64() * 1e3)
        }
    } else if nanos % 1_000_000_000 == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1PiB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn durations_print_in_a_fitting_unit() {
        assert_eq!(format_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(format_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(format_duration(Duration::from_micros(42)), "42 µs");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(format_duration(Duration::from_millis(2100)), "2.10 s");
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(parse_rate("100"), Ok(100.0));
        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("30/m"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("1/fortnight").is_err());
    }
}
