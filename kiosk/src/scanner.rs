//! The USB QR scanner of rule 83 and what a scanned or typed line means.
//!
//! The scanner is a keyboard to Linux ("keyboard mode"): it types what it
//! reads and ends with Enter. [`EvdevScanner`] opens its event device with
//! the `evdev` crate and grabs it, so its keys never reach the console;
//! [`LineReader`] turns key codes into characters (US layout, shift, caps
//! lock) and lines; [`classify`] says what a line is: a CCCD (the citizen ID
//! card's QR code: 7 or more `|`-separated fields, 12 digits first and a
//! valid `DDMMYYYY` birth date fourth), a booking's QR code (a line with
//! `/a/ap_`), or something the kiosk cannot use. [`valid_code`] checks a
//! typed booking code (8 digits, Damm check digit, rule 77).
//!
//! Lines are classified where they are read, so a scanned line never
//! travels further than this module: of a CCCD only its ID number and birth
//! date leave, as an [`Identity`] (whose `Debug` prints nothing of it), and
//! the line's buffer is wiped. Nothing here writes, logs or sends a line's
//! content; a refused line is logged by its kind only.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use luot_protocol::{Identity, valid_request_id};
use zeroize::Zeroize;

/// The longest line taken; a longer one is refused whole.
pub const MAX_LINE: usize = 2048;
/// Keys further apart than this do not belong to one scan: an unfinished
/// line left behind (a scan cut short) is dropped before the next.
pub const STALE: Duration = Duration::from_secs(2);

/// What a scanned line is.
#[derive(Clone, PartialEq, Eq)]
pub enum Scan {
    /// A CCCD: its ID number and birth date (`YYYY-MM-DD`), nothing else.
    Cccd(Identity),
    /// A booking's QR code: the booking's id (`ap_…`).
    Booking(String),
    /// A line the kiosk cannot use.
    Unreadable(Unreadable),
}

impl fmt::Debug for Scan {
    /// Says what kind of line it was, never what it held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scan::Cccd(_) => f.write_str("Cccd(..)"),
            Scan::Booking(_) => f.write_str("Booking(..)"),
            Scan::Unreadable(u) => write!(f, "Unreadable({u:?})"),
        }
    }
}

/// Why a line or a typed code was refused (its content is never kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    Empty,
    TooLong,
    /// Starts as a CCCD (12 digits, then `|`) but is cut short or has no
    /// valid birth date.
    BadCccd,
    /// Has `/a/ap_` but no booking id after it.
    BadBooking,
    /// Neither a CCCD nor a booking.
    Foreign,
    /// A typed booking code that is not 8 digits with a valid check digit.
    BadCode,
}

impl Unreadable {
    /// What the person is told (touch page).
    pub fn message(self) -> &'static str {
        match self {
            Unreadable::BadCccd => "Không đọc được CCCD. Vui lòng quét lại mã QR trên thẻ.",
            Unreadable::BadBooking => {
                "Không đọc được mã lịch hẹn. Vui lòng quét lại hoặc nhập mã số."
            }
            Unreadable::BadCode => {
                "Mã lịch hẹn không đúng (8 chữ số). Vui lòng kiểm tra và nhập lại."
            }
            Unreadable::Empty | Unreadable::TooLong | Unreadable::Foreign => {
                "Mã này không dùng được ở máy lấy số. Vui lòng quét CCCD hoặc mã QR lịch hẹn."
            }
        }
    }

    /// What the log says (in English, without the content).
    pub fn reason(self) -> &'static str {
        match self {
            Unreadable::Empty => "empty line",
            Unreadable::TooLong => "line too long",
            Unreadable::BadCccd => "a truncated or malformed CCCD",
            Unreadable::BadBooking => "a booking link without a valid id",
            Unreadable::Foreign => "neither a CCCD nor a booking",
            Unreadable::BadCode => "not 8 digits with a valid check digit",
        }
    }
}

