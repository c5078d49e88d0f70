//! ISO-8601 date-times as the SDKs send them, and the one format Sluice writes.
//!
//! The SDKs mix `Z` and `+00:00`, milliseconds and microseconds. Sluice accepts any RFC 3339
//! date-time, and one without an offset (taken as UTC), and always writes UTC with
//! milliseconds and `Z`: `2026-11-22T10:08:09.231Z`.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Parses an ISO-8601 date-time. Returns `None` when the text is not one.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    if let Ok(parsed) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(parsed);
    }
    // No offset: read as UTC. Some hand-written HTTP callers send this.
    let local = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    match PrimitiveDateTime::parse(text, local) {
        Ok(parsed) => Some(parsed.assume_utc()),
        Err(_) => None,
    }
}

/// Formats a time as UTC with milliseconds and a `Z`.
pub fn format(at: OffsetDateTime) -> String {
    let utc = at.to_offset(UtcOffset::UTC);
    let layout =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    match utc.format(layout) {
        Ok(text) => text,
        // Years outside 0..=9999 cannot be written in this layout; RFC 3339 covers the rest.
        Err(_) => utc.format(&Rfc3339).unwrap_or_default(),
    }
}

/// Milliseconds since the Unix epoch: how Sluice stores times.
pub fn to_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// A stored time (ms since the epoch) in the one format Sluice writes; `None` out of range.
pub fn format_ms(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let at = parse("2026-11-22T10:08:09.231Z").unwrap();
        let ms = to_ms(at);
        assert_eq!(ms, 1_795_342_089_231);
        assert_eq!(format_ms(ms).as_deref(), Some("2026-11-22T10:08:09.231Z"));
        assert_eq!(format_ms(i64::MAX), None);
    }

    #[test]
    fn accepts_the_formats_the_sdks_send() {
        let cases = [
            ("2026-11-22T10:08:09.231+00:00", "2026-11-22T10:08:09.231Z"),
            (
                "2026-11-22T10:08:09.231192+00:00",
                "2026-11-22T10:08:09.231Z",
            ),
            ("2026-11-22T10:08:09.231Z", "2026-11-22T10:08:09.231Z"),
            ("2026-11-22T10:08:09Z", "2026-11-22T10:08:09.000Z"),
            ("2026-11-22T12:08:09.5+02:00", "2026-11-22T10:08:09.500Z"),
            ("2026-11-22T10:08:09", "2026-11-22T10:08:09.000Z"),
            ("2026-11-22T10:08:09.123", "2026-11-22T10:08:09.123Z"),
        ];
        for (input, expected) in cases {
            let parsed = parse(input).unwrap_or_else(|| panic!("{input} should parse"));
            assert_eq!(format(parsed), expected, "{input}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_date_time() {
        for input in [
            "",
            "yesterday",
            "2026-11-22",
            "2026-13-01T00:00:00Z",
            "1700000000",
        ] {
            assert!(parse(input).is_none(), "{input} should not parse");
        }
    }
}
