//! Reading the session cookie from a request and writing `Set-Cookie`.
//!
//! Hand-written because the job is small and hot: find at most two
//! well-formed keys under one name, without allocating, in any bytes a
//! client sends; and format `Set-Cookie` exactly as Django does.

use std::fmt::Write as _;

use http::HeaderValue;
use http::header::GetAll;
use time::{Duration, OffsetDateTime};

use crate::session::Candidates;
use crate::{KeyKind, SessionKey, Settings};

/// What the request's cookies say about the session.
#[derive(Debug, Default, Clone)]
pub(crate) struct Incoming {
    /// Whether any cookie carried the session cookie's name, valid or not.
    pub(crate) present: bool,
    /// The first two distinct well-formed keys, in the order sent.
    pub(crate) candidates: Candidates,
    /// How many values the session cookie's name carried, valid or not.
    pub(crate) values: usize,
    /// How many of the values read (those up to the second well-formed key)
    /// were not well-formed keys.
    pub(crate) malformed: usize,
}

/// Finds the session cookie among all `Cookie` headers (`cookies`).
///
/// Values that are not 8–40 characters of `[a-z0-9]` (after removing one pair
/// of double quotes, as Django's cookie parser does) are ignored: they are no
/// session and cost no store lookup. Non-UTF-8 bytes are harmless.
pub(crate) fn read(cookies: GetAll<'_, HeaderValue>, name: &str, kind: KeyKind) -> Incoming {
    let mut incoming = Incoming::default();
    let name = name.as_bytes();
    for header in cookies {
        let mut rest = header.as_bytes();
        while !rest.is_empty() {
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            let pair = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            // The name is a token (no `=`, no spaces: `Settings::validate`),
            // so `name` then `=` is the whole test.
            let Some(value) = pair
                .trim_ascii_start()
                .strip_prefix(name)
                .and_then(|after| after.trim_ascii_start().strip_prefix(b"="))
            else {
                continue;
            };
            incoming.present = true;
            incoming.values += 1;
            if incoming.candidates.is_full() {
                continue;
            }
            let mut value = value.trim_ascii();
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            match SessionKey::parse_kind(value, kind) {
                Ok(key) => {
                    incoming.candidates.push(key);
                }
                Err(_) => incoming.malformed += 1,
            }
        }
    }
    incoming
}

/// `Set-Cookie` for a saved session, in Django's attribute order.
///
/// `max_age` is `None` for a browser-session cookie (neither `Max-Age` nor `expires`).
pub(crate) fn set_cookie(
    settings: &Settings,
    key: &SessionKey,
    max_age: Option<i64>,
    now: OffsetDateTime,
) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(&settings.cookie_name);
    out.push('=');
    out.push_str(key.as_str());
    attributes(&mut out, settings, max_age.map(|age| (age, now)));
    out
}

/// `Set-Cookie` that removes the session cookie: empty value, `Max-Age=0`,
/// `expires` in 1970, same path, domain and flags.
pub(crate) fn removal_cookie(settings: &Settings) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(&settings.cookie_name);
    out.push_str("=\"\"");
    attributes(&mut out, settings, Some((0, OffsetDateTime::UNIX_EPOCH)));
    out
}