/// What `line` is. Never panics, whatever the line holds; `today` bounds a
/// birth date (none after it).
pub fn classify(line: &str, today: NaiveDate) -> Scan {
    let line = line.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    if line.is_empty() {
        return Scan::Unreadable(Unreadable::Empty);
    }
    if line.len() > MAX_LINE {
        return Scan::Unreadable(Unreadable::TooLong);
    }
    let mut fields = line.split('|');
    let first = fields.next().unwrap_or_default().trim();
    if line.contains('|') && twelve_digits(first) {
        // Fields: ID number, old ID, name, birth date, sex, address, date
        // of issue (and, on newer cards, more).
        let rest: Vec<&str> = fields.collect();
        if rest.len() < 6 {
            return Scan::Unreadable(Unreadable::BadCccd);
        }
        return match birth_date(rest[2].trim(), today) {
            Some(birth) => Scan::Cccd(Identity {
                id_number: first.to_string(),
                birth_date: birth,
            }),
            None => Scan::Unreadable(Unreadable::BadCccd),
        };
    }
    if let Some(at) = line.find("/a/ap_") {
        let id: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        if id.len() > 3 && valid_request_id(&id) {
            return Scan::Booking(id);
        }
        return Scan::Unreadable(Unreadable::BadBooking);
    }
    Scan::Unreadable(Unreadable::Foreign)
}

fn twelve_digits(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `DDMMYYYY` as `YYYY-MM-DD` if it is a real date from 1900 to `today`.
fn birth_date(s: &str, today: NaiveDate) -> Option<String> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let day: u32 = s[0..2].parse().ok()?;
    let month: u32 = s[2..4].parse().ok()?;
    let year: i32 = s[4..8].parse().ok()?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    (year >= 1900 && date <= today).then(|| date.format("%Y-%m-%d").to_string())
}

/// Whether the digits end in their Damm check digit.
pub fn damm_ok(digits: &str) -> bool {
    !digits.is_empty() && luot_protocol::damm_digit(digits) == Some(0)
}

/// A booking code as rule 77 has it: 8 digits, the last the Damm check
/// digit of the first seven.
pub fn valid_code(code: &str) -> bool {
    luot_protocol::valid_booking_code(code)
}

/// One key event of the scanner (`value`: 1 pressed, 0 released, 2 repeat).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub code: u16,
    pub value: i32,
    pub at: Instant,
}

// Linux input key codes (linux/input-event-codes.h).
const KEY_BACKSPACE: u16 = 14;
const KEY_ENTER: u16 = 28;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;
const KEY_CAPSLOCK: u16 = 58;
const KEY_KPENTER: u16 = 96;

/// The character a key types on a US layout, unshifted and shifted.
fn us_key(code: u16) -> Option<(char, char)> {
    const DIGITS: &[(char, char)] = &[
        ('1', '!'),
        ('2', '@'),
        ('3', '#'),
        ('4', '$'),
        ('5', '%'),
        ('6', '^'),
        ('7', '&'),
        ('8', '*'),
        ('9', '('),
        ('0', ')'),
        ('-', '_'),
        ('=', '+'),
    ];
    let letters = |row: &str, first: u16| -> Option<(char, char)> {
        let c = row.chars().nth(usize::from(code.checked_sub(first)?))?;
        Some((c, c.to_ascii_uppercase()))
    };
    Some(match code {
        2..=13 => DIGITS[usize::from(code - 2)],
        15 => ('\t', '\t'),
        16..=25 => letters("qwertyuiop", 16)?,
        26 => ('[', '{'),
        27 => (']', '}'),
        30..=38 => letters("asdfghjkl", 30)?,
        39 => (';', ':'),
        40 => ('\'', '"'),
        41 => ('`', '~'),
        43 => ('\\', '|'),
        44..=50 => letters("zxcvbnm", 44)?,
        51 => (',', '<'),
        52 => ('.', '>'),
        53 => ('/', '?'),
        55 => ('*', '*'),
        57 => (' ', ' '),
        // The keypad (num lock on, as scanners send it).
        71 => ('7', '7'),
        72 => ('8', '8'),
        73 => ('9', '9'),
        74 => ('-', '-'),
        75 => ('4', '4'),
        76 => ('5', '5'),
        77 => ('6', '6'),
        78 => ('+', '+'),
        79 => ('1', '1'),
        80 => ('2', '2'),
        81 => ('3', '3'),
        82 => ('0', '0'),
        83 => ('.', '.'),
        98 => ('/', '/'),
        _ => return None,
    })
}

