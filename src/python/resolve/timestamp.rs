//! UTC instants from RFC 3339 text (`upload-time`, `--exclude-newer`).

use std::fmt;
use std::str::FromStr;

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros: i64,
}

impl Timestamp {
    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.micros
    }

    pub fn from_micros(micros: i64) -> Timestamp {
        Timestamp { micros }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Error for text that is not an RFC 3339 timestamp or a `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not an RFC 3339 timestamp (2023-10-04T17:20:29Z) or a date (2023-10-04): {reason}"
)]
pub struct TimestampError {
    pub text: String,
    pub reason: &'static str,
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// `YYYY-MM-DD` (midnight UTC that day) or
    /// `YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason| TimestampError {
            text: text.to_owned(),
            reason,
        };
        let b = text.trim().as_bytes();
        let num = |s: &[u8]| -> Option<i64> {
            if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(s).ok()?.parse().ok()
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err("expected YYYY-MM-DD at the start"));
        }
        let (y, mo, d) = match (num(&b[0..4]), num(&b[5..7]), num(&b[8..10])) {
            (Some(y), Some(mo), Some(d)) => (y, mo as u32, d as u32),
            _ => return Err(err("the date is not numeric")),
        };
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
            return Err(err("no such day"));
        }
        let days = days_from_civil(y, mo, d);
        if b.len() == 10 {
            return Ok(Timestamp {
                micros: days * 86_400_000_000,
            });
        }
        let rest = &b[10..];
        if !(rest[0] == b'T' || rest[0] == b't' || rest[0] == b' ') || rest.len() < 9 {
            return Err(err("expected THH:MM:SS after the date"));
        }
        if rest[3] != b':' || rest[6] != b':' {
            return Err(err("expected HH:MM:SS"));
        }
        let (h, mi, s) = match (num(&rest[1..3]), num(&rest[4..6]), num(&rest[7..9])) {
            (Some(h), Some(mi), Some(s)) if h < 24 && mi < 60 && s <= 60 => (h, mi, s),
            _ => return Err(err("the time is out of range")),
        };
        let mut tail = &rest[9..];
        let mut micros = 0i64;
        if let Some(frac) = tail.strip_prefix(b".") {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(err("empty fraction of a second"));
            }
            for (i, c) in frac[..n].iter().enumerate().take(6) {
                micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
            }
            tail = &frac[n..];
        }
        let offset_secs = match tail {
            b"Z" | b"z" => 0,
            [sign @ (b'+' | b'-'), hh @ .., b':', m1, m2] if hh.len() == 2 => {
                let (Some(oh), Some(om)) = (num(hh), num(&[*m1, *m2])) else {
                    return Err(err("bad UTC offset"));
                };
                let o = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -o
                } else {
                    o
                }
            }
            [] => return Err(err("no time zone (Z or ±HH:MM)")),
            _ => return Err(err("bad time zone")),
        };
        let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
        Ok(Timestamp {
            micros: secs * 1_000_000 + micros,
        })
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with microseconds only when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.micros.div_euclid(1_000_000);
        let frac = self.micros.rem_euclid(1_000_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        )?;
        if frac != 0 {
            write!(f, ".{frac:06}")?;
        }
        write!(f, "Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_orders() {
        assert_eq!(ts("1970-01-01T00:00:00Z").as_micros(), 0);
        assert_eq!(ts("1970-01-02").as_micros(), 86_400_000_000);
        assert_eq!(
            ts("2023-10-04T17:20:29.123456Z").to_string(),
            "2023-10-04T17:20:29.123456Z"
        );
        assert_eq!(ts("2023-10-04T19:20:29+02:00"), ts("2023-10-04T17:20:29Z"));
        assert_eq!(
            ts("2000-02-29T00:00:00Z").to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert!(ts("2023-10-04") < ts("2023-10-04T00:00:00.000001Z"));
        assert_eq!(
            ts("2024-03-01T12:00:00.5Z").as_micros() % 1_000_000,
            500_000
        );
        for bad in [
            "",
            "2023-13-01",
            "2023-02-29",
            "2023-10-04T17:20",
            "2023-10-04T17:20:29",
            "2023-10-04T25:00:00Z",
            "yesterday",
            "2023-10-04T17:20:29.Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }
}
