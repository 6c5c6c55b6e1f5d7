//! How the pages write sizes, times and links.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What stays as is in a path segment: unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// What stays as is in a key used as a path tail: also `/`, which separates its parts.
const KEY_PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// A byte count for a person: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)] // one decimal is all a person reads
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix ms as `2026-11-29 03:15 UTC` (the panel's users are in many time zones: one clock).
pub(crate) fn time(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `YYYY-MM-DD` (an `<input type="date">`) as Unix ms at 00:00 UTC.
pub(crate) fn date_ms(date: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format).ok()?;
    i64::try_from(day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
}

/// A query string from pairs, every value percent-encoded; empty values left out.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, SEGMENT)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `BUCKET/KEY` as a path tail: the bucket and each part of the key encoded, `/` kept.
pub(crate) fn file_path(bucket: &str, key: &str) -> String {
    format!("{}/{}", utf8_percent_encode(bucket, SEGMENT), utf8_percent_encode(key, KEY_PATH))
}

/// The page of a file.
pub(crate) fn file_href(bucket: &str, key: &str) -> String {
    format!("/file/{}", file_path(bucket, key))
}

/// The download of a file: the API's route, which answers with a redirect to a presigned URL
/// on the node geo routing picks.
pub(crate) fn download_href(bucket: &str, key: &str) -> String {
    format!("/api/v1/files/{}", file_path(bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_times_and_links_read_well() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(time(1_700_000_000_123), "2023-11-14 22:13 UTC");
        assert_eq!(date_ms("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(date_ms("14/11/2023"), None);
        assert_eq!(query(&[("a", "x y&z"), ("b", ""), ("c", "1")]), "a=x%20y%26z&c=1");
        assert_eq!(file_href("films", "2026/a b#1.mp4"), "/file/films/2026/a%20b%231.mp4");
    }
}