/// Key codes in, lines out: US layout, either shift key, caps lock for
/// letters, backspace; a line ends at Enter. Keys it does not know are
/// skipped. The buffer is wiped when a line leaves or is dropped.
pub struct LineReader {
    buf: String,
    shift_left: bool,
    shift_right: bool,
    caps: bool,
    last: Option<Instant>,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader::new()
    }
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader {
            // Room for the longest line, so it is never moved (and copied)
            // while it grows.
            buf: String::with_capacity(MAX_LINE + 8),
            shift_left: false,
            shift_right: false,
            caps: false,
            last: None,
        }
    }

    /// Takes one key event; returns a line when Enter ends one. A line
    /// longer than [`MAX_LINE`] comes out one character too long, which
    /// [`classify`] refuses.
    pub fn key(&mut self, key: Key) -> Option<String> {
        match key.code {
            KEY_LEFTSHIFT => self.shift_left = key.value != 0,
            KEY_RIGHTSHIFT => self.shift_right = key.value != 0,
            _ => {}
        }
        if key.value != 1 || matches!(key.code, KEY_LEFTSHIFT | KEY_RIGHTSHIFT) {
            return None;
        }
        if let Some(last) = self.last
            && key.at.saturating_duration_since(last) > STALE
        {
            self.buf.zeroize();
        }
        self.last = Some(key.at);
        match key.code {
            KEY_ENTER | KEY_KPENTER => {
                let line = std::mem::replace(&mut self.buf, String::with_capacity(MAX_LINE + 8));
                return Some(line);
            }
            KEY_CAPSLOCK => self.caps = !self.caps,
            KEY_BACKSPACE => {
                self.buf.pop();
            }
            code => {
                if let Some((plain, shifted)) = us_key(code) {
                    let shift = self.shift_left || self.shift_right;
                    let mut c = if shift { shifted } else { plain };
                    if self.caps && plain.is_ascii_alphabetic() {
                        c = if shift { plain } else { shifted };
                    }
                    if self.buf.len() <= MAX_LINE {
                        self.buf.push(c);
                    }
                }
            }
        }
        None
    }
}