fn attributes(out: &mut String, settings: &Settings, lifetime: Option<(i64, OffsetDateTime)>) {
    if let Some(domain) = &settings.cookie_domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some((age, now)) = lifetime {
        // A past date is a past date: one before the epoch (an idle expiry
        // of `i64::MIN` seconds reaches year -9999, no HTTP date) is sent
        // as the epoch, as the removal cookie is.
        let expires = now
            .saturating_add(Duration::seconds(age))
            .max(OffsetDateTime::UNIX_EPOCH);
        out.push_str("; expires=");
        http_date(out, expires);
    }
    if settings.cookie_httponly {
        out.push_str("; HttpOnly");
    }
    if let Some((age, _)) = lifetime {
        out.push_str("; Max-Age=");
        push_decimal(out, age.max(0).unsigned_abs());
    }
    out.push_str("; Path=");
    out.push_str(&settings.cookie_path);
    if let Some(same_site) = settings.cookie_samesite {
        out.push_str("; SameSite=");
        out.push_str(same_site.as_str());
    }
    if settings.cookie_secure {
        out.push_str("; Secure");
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate), as Django's `http_date`.
///
/// Every cookie set within one second has the same `expires`, so each
/// thread keeps the last date it wrote and reuses it for the same second.
fn http_date(out: &mut String, at: OffsetDateTime) {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let second = at.unix_timestamp();
    LAST.with_borrow_mut(|(last, text)| {
        if *last != second {
            text.clear();
            format_http_date(text, at);
            *last = second;
        }
        out.push_str(text);
    });
}

fn format_http_date(out: &mut String, at: OffsetDateTime) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let at = at.to_offset(time::UtcOffset::UTC);
    // Digits pushed by hand: this runs on every response that sets a cookie.
    out.push_str(DAYS[usize::from(at.weekday().number_days_from_monday())]);
    out.push_str(", ");
    push_two_digits(out, at.day());
    out.push(' ');
    out.push_str(MONTHS[usize::from(u8::from(at.month()) - 1)]);
    out.push(' ');
    match u16::try_from(at.year()) {
        Ok(year) if year <= 9999 => {
            #[allow(clippy::cast_possible_truncation)] // each part is below 100
            {
                push_two_digits(out, (year / 100) as u8);
                push_two_digits(out, (year % 100) as u8);
            }
        }
        // Years before 1 AD only (`time` stops at 9999).
        _ => {
            let _ = write!(out, "{:04}", at.year());
        }
    }
    out.push(' ');
    push_two_digits(out, at.hour());
    out.push(':');
    push_two_digits(out, at.minute());
    out.push(':');
    push_two_digits(out, at.second());
    out.push_str(" GMT");
}

