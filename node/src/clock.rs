//! Times for people: in the user's local time zone (`TZ`, else the system's
//! `/etc/localtime`, else UTC), as jiff finds it. JSON output keeps milliseconds since the
//! epoch; only human output goes through here.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The zone to show times in.
fn zone() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// `ms` since the epoch in `tz`, with `fmt` (strftime).
fn format_in(ms: u64, tz: &TimeZone, fmt: &str) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_zoned(tz.clone()).strftime(fmt).to_string(),
        Err(_) => "(bad time)".into(),
    }
}

/// "YYYY-MM-DD HH:MM" in the local zone.
pub fn local(ms: u64) -> String {
    format_in(ms, &zone(), "%Y-%m-%d %H:%M")
}

/// "YYYY-MM-DD HH:MM:SS" in the local zone (receipt times, where minutes are too coarse).
pub fn local_secs(ms: u64) -> String {
    format_in(ms, &zone(), "%Y-%m-%d %H:%M:%S")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_a_named_zone_and_utc() {
        assert_eq!(
            format_in(0, &TimeZone::UTC, "%Y-%m-%d %H:%M"),
            "1970-01-01 00:00"
        );
        assert_eq!(
            format_in(1_700_000_000_000, &TimeZone::UTC, "%Y-%m-%d %H:%M"),
            "2023-11-14 22:13"
        );
        // A fixed offset stands in for a named zone (no tz database needed in CI).
        let plus2 = TimeZone::fixed(jiff::tz::offset(2));
        assert_eq!(
            format_in(1_700_000_000_000, &plus2, "%Y-%m-%d %H:%M:%S"),
            "2023-11-15 00:13:20"
        );
    }
}
