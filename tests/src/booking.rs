//! What the §11 tests share: the site's clock moved to a time of day
//! (`LUOT_CLOCK_OFFSET_S`, rule 76), RFC 3339 times on a day, and Damm's
//! check digit of booking codes (rule 77).

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};

use crate::{sha, test_site_toml};

pub const INTEGRATION_TOKEN: &str = "test-integration-token-dddddddddd";

/// The test hospital of `luot-tests` with §11 added: `kham-noi` has a
/// morning session with bookings and an afternoon one, `mot-cua` a daily
/// cap of 3, `ho-tich` takes walk-ins with priority only and needs a CCCD;
/// an integration for `kham-noi` and `ho-tich`; four tickets a person a day.
pub fn booking_site_toml() -> String {
    let base = test_site_toml(false);
    let base = base.replace(
        "[[services]]\nid = \"kham-noi\"\nname = \"Khám Nội\"\nprefix = \"A\"\ndigits = 3\n",
        r#"[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"
digits = 3
sessions = [
  { id = "sang", start = "07:00", end = "11:30", cap = 200, appointment_quota = 40, slot_minutes = 30, slot_capacity = 3 },
  { id = "chieu", start = "13:30", end = "16:30", cap = 100 },
]

[[services]]
id = "mot-cua"
name = "Một cửa"
prefix = "M"
digits = 3
daily_cap = 3

[[services]]
id = "ho-tich"
name = "Hộ tịch"
prefix = "H"
digits = 3
walk_ins = "priority"
identity = "required"
"#,
    );
    assert!(base.contains("mot-cua"), "the test site changed shape");
    let base = base.replace(
        "services = [\"kham-noi\", \"kham-ngoai\"]\n\n[[devices]]\nid = \"kiosk-sanh-b\"",
        "services = [\"kham-noi\", \"kham-ngoai\", \"mot-cua\", \"ho-tich\"]\n\n[[devices]]\nid = \"kiosk-sanh-b\"",
    );
    format!(
        "{base}\n[appointments]\nbook_ahead_days = 14\ncheckin_early_min = 30\ncheckin_late_min = 15\n\n\
         [identity]\nmax_tickets_per_person_per_day = 4\n\n\
         [[devices]]\nid = \"cong-dat-lich\"\nrole = \"integration\"\ntoken_sha256 = \"{}\"\nservices = [\"kham-noi\", \"ho-tich\"]\n",
        sha(INTEGRATION_TOKEN)
    )
}

/// Asia/Ho_Chi_Minh: UTC+7 all year.
pub fn site_tz() -> FixedOffset {
    FixedOffset::east_opt(7 * 3600).expect("a valid time")
}

/// A day `n` days after today in the site's zone.
pub fn days_ahead(n: u64) -> NaiveDate {
    Utc::now()
        .with_timezone(&site_tz())
        .date_naive()
        .checked_add_days(chrono::Days::new(n))
        .expect("a valid time")
}

/// The `LUOT_CLOCK_OFFSET_S` that makes the server's now `hh:mm` on `day`.
pub fn offset_to(day: NaiveDate, hh: u32, mm: u32) -> i64 {
    let t = site_tz()
        .from_local_datetime(&day.and_hms_opt(hh, mm, 0).expect("a valid time"))
        .single()
        .expect("a fixed offset has one");
    t.timestamp() - Utc::now().timestamp()
}

/// `day` at `hh:mm` in the site's zone, RFC 3339 as the server writes it.
pub fn at(day: NaiveDate, hh: u32, mm: u32) -> String {
    format!("{day}T{hh:02}:{mm:02}:00+07:00")
}

/// Damm's check digit of `digits` (rule 77).
pub fn damm(digits: &str) -> char {
    let d = luot_protocol::damm_digit(digits).expect("digits");
    char::from(b'0' + d)
}

/// Whether `code` is 8 digits whose last is the Damm digit of the rest.
pub fn code_ok(code: &str) -> bool {
    luot_protocol::valid_booking_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contracts_examples_pass() {
        assert_eq!(damm("572"), '4');
        assert!(code_ok("40817269"));
        assert!(!code_ok("40817268") && !code_ok("4081726"));
    }
}
