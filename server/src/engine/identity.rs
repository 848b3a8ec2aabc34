//! A person at the kiosk (rules 80–82) and booking codes (rule 77), as pure
//! functions: the checks of an `identity` (12 digits, a real date of birth
//! not after the day), the age and the priority class it gives, the keyed
//! hash that is all the server keeps of a person (HMAC-SHA256 of the 12
//! ASCII digits under a day's key), and Damm check digits.
//!
//! Nothing here keeps, logs or returns an ID number or a birth date: the
//! only thing that leaves is the hash. It never draws random numbers; the
//! caller passes them in (`Fresh`). A leaf: it imports nothing of the engine.

use chrono::{Datelike, NaiveDate};
use luot_protocol::Identity;
use sha2::Sha256;

use crate::config::AgeClass;

/// A day's key for person hashes (rule 81): 256 random bits.
pub type DayKey = [u8; 32];

/// Random bytes the caller draws for a command: a day's key if one is
/// needed, a booking's code. The engine never draws any. Never printed.
#[derive(Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fresh(pub [u8; 32]);

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fresh(..)")
    }
}

/// Why an `identity` is refused (400); the message names no part of it.
pub const BAD_ID_NUMBER: &str =
    "Số CCCD phải gồm đúng 12 chữ số (identity.id_number must be 12 digits)";
pub const BAD_BIRTH_DATE: &str =
    "Ngày sinh không hợp lệ (identity.birth_date must be a real date YYYY-MM-DD, not after today)";

/// The date of birth of a valid identity on `today` (rule 80), else the
/// reason it is refused.
pub fn birth_date(identity: &Identity, today: NaiveDate) -> Result<NaiveDate, &'static str> {
    let id = identity.id_number.as_bytes();
    if id.len() != 12 || !id.iter().all(u8::is_ascii_digit) {
        return Err(BAD_ID_NUMBER);
    }
    let b = identity.birth_date.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return Err(BAD_BIRTH_DATE);
    }
    match NaiveDate::parse_from_str(&identity.birth_date, "%Y-%m-%d") {
        Ok(d) if d <= today => Ok(d),
        _ => Err(BAD_BIRTH_DATE),
    }
}

/// Age on `day`: the difference of years, less 1 before the birthday (rule 80).
pub fn age(birth: NaiveDate, day: NaiveDate) -> i64 {
    let years = i64::from(day.year() - birth.year());
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        years - 1
    } else {
        years
    }
}

/// The class an age gives: of the table's classes the site lists, the
/// earliest in `classes` whose bounds hold (a missing bound holds).
pub fn age_class(classes: &[String], table: &[AgeClass], age: i64) -> Option<String> {
    let holds = |a: &AgeClass| {
        a.min.is_none_or(|m| age >= i64::from(m)) && a.max.is_none_or(|m| age <= i64::from(m))
    };
    classes
        .iter()
        .find(|c| table.iter().any(|a| &a.class == *c && holds(a)))
        .cloned()
}

/// Of two classes, the earlier in `classes` (rule 80: the sent one or the
/// derived one, whichever is served first).
pub fn earlier(classes: &[String], a: Option<&str>, b: Option<&str>) -> Option<String> {
    let rank = |c: Option<&str>| c.and_then(|c| classes.iter().position(|x| x == c));
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => Some(classes[x.min(y)].clone()),
        (Some(x), None) => Some(classes[x].clone()),
        (None, Some(y)) => Some(classes[y].clone()),
        (None, None) => None,
    }
}

/// HMAC-SHA256 (RFC 2104, the `hmac` crate).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// All that is kept of a person (rule 81): the hex HMAC of the 12 ASCII
/// digits under the day's key.
pub fn person_hash(key: &DayKey, identity: &Identity) -> String {
    hex::encode(hmac_sha256(key, identity.id_number.as_bytes()))
}

/// Whether a string of ASCII digits ends with its Damm check digit.
pub fn damm_valid(code: &str) -> bool {
    !code.is_empty() && luot_protocol::damm_digit(code) == Some(0)
}

/// A booking code: 7 digits and their check digit (rule 77).
pub fn code_of(seven: u32) -> String {
    let body = format!("{:07}", seven % 10_000_000);
    let check = luot_protocol::damm_digit(&body).unwrap_or(0);
    format!("{body}{check}")
}

/// A code sent for a check-in: a JSON string of 8 digits passing Damm's
/// check (rule 77); anything else is refused with 400.
pub fn parse_code(v: &serde_json::Value) -> Option<String> {
    let s = v.as_str()?;
    (s.len() == 8 && damm_valid(s)).then(|| s.to_string())
}