/// `n` in decimal.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        #[allow(clippy::cast_possible_truncation)] // a digit
        {
            digits[start] = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// `n` (below 100) as two decimal digits.
fn push_two_digits(out: &mut String, n: u8) {
    out.push(char::from(b'0' + n / 10 % 10));
    out.push(char::from(b'0' + n % 10));
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;
    use http::header::COOKIE;
    use time::macros::datetime;

    use super::*;
    use crate::SameSite;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    fn read_map(map: &HeaderMap, name: &str, kind: KeyKind) -> Incoming {
        read(map.get_all(COOKIE), name, kind)
    }

    fn keys(incoming: &Incoming) -> Vec<String> {
        incoming
            .candidates
            .to_vec()
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[b"csrftoken=abc; sessionid=abcdefgh12345678; theme=dark"]);
        let got = read_map(&h, "sessionid", KeyKind::Random);
        assert!(got.present);
        assert_eq!(keys(&got), ["abcdefgh12345678"]);
    }

    #[test]
    fn malformed_values_are_no_session_but_count_as_present() {
        for raw in [
            &b"sessionid=short"[..],
            b"sessionid=../../etc/passwd",
            b"sessionid=ABCDEFGH12345678",
            b"sessionid=abcdefgh\t1234567",
            b"sessionid=\xff\xfe\xfdabcdefgh",
            b"sessionid=",
            b"sessionid=\"abcdefgh",
        ] {
            let got = read_map(&headers(&[raw]), "sessionid", KeyKind::Random);
            assert!(got.present, "{raw:?}");
            assert!(keys(&got).is_empty(), "{raw:?}");
            assert_eq!((got.values, got.malformed), (1, 1), "{raw:?}");
        }
        let good = read_map(
            &headers(&[b"sessionid=abcdefgh12345678"]),
            "sessionid",
            KeyKind::Random,
        );
        assert_eq!((good.values, good.malformed), (1, 0));
    }

    #[test]
    fn quoted_values_are_unquoted_like_django() {
        let got = read_map(
            &headers(&[b"sessionid=\"abcdefgh12345678\""]),
            "sessionid",
            KeyKind::Random,
        );
        assert_eq!(keys(&got), ["abcdefgh12345678"]);
    }

    #[test]
    fn at_most_two_distinct_keys_are_kept() {
        let mut raw = Vec::new();
        for i in 0..100 {
            raw.extend_from_slice(format!("sessionid=key{i:08}abc; ").as_bytes());
        }
        let got = read_map(&headers(&[&raw]), "sessionid", KeyKind::Random);
        assert_eq!(keys(&got), ["key00000000abc", "key00000001abc"]);
        assert_eq!((got.values, got.malformed), (100, 0));
        let dup = read_map(
            &headers(&[b"sessionid=aaaaaaaaaa; sessionid=aaaaaaaaaa; sessionid=bbbbbbbbbb"]),
            "sessionid",
            KeyKind::Random,
        );
        assert_eq!(keys(&dup), ["aaaaaaaaaa", "bbbbbbbbbb"]);
    }

    #[test]
    fn cookies_across_several_headers_are_read() {
        let got = read_map(
            &headers(&[b"a=1", b"sessionid=abcdefgh12345678"]),
            "sessionid",
            KeyKind::Random,
        );
        assert_eq!(keys(&got), ["abcdefgh12345678"]);
        assert!(!read_map(&headers(&[b"a=1"]), "sessionid", KeyKind::Random).present);
    }

    #[test]
    fn names_must_match_whole_and_precede_an_equals_sign() {
        for (raw, present, key) in [
            (&b"xsessionid=abcdefgh12345678"[..], false, None),
            (b"sessionidx=abcdefgh12345678", false, None),
            (b"sessionid x=abcdefgh12345678", false, None),
            (b"a=sessionid=abcdefgh12345678", false, None),
            (b"sessionid", false, None),
            (
                b";;  sessionid \t=  abcdefgh12345678  ;",
                true,
                Some("abcdefgh12345678"),
            ),
            (
                b"a=1;sessionid=abcdefgh12345678;b",
                true,
                Some("abcdefgh12345678"),
            ),
            (b"sessionid==abcdefgh12345678", true, None),
        ] {
            let got = read_map(&headers(&[raw]), "sessionid", KeyKind::Random);
            assert_eq!(got.present, present, "{raw:?}");
            assert_eq!(keys(&got), key.into_iter().collect::<Vec<_>>(), "{raw:?}");
        }
    }

    /// The cookie grammar read the slow, obvious way: split on `;`, trim,
    /// split at the first `=`, trim both sides.
    fn read_reference(header: &[u8], name: &[u8]) -> (bool, Vec<String>) {
        let mut present = false;
        let mut found: Vec<String> = Vec::new();
        for pair in header.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name {
                continue;
            }
            present = true;
            if found.len() == 2 {
                continue;
            }
            let mut value = pair[eq + 1..].trim_ascii();
            if let [b'"', inner @ .., b'"'] = value {
                value = inner;
            }
            if let Ok(key) = SessionKey::from_bytes(value)
                && !found.contains(&key.as_str().to_owned())
            {
                found.push(key.as_str().to_owned());
            }
        }
        (present, found)
    }

    proptest::proptest! {
        #[test]
        fn the_fast_reader_agrees_with_the_reference(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b"sessionid".to_vec()),
                    proptest::strategy::Just(b"=".to_vec()),
                    proptest::strategy::Just(b";".to_vec()),
                    proptest::strategy::Just(b" ".to_vec()),
                    proptest::strategy::Just(b"\"".to_vec()),
                    proptest::strategy::Just(b"abcdefgh1234".to_vec()),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..6),
                ],
                0..12,
            )
        ) {
            let raw: Vec<u8> = parts.concat();
            // What a HeaderValue can hold: no control bytes but tab.
            let raw: Vec<u8> = raw.into_iter().filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)).collect();
            let got = read_map(&headers(&[&raw]), "sessionid", KeyKind::Random);
            let (present, found) = read_reference(&raw, b"sessionid");
            proptest::prop_assert_eq!(got.present, present);
            proptest::prop_assert_eq!(keys(&got), found);
        }
    }

    proptest::proptest! {
        #[test]
        fn http_dates_match_the_formatted_reference(secs in -377_705_116_800_i64..=253_402_300_799) {
            let at = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let mut got = String::new();
            http_date(&mut got, at);
            let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let want = format!(
                "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                days[usize::from(at.weekday().number_days_from_monday())],
                at.day(),
                months[usize::from(u8::from(at.month()) - 1)],
                at.year(),
                at.hour(),
                at.minute(),
                at.second()
            );
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn decimals_are_written_in_full() {
        for n in [0, 7, 10, 1_209_600, u64::MAX] {
            let mut out = String::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn a_negative_max_age_sends_the_epoch_as_expires() {
        let key: SessionKey = "ypn0ion81nfjsbqopb0uj2bwqryjvbfd".parse().unwrap();
        let now = datetime!(2026-11-25 17:19:12 UTC);
        assert_eq!(
            set_cookie(&Settings::default(), &key, Some(i64::MIN), now),
            "sessionid=ypn0ion81nfjsbqopb0uj2bwqryjvbfd; expires=Thu, 01 Jan 1970 00:00:00 GMT; \
             HttpOnly; Max-Age=0; Path=/; SameSite=Lax"
        );
    }

    #[test]
    fn http_dates_follow_the_second_they_are_asked_for() {
        let date = |at| {
            let mut out = String::new();
            http_date(&mut out, at);
            out
        };
        let at = datetime!(2026-11-25 17:19:12 UTC);
        assert_eq!(date(at), "Wed, 25 Nov 2026 17:19:12 GMT");
        assert_eq!(
            date(at + Duration::milliseconds(999)),
            "Wed, 25 Nov 2026 17:19:12 GMT"
        );
        assert_eq!(
            date(at + Duration::seconds(1)),
            "Wed, 25 Nov 2026 17:19:13 GMT"
        );
        assert_eq!(date(at), "Wed, 25 Nov 2026 17:19:12 GMT");
        let elsewhere = datetime!(2026-11-25 18:19:12 +01:00);
        assert_eq!(date(elsewhere), "Wed, 25 Nov 2026 17:19:12 GMT");
        assert_eq!(
            date(datetime!(1999-12-31 23:59:59 UTC)),
            "Fri, 31 Dec 1999 23:59:59 GMT"
        );
    }

    #[test]
    fn set_cookie_matches_django() {
        let key: SessionKey = "ypn0ion81nfjsbqopb0uj2bwqryjvbfd".parse().unwrap();
        let now = datetime!(2026-11-25 17:19:12 UTC);
        let s = Settings::default();
        assert_eq!(
            set_cookie(&s, &key, Some(1_209_600), now),
            "sessionid=ypn0ion81nfjsbqopb0uj2bwqryjvbfd; expires=Wed, 09 Dec 2026 17:19:12 GMT; \
             HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax"
        );
        assert_eq!(
            set_cookie(&s, &key, None, now),
            "sessionid=ypn0ion81nfjsbqopb0uj2bwqryjvbfd; HttpOnly; Path=/; SameSite=Lax"
        );
        let s = Settings {
            cookie_domain: Some("example.com".into()),
            cookie_secure: true,
            cookie_samesite: Some(SameSite::None),
            cookie_httponly: false,
            ..Settings::default()
        };
        assert_eq!(
            removal_cookie(&s),
            "sessionid=\"\"; Domain=example.com; expires=Thu, 01 Jan 1970 00:00:00 GMT; \
             Max-Age=0; Path=/; SameSite=None; Secure"
        );
    }
}
