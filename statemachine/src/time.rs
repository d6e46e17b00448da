//! Formatting of millisecond timestamps for human-readable messages.
//!
//! The state machine has no date library: notification texts need only an RFC 3339 rendering
//! of a UTC instant, which the civil-from-days algorithm gives exactly and deterministically.

use crate::ids::TimestampMs;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// `2026-11-21T16:05:00.000Z` for a timestamp in milliseconds since the epoch.
pub fn format_rfc3339(ts: TimestampMs) -> String {
    let days = ts.div_euclid(MILLIS_PER_DAY);
    let millis_of_day = ts.rem_euclid(MILLIS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = millis_of_day / 1_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        millis_of_day % 1_000
    )
}

/// Year, month, day of the proleptic Gregorian calendar for days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_795_277_106_789),
            "2026-11-21T16:05:06.789Z"
        );
    }
}