impl Drop for LineReader {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// Classifies a line it takes over, then wipes it.
pub fn classify_owned(mut line: String, today: NaiveDate) -> Scan {
    let scan = classify(&line, today);
    line.zeroize();
    scan
}

/// Where classified scans go; `false` once nobody takes them any more.
pub type Sink = Box<dyn FnMut(Scan) -> bool + Send>;

/// Feeds key events through a [`LineReader`] and hands each finished line,
/// classified, to `send`. Returns when the keys end, or `false` as soon as
/// `send` does.
pub fn pump(
    keys: impl IntoIterator<Item = Key>,
    reader: &mut LineReader,
    today: impl Fn() -> NaiveDate,
    send: &mut dyn FnMut(Scan) -> bool,
) -> bool {
    for key in keys {
        if let Some(line) = reader.key(key)
            && !send(classify_owned(line, today()))
        {
            return false;
        }
    }
    true
}

/// The scanner's event device, grabbed, read on a thread of its own; if it
/// goes away (unplugged) it is opened again every 2 s.
pub struct EvdevScanner {
    pub device: PathBuf,
}

impl EvdevScanner {
    /// Opens and grabs the device (an error here stops start-up, so a wrong
    /// path is seen at once), then reads it and hands each scan to `send`
    /// until it returns `false`.
    pub fn start(self, send: Sink) -> anyhow::Result<()> {
        let device = open(&self.device)?;
        let path = self.device;
        std::thread::Builder::new()
            .name("scanner".into())
            .spawn(move || read_device(path, device, send))?;
        Ok(())
    }
}

fn open(path: &std::path::Path) -> anyhow::Result<evdev::Device> {
    let mut device = evdev::Device::open(path).map_err(|e| {
        anyhow::anyhow!(
            "không mở được máy quét {} ({e}); kiểm tra [scanner] device và quyền nhóm input (cannot open the scanner)",
            path.display()
        )
    })?;
    device.grab().map_err(|e| {
        anyhow::anyhow!(
            "không giữ riêng được máy quét {} ({e}); có chương trình khác đang dùng nó? (cannot grab the scanner)",
            path.display()
        )
    })?;
    tracing::info!(device = %path.display(), "QR scanner ready (grabbed)");
    Ok(device)
}

fn read_device(path: PathBuf, mut device: evdev::Device, mut send: Sink) {
    let today = || chrono::Local::now().date_naive();
    let mut reader = LineReader::new();
    loop {
        let failed = match device.fetch_events() {
            Ok(events) => {
                let keys = events
                    .filter(|e| e.event_type() == evdev::EventType::KEY)
                    .map(|e| Key {
                        code: e.code(),
                        value: e.value(),
                        at: Instant::now(),
                    });
                if !pump(keys, &mut reader, today, &mut send) {
                    return;
                }
                None
            }
            Err(e) => Some(e),
        };
        let Some(e) = failed else { continue };
        tracing::error!(error = %e, device = %path.display(), "the QR scanner stopped; trying to open it again");
        reader = LineReader::new();
        device = loop {
            std::thread::sleep(Duration::from_secs(2));
            match open(&path) {
                Ok(d) => break d,
                Err(e) => tracing::debug!(error = %e, "the scanner is still away"),
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    const CCCD: &str = "001099012345|123456789|Nguyễn Văn An|01031950|Nam|Số 1 Hàng Bài, Hoàn Kiếm, Hà Nội|15082021";

    fn identity(scan: Scan) -> Identity {
        match scan {
            Scan::Cccd(i) => i,
            other => panic!("not a CCCD: {other:?}"),
        }
    }

    #[test]
    fn a_cccd_gives_its_number_and_birth_date_only() {
        let i = identity(classify(CCCD, today()));
        assert_eq!(i.id_number, "001099012345");
        assert_eq!(i.birth_date, "1950-03-01");
        // Newer cards have more fields; an empty old ID number is fine.
        let newer = "079203001122||Trần Thị Bình|29022004|Nữ|Quận 1|01012022|x|y|z";
        let i = identity(classify(newer, today()));
        assert_eq!(
            (i.id_number.as_str(), i.birth_date.as_str()),
            ("079203001122", "2004-02-29")
        );
        // A trailing carriage return or spaces from the scanner.
        assert!(matches!(
            classify(&format!("  {CCCD}\r\n"), today()),
            Scan::Cccd(_)
        ));
    }

    #[test]
    fn a_truncated_or_wrong_cccd_is_refused() {
        let cut = &CCCD[..40]; // fewer than 7 fields
        assert_eq!(
            classify(cut, today()),
            Scan::Unreadable(Unreadable::BadCccd)
        );
        for dob in [
            "31021950", "00001950", "0103195", "01031850", "01012027", "ab031950",
        ] {
            let line = CCCD.replace("01031950", dob);
            assert_eq!(
                classify(&line, today()),
                Scan::Unreadable(Unreadable::BadCccd),
                "{dob}"
            );
        }
        // 11 or 13 digits first: not a CCCD at all.
        let short = CCCD.replacen("001099012345", "00109901234", 1);
        assert_eq!(
            classify(&short, today()),
            Scan::Unreadable(Unreadable::Foreign)
        );
    }

    #[test]
    fn a_booking_link_gives_the_booking() {
        for line in [
            "http://192.168.1.10:8080/a/ap_5Jq2xYz8AbCdEfGh",
            "https://benhvien.example/luot/a/ap_5Jq2xYz8AbCdEfGh?utm=x",
            "/a/ap_5Jq2xYz8AbCdEfGh",
        ] {
            assert_eq!(
                classify(line, today()),
                Scan::Booking("ap_5Jq2xYz8AbCdEfGh".into()),
                "{line}"
            );
        }
        assert_eq!(
            classify("http://x/a/ap_", today()),
            Scan::Unreadable(Unreadable::BadBooking)
        );
        assert_eq!(
            classify(&format!("http://x/a/ap_{}", "a".repeat(70)), today()),
            Scan::Unreadable(Unreadable::BadBooking)
        );
        for foreign in ["http://x/t/tk_123", "8935049501234", "WIFI:S:x;;", "   "] {
            assert!(
                matches!(classify(foreign, today()), Scan::Unreadable(_)),
                "{foreign}"
            );
        }
    }

    #[test]
    fn nothing_of_a_scan_shows_in_debug() {
        let scan = classify(CCCD, today());
        let shown = format!("{scan:?} {:?}", Some(scan.clone()));
        assert!(
            !shown.contains("001099012345") && !shown.contains("1950"),
            "{shown}"
        );
        let booking = format!("{:?}", classify("http://x/a/ap_secret1", today()));
        assert!(!booking.contains("secret1"), "{booking}");
    }

    #[test]
    fn damm_codes() {
        assert!(damm_ok("5724"));
        assert!(valid_code("40817269"));
        assert!(!valid_code("40817268"), "one digit off");
        assert!(!valid_code("48017269"), "two digits swapped");
        assert!(!valid_code("4081726"), "7 digits");
        assert!(!valid_code("4081726a"));
        assert!(!valid_code("١٢٣٤٥٦٧٨"), "not ASCII digits");
        // Every 7 digits have exactly one check digit.
        for seven in ["0000000", "1234567", "9999999"] {
            let ok = (0..10)
                .filter(|d| valid_code(&format!("{seven}{d}")))
                .count();
            assert_eq!(ok, 1, "{seven}");
        }
    }

    /// Key events that type `text` on a US keyboard, then Enter.
    fn typed(text: &str) -> Vec<Key> {
        let at = Instant::now();
        let mut keys = Vec::new();
        let mut ev = |code: u16, value: i32| keys.push(Key { code, value, at });
        for c in text.chars() {
            let (code, shift) = (1u16..=127)
                .find_map(|code| {
                    let (plain, shifted) = us_key(code)?;
                    if plain == c {
                        Some((code, false))
                    } else if shifted == c {
                        Some((code, true))
                    } else {
                        None
                    }
                })
                .unwrap_or_else(|| panic!("no key types {c:?}"));
            if shift {
                ev(KEY_LEFTSHIFT, 1);
            }
            ev(code, 1);
            ev(code, 0);
            if shift {
                ev(KEY_LEFTSHIFT, 0);
            }
        }
        ev(KEY_ENTER, 1);
        ev(KEY_ENTER, 0);
        keys
    }

    fn lines(keys: &[Key]) -> Vec<String> {
        let mut r = LineReader::new();
        keys.iter().filter_map(|k| r.key(*k)).collect()
    }

    #[test]
    fn keys_make_lines_with_shift_and_enter() {
        let ascii = "001099012345|123456789|Nguyen Van An|01031950|Nam|So 1, Ha Noi|15082021";
        assert_eq!(lines(&typed(ascii)), [ascii]);
        let url = "http://192.168.1.10:8080/a/ap_5Jq2-xY_z?q=1&r=~";
        assert_eq!(lines(&typed(url)), [url]);
        // Two lines in a row.
        let mut two = typed("abc");
        two.extend(typed("DEF"));
        assert_eq!(lines(&two), ["abc", "DEF"]);
        // Caps lock flips letters only; backspace takes one back; the right
        // shift works too; repeats and unknown keys type nothing.
        let at = Instant::now();
        let k = |code, value| Key { code, value, at };
        let keys = [
            k(KEY_CAPSLOCK, 1),
            k(30, 1),
            k(2, 1),
            k(KEY_RIGHTSHIFT, 1),
            k(30, 1),
            k(43, 1),
            k(KEY_RIGHTSHIFT, 0),
            k(30, 2),
            k(999, 1),
            k(48, 1),
            k(KEY_BACKSPACE, 1),
            k(KEY_KPENTER, 1),
        ];
        assert_eq!(lines(&keys), ["A1a|"]);
    }

    #[test]
    fn a_line_left_unfinished_is_dropped_before_the_next_scan() {
        let mut keys = typed("001099012345|12");
        keys.pop();
        keys.pop(); // no Enter: the scan was cut short
        let later = Instant::now() + STALE + Duration::from_millis(1);
        keys.extend(typed("abc").into_iter().map(|k| Key { at: later, ..k }));
        assert_eq!(lines(&keys), ["abc"]);
    }

    #[test]
    fn typed_lines_come_out_classified() {
        let mut keys =
            typed("001099012345|123456789|Nguyen Van An|01031950|Nam|So 1 Ha Noi|15082021");
        keys.extend(typed("garbage"));
        let mut reader = LineReader::new();
        let mut got = Vec::new();
        assert!(pump(keys, &mut reader, today, &mut |s| {
            got.push(s);
            true
        }));
        assert_eq!(got.len(), 2);
        match &got[0] {
            Scan::Cccd(i) => {
                assert_eq!(i.id_number, "001099012345");
                assert_eq!(i.birth_date, "1950-03-01");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1], Scan::Unreadable(Unreadable::Foreign));
        assert!(
            !pump(typed("x"), &mut reader, today, &mut |_| false),
            "stops once nobody takes scans"
        );
    }

    #[test]
    fn a_line_too_long_is_refused() {
        let long = "1".repeat(MAX_LINE + 500);
        let got = lines(&typed(&long));
        assert_eq!(got.len(), 1);
        assert_eq!(
            classify(&got[0], today()),
            Scan::Unreadable(Unreadable::TooLong)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever a scanner types, the kiosk classifies it without a
        /// panic, and only a line of the CCCD shape gives an identity, of
        /// exactly its first and fourth fields.
        #[test]
        fn any_line_is_classified_without_a_panic(line in any::<String>()) {
            match classify(&line, today()) {
                Scan::Cccd(i) => {
                    let fields: Vec<&str> = line.trim_matches(|c: char| c.is_whitespace() || c.is_control()).split('|').collect();
                    prop_assert!(fields.len() >= 7);
                    prop_assert_eq!(fields[0].trim(), i.id_number.as_str());
                    prop_assert_eq!(i.id_number.len(), 12);
                    prop_assert_eq!(i.birth_date.len(), 10);
                }
                Scan::Booking(id) => {
                    let link = format!("/a/{}", id);
                    prop_assert!(line.contains(&link));
                    prop_assert!(valid_request_id(&id));
                }
                Scan::Unreadable(_) => {}
            }
        }

        /// Lines shaped like CCCDs, cut anywhere or with any fourth field.
        #[test]
        fn cccd_like_lines_are_classified_without_a_panic(
            id in "[0-9]{10,13}",
            dob in "[0-9]{6,9}|[0-9a-z]{8}",
            fields in 0usize..10,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut line = format!("{id}|123456789|Nguyễn Văn An|{dob}");
            for i in 0..fields {
                line.push_str(&format!("|f{i}"));
            }
            let cut = cut.index(line.len() + 1);
            let cut = (0..=cut).rev().find(|c| line.is_char_boundary(*c)).unwrap_or(0);
            let line = &line[..cut];
            if let Scan::Cccd(i) = classify(line, today()) {
                prop_assert_eq!(i.id_number, id);
                prop_assert!(line.split('|').count() >= 7);
            }
        }

        /// Any key events: no panic, and no line longer than the limit + 1.
        #[test]
        fn any_keys_make_bounded_lines(keys in prop::collection::vec((0u16..300, 0i32..3), 0..3000)) {
            let at = Instant::now();
            let mut r = LineReader::new();
            for (code, value) in keys {
                if let Some(line) = r.key(Key { code, value, at }) {
                    prop_assert!(line.len() <= MAX_LINE + 1);
                    let _ = classify(&line, today());
                }
            }
        }
    }
}
