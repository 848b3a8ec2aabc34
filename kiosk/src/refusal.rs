//! Rule 84's refusal slips, as decisions without I/O: which refusals print
//! a slip (a 409 of §11 or `unknown_appointment`), its large headline, the
//! "Mời quay lại lúc HH:MM" time when the error gives one (`next_open_at`,
//! `checkin_opens_at`), and at most one slip per button a minute.
//!
//! It never draws (`render.rs` does) and never reads a clock: `now` is
//! passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde_json::{Map, Value};

/// One slip per button in this long; further refusals print nothing.
pub const SLIP_EVERY: Duration = Duration::from_secs(60);

/// The slip's headline for a refusal that gets one, else `None` (the
/// kiosk's out-of-service slip covers the rest). Rule 84's texts; the two
/// refusals it does not name (`appointment_cancelled`, `identity_mismatch`)
/// get headlines in its style.
pub fn headline(code: &str, extra: &Map<String, Value>) -> Option<String> {
    Some(
        match code {
            "service_full" | "service_closed" => "HẾT SỐ",
            "appointment_required" => "CẦN ĐẶT LỊCH HẸN",
            "identity_required" => "CẦN QUÉT CCCD",
            "person_limit" => "ĐÃ ĐỦ SỐ LƯỢT HÔM NAY",
            "already_checked_in" => {
                return Some(match extra.get("number").and_then(Value::as_str) {
                    Some(n) => format!("ĐÃ LẤY SỐ {n}"),
                    None => "ĐÃ LẤY SỐ".to_string(),
                });
            }
            "appointment_expired" => "LỊCH HẸN ĐÃ HẾT HẠN",
            "too_early" => "CHƯA ĐẾN GIỜ",
            "unknown_appointment" => "KHÔNG TÌM THẤY LỊCH HẸN",
            "appointment_cancelled" => "LỊCH HẸN ĐÃ HỦY",
            "identity_mismatch" => "CCCD KHÔNG KHỚP LỊCH HẸN",
            _ => return None,
        }
        .to_string(),
    )
}

/// When to come back, if the error says: `HH:MM` in the time's own offset
/// (the site's), with the date when it is not `today` (the site's day).
pub fn comeback(extra: &Map<String, Value>, today: Option<NaiveDate>) -> Option<String> {
    let at = ["next_open_at", "checkin_opens_at"]
        .iter()
        .filter_map(|k| extra.get(*k).and_then(Value::as_str))
        .find_map(|s| DateTime::<FixedOffset>::parse_from_rfc3339(s).ok())?;
    let time = at.format("%H:%M").to_string();
    match today {
        Some(d) if d != at.date_naive() => Some(format!("{time} ngày {}", at.format("%d/%m/%Y"))),
        _ => Some(time),
    }
}

/// At most one slip per key (a button, or a booking and its refusal) per
/// [`SLIP_EVERY`].
#[derive(Default)]
pub struct SlipLimit {
    last: HashMap<String, Instant>,
}

impl SlipLimit {
    /// Whether a slip may be printed for `key` at `now`; if so it counts.
    pub fn allow(&mut self, key: &str, now: Instant) -> bool {
        self.last
            .retain(|_, at| now.saturating_duration_since(*at) < SLIP_EVERY);
        if self.last.contains_key(key) {
            return false;
        }
        self.last.insert(key.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extra(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn headlines_are_rule_84s() {
        let none = Map::new();
        for (code, text) in [
            ("service_full", "HẾT SỐ"),
            ("service_closed", "HẾT SỐ"),
            ("appointment_required", "CẦN ĐẶT LỊCH HẸN"),
            ("identity_required", "CẦN QUÉT CCCD"),
            ("person_limit", "ĐÃ ĐỦ SỐ LƯỢT HÔM NAY"),
            ("appointment_expired", "LỊCH HẸN ĐÃ HẾT HẠN"),
            ("too_early", "CHƯA ĐẾN GIỜ"),
            ("unknown_appointment", "KHÔNG TÌM THẤY LỊCH HẸN"),
        ] {
            assert_eq!(headline(code, &none).as_deref(), Some(text), "{code}");
        }
        assert_eq!(
            headline("already_checked_in", &extra(json!({"number": "A015"}))).as_deref(),
            Some("ĐÃ LẤY SỐ A015")
        );
        for other in [
            "forbidden",
            "unknown_service",
            "request_id_reused",
            "bad_request",
        ] {
            assert_eq!(headline(other, &none), None, "{other}: no refusal slip");
        }
    }

    #[test]
    fn the_time_to_come_back_is_the_errors() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 22);
        let e = extra(json!({"next_open_at": "2026-11-22T13:30:00+07:00"}));
        assert_eq!(comeback(&e, day).as_deref(), Some("13:30"));
        let e = extra(json!({"checkin_opens_at": "2026-11-23T08:00:00+07:00"}));
        assert_eq!(
            comeback(&e, day).as_deref(),
            Some("08:00 ngày 23/11/2026"),
            "another day: with its date"
        );
        assert_eq!(comeback(&e, None).as_deref(), Some("08:00"));
        for none in [
            json!({}),
            json!({"next_open_at": null}),
            json!({"next_open_at": "soon"}),
        ] {
            assert_eq!(comeback(&extra(none.clone()), day), None, "{none}");
        }
    }

    #[test]
    fn one_slip_per_key_a_minute() {
        let mut l = SlipLimit::default();
        let t0 = Instant::now();
        assert!(l.allow("kham-noi", t0));
        assert!(!l.allow("kham-noi", t0 + Duration::from_secs(59)));
        assert!(
            l.allow("kham-ngoai", t0 + Duration::from_secs(1)),
            "another button"
        );
        assert!(l.allow("kham-noi", t0 + SLIP_EVERY));
        assert!(!l.allow("kham-noi", t0 + SLIP_EVERY + Duration::from_secs(1)));
    }
}