/// Candidate codes from the caller's random bytes: eight of them, then on
/// from the last (a site holds far fewer than 10 million kept bookings).
pub fn code_candidates(fresh: &Fresh) -> impl Iterator<Item = String> + '_ {
    let chunk = |i: usize| {
        let b = &fresh.0[i * 4..i * 4 + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % 10_000_000
    };
    let last = chunk(7);
    (0..8)
        .map(chunk)
        .chain((1..10_000_000u32).map(move |k| (last + k) % 10_000_000))
        .map(code_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, birth: &str) -> Identity {
        Identity {
            id_number: id.into(),
            birth_date: birth.into(),
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_contract_s_codes_pass_and_one_wrong_digit_fails() {
        assert!(damm_valid("5724"));
        assert!(damm_valid("40817269"));
        assert!(!damm_valid("40817268"));
        assert!(!damm_valid("40871269"), "a swap of neighbours is caught");
        assert_eq!(code_of(4081726), "40817269");
        assert_eq!(
            parse_code(&serde_json::json!("40817269")).as_deref(),
            Some("40817269")
        );
        assert_eq!(parse_code(&serde_json::json!(40817269)), None, "a number");
        assert_eq!(parse_code(&serde_json::json!("4081726")), None, "7 digits");
        assert_eq!(
            parse_code(&serde_json::json!("40817268")),
            None,
            "bad check digit"
        );
    }

    #[test]
    fn every_generated_code_passes() {
        let fresh = Fresh([7u8; 32]);
        for c in code_candidates(&fresh).take(1000) {
            assert_eq!(c.len(), 8);
            assert!(damm_valid(&c), "{c}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_person_hash_depends_on_the_day_key_and_hides_the_number() {
        let p = person("001099012345", "1950-03-01");
        let a = person_hash(&[1; 32], &p);
        let b = person_hash(&[2; 32], &p);
        assert_ne!(a, b, "another day's key links nothing");
        assert_eq!(
            a,
            person_hash(&[1; 32], &person("001099012345", "1960-01-01"))
        );
        assert!(!a.contains("001099012345"));
        assert_eq!(format!("{p:?}"), "Identity(..)");
    }

    #[test]
    fn identities_are_checked_without_echoing_them() {
        let today = d("2026-11-22");
        assert_eq!(
            birth_date(&person("001099012345", "1950-03-01"), today),
            Ok(d("1950-03-01"))
        );
        for (id, birth, why) in [
            ("00109901234", "1950-03-01", BAD_ID_NUMBER),
            ("00109901234a", "1950-03-01", BAD_ID_NUMBER),
            ("٠٠١٠٩٩٠١٢٣٤٥", "1950-03-01", BAD_ID_NUMBER),
            ("001099012345", "1950-02-30", BAD_BIRTH_DATE),
            ("001099012345", "1950-3-1", BAD_BIRTH_DATE),
            ("001099012345", "2026-11-23", BAD_BIRTH_DATE),
            ("001099012345", "01/03/1950", BAD_BIRTH_DATE),
        ] {
            assert_eq!(birth_date(&person(id, birth), today), Err(why), "{birth}");
            assert!(!why.contains(id));
        }
    }

    #[test]
    fn age_counts_whole_years_and_picks_the_earliest_class() {
        assert_eq!(age(d("1950-03-01"), d("2025-02-28")), 74);
        assert_eq!(age(d("1950-03-01"), d("2025-03-01")), 75);
        assert_eq!(age(d("2020-11-23"), d("2026-11-22")), 5);
        let classes: Vec<String> = ["emergency", "child_under_6", "age_75_plus"]
            .map(String::from)
            .into();
        let table = crate::config::Identity::default().age_priority;
        assert_eq!(
            age_class(&classes, &table, 75).as_deref(),
            Some("age_75_plus")
        );
        assert_eq!(
            age_class(&classes, &table, 5).as_deref(),
            Some("child_under_6")
        );
        assert_eq!(age_class(&classes, &table, 6), None);
        assert_eq!(
            age_class(&classes[..2], &table, 80),
            None,
            "a class the site does not list"
        );
        assert_eq!(
            earlier(&classes, Some("age_75_plus"), Some("emergency")).as_deref(),
            Some("emergency")
        );
        assert_eq!(
            earlier(&classes, None, Some("age_75_plus")).as_deref(),
            Some("age_75_plus")
        );
    }
}
