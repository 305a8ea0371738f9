//! Parsing and printing of byte sizes ("64KiB", "1MiB", "4k") and durations ("10s", "500ms").
//!
//! Used as clap `value_parser`s, so errors are human sentences.

use std::time::Duration;

/// Largest size accepted (1 PiB): keeps every arithmetic on sizes far from overflow.
pub const SIZE_MAX: u64 = 1 << 50;
/// Longest duration accepted (30 days).
pub const DURATION_MAX: Duration = Duration::from_secs(30 * 24 * 3600);

/// Splits `s` into a leading decimal number (digits with at most one `.`) and its unit suffix.
fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    if num.is_empty() || num.matches('.').count() > 1 || num == "." {
        return Err(format!("`{s}` does not start with a number"));
    }
    let value: f64 = num.parse().map_err(|e| format!("`{num}` is not a number: {e}"))?;
    Ok((value, unit.trim()))
}

/// Parses a byte size: a number with an optional unit, case-insensitive.
///
/// Binary units: `k`, `kib`, `m`, `mib`, `g`, `gib`, `t`, `tib` (powers of 1024, like fio).
/// Decimal units: `kb`, `mb`, `gb`, `tb` (powers of 1000). No unit or `b` means bytes.
/// Fractions are allowed when the result is a whole number of bytes (`1.5KiB` = 1536).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (value, unit) = split_number(s)?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use B, KiB, MiB, GiB, TiB, k, m, g, KB, MB, GB)"
            ));
        }
    };
    let bytes = value * mult as f64;
    if bytes > SIZE_MAX as f64 {
        return Err(format!("`{s}` is larger than the maximum of {SIZE_MAX} bytes"));
    }
    if bytes.fract() != 0.0 {
        return Err(format!("`{s}` is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Parses a duration: a number with a unit `ns`, `us`, `ms`, `s`, `m`/`min` or `h`; a bare number
/// means seconds. Fractions are allowed (`1.5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (value, unit) = split_number(s)?;
    let secs_per_unit = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!("unknown duration unit `{other}` in `{s}` (use ms, s, m or h)"));
        }
    };
    let secs = value * secs_per_unit;
    if secs > DURATION_MAX.as_secs_f64() {
        return Err(format!("`{s}` is longer than the maximum of 30 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Formats a byte count with a binary unit, e.g. `1 MiB`, `64 KiB`, `1.5 GiB`.
#[cfg(any(feature = "storage", test))]
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("64kib"), Ok(64 * 1024));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size(" 8 MiB "), Ok(8 << 20));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes() {
        for bad in ["", "KiB", "abc", "1.2.3", "-1", "1XB", "0.3", "1.0001KiB", "2PiB", "5000TiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("3S"), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "s", "ten", "1d", "1..5s", "-3s", "1000h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1000), "1000 B");
        assert_eq!(format_size(64 * 1024), "64 KiB");
        assert_eq!(format_size(1 << 20), "1 MiB");
        assert_eq!(format_size(3 << 29), "1.50 GiB");
    }
}
