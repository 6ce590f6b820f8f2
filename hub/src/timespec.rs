//! Points in time for history queries (`--since`, `?until=`): unix milliseconds, an RFC 3339
//! UTC or offset time (`2026-03-01T12:00:00Z`, `2026-03-01T13:00:00.5+01:00`, a bare date
//! `2026-03-01`), `now`, or a duration ago (`15m`, `-2h`, `7d`, `30s`, `500ms`). And the
//! reverse: milliseconds as RFC 3339 UTC for text output. Calendar arithmetic on the proleptic
//! Gregorian calendar, no time zone database.

/// Why a time could not be read; `input` is what was given.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{input:?} is not a time: {why} (use unix milliseconds, 2026-03-01T12:00:00Z, or an age like 15m, 2h, 7d)"
)]
pub struct TimeError {
    pub input: String,
    pub why: &'static str,
}

/// `input` as unix milliseconds, relative ages counted back from `now_ms`.
pub fn parse(input: &str, now_ms: i64) -> Result<i64, TimeError> {
    let err = |why| TimeError {
        input: input.to_owned(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s == "now" {
        return Ok(now_ms);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| err("too large"));
    }
    if let Some(age) = age_ms(s.strip_prefix('-').unwrap_or(s)) {
        return Ok(now_ms.saturating_sub(age.ok_or_else(|| err("too large"))?));
    }
    rfc3339(s).ok_or_else(|| err("not a date, a time or an age"))
}

/// `15m`, `2h`, `500ms`, ... as milliseconds; `None` if `s` is not shaped like an age,
/// `Some(None)` if it overflows.
fn age_ms(s: &str) -> Option<Option<i64>> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    if n.is_empty() {
        return None;
    }
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    Some(n.parse::<i64>().ok().and_then(|n| n.checked_mul(unit_ms)))
}

fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let day_ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(day_ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms_digits = &f[..digits.min(3)];
        frac_ms = ms_digits.parse::<i64>().ok()? * 10_i64.pow(3 - ms_digits.len() as u32);
        rest = &f[digits..];
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[3..4], ":") => {
            let sign = match &rest[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3_600_000 + om * 60_000)
        }
        _ => return None,
    };
    Some(day_ms + h * 3_600_000 + mi * 60_000 + sec * 1000 + frac_ms - offset_ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (March-based years: leap days fall at a year's end).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `ms` as `2026-03-01T12:00:00.000Z`.
pub fn format(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Milliseconds since the epoch by the system clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_772_366_400_000; // 2026-03-01T12:00:00Z

    #[test]
    fn absolute_and_relative_times() {
        assert_eq!(parse("1772366400000", NOW), Ok(NOW));
        assert_eq!(parse("now", NOW), Ok(NOW));
        assert_eq!(parse("2026-03-01T12:00:00Z", NOW), Ok(NOW));
        assert_eq!(parse("2026-03-01T13:00:00.5+01:00", NOW), Ok(NOW + 500));
        assert_eq!(parse("2026-03-01 11:30:00-00:30", NOW), Ok(NOW));
        assert_eq!(parse("2026-03-01", NOW), Ok(NOW - 12 * 3_600_000));
        assert_eq!(parse("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(parse("2024-02-29T00:00:00Z", NOW), Ok(1_709_164_800_000));
        assert_eq!(parse("15m", NOW), Ok(NOW - 900_000));
        assert_eq!(parse("-2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse("7d", NOW), Ok(NOW - 604_800_000));
        assert_eq!(parse("500ms", NOW), Ok(NOW - 500));
    }

    #[test]
    fn nonsense_is_refused_with_the_input_named() {
        for bad in [
            "",
            "yesterday",
            "2026-02-30",
            "2026-13-01",
            "2026-03-01T25:00:00Z",
            "15x",
            "2026-03-01T12:00:00",
            "-",
            "m",
            "99999999999999999999999",
        ] {
            let e = parse(bad, NOW).expect_err(bad);
            assert_eq!(e.input, bad);
        }
        assert_eq!(
            parse("soon", NOW).expect_err("soon").to_string(),
            "\"soon\" is not a time: not a date, a time or an age (use unix milliseconds, 2026-03-01T12:00:00Z, or an age like 15m, 2h, 7d)"
        );
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format(NOW + 7), "2026-03-01T12:00:00.007Z");
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(-1), "1969-12-31T23:59:59.999Z");
        for ms in [
            0,
            951_782_400_000,
            1_709_164_800_123,
            NOW,
            4_102_444_800_000,
        ] {
            assert_eq!(parse(&format(ms), NOW), Ok(ms));
        }
    }
}
