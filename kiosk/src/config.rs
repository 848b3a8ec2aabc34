//! `kiosk.toml`: how to reach the server and what hardware this kiosk has.
//! Validated once at start with errors that name the field. Service names,
//! the site name and `public_url` come from the server's `welcome` (rule 30).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::printer::Target;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskConfig {
    /// How long after a press the kiosk keeps asking (over reconnects and
    /// `unavailable` answers) before the out-of-service slip, in seconds
    /// (rule 107; default 8; an HA site sets it above its failover bound,
    /// e.g. 20). A top-level key; `[server] issue_deadline_s` is read too.
    #[serde(default)]
    pub issue_deadline_s: Option<u64>,
    pub server: ServerConfig,
    pub printer: PrinterConfig,
    #[serde(default)]
    pub site: SiteText,
    #[serde(default)]
    pub buttons: Vec<Button>,
    #[serde(default)]
    pub leds: Leds,
    #[serde(default)]
    pub touch: Touch,
    /// A USB QR scanner (rule 83), if the kiosk has one.
    #[serde(default)]
    pub scanner: Option<Scanner>,
    #[serde(default)]
    pub state: State,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanner {
    /// The scanner's event device (keyboard mode), e.g.
    /// `/dev/input/by-id/usb-…-event-kbd`; grabbed, so its keys reach only
    /// the kiosk.
    pub device: PathBuf,
    /// How long a scanned CCCD waits for a press or check-in, in seconds.
    #[serde(default = "default_hold_s")]
    pub hold_s: u64,
    /// Accept a plain `http://` server, over which ID numbers would travel
    /// unencrypted (only where the network is protected otherwise).
    #[serde(default)]
    pub allow_plain: bool,
}

fn default_hold_s() -> u64 {
    30
}

/// Rule 107's default `issue_deadline_s`.
pub const DEFAULT_ISSUE_DEADLINE_S: u64 = 8;
/// The longest `issue_deadline_s` accepted: a person will not wait longer.
pub const MAX_ISSUE_DEADLINE_S: u64 = 120;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `http://host:port` of luot-server (the websocket is `/api/v1/ws` under it).
    pub url: String,
    /// The device token made by `luot-server token`.
    pub token: String,
    /// The same as the top-level `issue_deadline_s` (either place, not both).
    #[serde(default)]
    pub issue_deadline_s: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// `usb:VID:PID`, `file:PATH` or `tcp:HOST:PORT`.
    pub target: String,
    /// 80 (576 dots) or 58 (384 dots).
    #[serde(default = "default_paper")]
    pub paper_mm: u32,
}

fn default_paper() -> u32 {
    80
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteText {
    /// The last line of every ticket.
    #[serde(default = "default_footer")]
    pub footer: String,
    /// Where to go when the kiosk cannot give a number (printed and shown).
    #[serde(default = "default_help")]
    pub help: String,
}

fn default_footer() -> String {
    "Vui lòng chờ gọi số".into()
}

fn default_help() -> String {
    "Xin mời đến Quầy Tiếp đón để được hỗ trợ.".into()
}

impl Default for SiteText {
    fn default() -> Self {
        SiteText {
            footer: default_footer(),
            help: default_help(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// BCM GPIO number; the button connects it to ground (internal pull-up).
    pub pin: u8,
    /// The service id this button issues.
    pub service: String,
    /// Optional priority class for a dedicated priority button.
    #[serde(default)]
    pub priority: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leds {
    /// BCM GPIO of a "ready" LED: steady when ready, blinking when not.
    #[serde(default)]
    pub ready: Option<u8>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Touch {
    /// Serve the touch-screen page (one big button per service).
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_touch_listen")]
    pub listen: SocketAddr,
}

fn default_touch_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

impl Default for Touch {
    fn default() -> Self {
        Touch {
            enabled: false,
            listen: default_touch_listen(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Where the request counter is kept across restarts.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/luot-kiosk")
}

impl Default for State {
    fn default() -> Self {
        State {
            dir: default_state_dir(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl KioskConfig {
    pub fn load(path: &Path) -> Result<KioskConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    pub fn parse(file: &str, text: &str) -> Result<KioskConfig, ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            file: file.to_string(),
            field: field.to_string(),
            message,
        };
        let cfg: KioskConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
            err(&format!("line {line}"), e.message().to_string())
        })?;
        if !(cfg.server.url.starts_with("http://") || cfg.server.url.starts_with("https://")) {
            return Err(err(
                "server.url",
                format!("\"{}\" must start with http:// or https://", cfg.server.url),
            ));
        }
        if cfg.server.token.trim().is_empty() {
            return Err(err(
                "server.token",
                "the device token is empty; make one with `luot-server token`".into(),
            ));
        }
        Target::parse(&cfg.printer.target).map_err(|m| err("printer.target", m))?;
        if cfg.printer.paper_mm != 80 && cfg.printer.paper_mm != 58 {
            return Err(err(
                "printer.paper_mm",
                format!(
                    "{} mm paper is not supported (80 or 58)",
                    cfg.printer.paper_mm
                ),
            ));
        }
        let mut pins = std::collections::HashSet::new();
        for (i, b) in cfg.buttons.iter().enumerate() {
            if b.pin > 27 {
                return Err(err(
                    &format!("buttons[{i}].pin"),
                    format!(
                        "GPIO {} does not exist on a Raspberry Pi header (0-27)",
                        b.pin
                    ),
                ));
            }
            if !pins.insert(b.pin) {
                return Err(err(
                    &format!("buttons[{i}].pin"),
                    format!("GPIO {} is used twice", b.pin),
                ));
            }
            if b.service.is_empty() {
                return Err(err(
                    &format!("buttons[{i}].service"),
                    "empty service id".into(),
                ));
            }
        }
        let deadline_field = match (cfg.issue_deadline_s, cfg.server.issue_deadline_s) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "server.issue_deadline_s",
                    "issue_deadline_s được ghi hai lần; chỉ giữ một (issue_deadline_s is set both at the top and in [server]; keep one)".into(),
                ));
            }
            (_, Some(_)) => "server.issue_deadline_s",
            _ => "issue_deadline_s",
        };
        let deadline = cfg.issue_deadline_secs();
        if !(1..=MAX_ISSUE_DEADLINE_S).contains(&deadline) {
            return Err(err(
                deadline_field,
                format!(
                    "{deadline} giây không hợp lệ, cần từ 1 đến {MAX_ISSUE_DEADLINE_S} (issue_deadline_s must be 1-{MAX_ISSUE_DEADLINE_S} seconds)"
                ),
            ));
        }
        if let Some(p) = cfg.leds.ready
            && (p > 27 || pins.contains(&p))
        {
            return Err(err(
                "leds.ready",
                format!("GPIO {p} is not free (0-27, not a button)"),
            ));
        }
        if let Some(scanner) = &cfg.scanner {
            if scanner.device.as_os_str().is_empty() {
                return Err(err(
                    "scanner.device",
                    "Chưa ghi thiết bị của máy quét, ví dụ /dev/input/by-id/usb-…-event-kbd (the scanner's event device is empty)".into(),
                ));
            }
            if !(1..=600).contains(&scanner.hold_s) {
                return Err(err(
                    "scanner.hold_s",
                    format!(
                        "{} giây không hợp lệ, cần từ 1 đến 600 (hold_s must be 1-600 seconds)",
                        scanner.hold_s
                    ),
                ));
            }
            if cfg.server.url.starts_with("http://") && !scanner.allow_plain {
                return Err(err(
                    "scanner.allow_plain",
                    format!(
                        "Máy quét CCCD gửi số CCCD và ngày sinh tới máy chủ, nhưng server.url \"{}\" là http:// (không mã hóa). \
                         Hãy dùng https://, hoặc đặt allow_plain = true trong [scanner] nếu đường mạng tới máy chủ đã được bảo vệ. \
                         (With a CCCD scanner the kiosk refuses a plain http:// server unless [scanner] allow_plain = true.)",
                        cfg.server.url
                    ),
                ));
            }
        }
        // No [[buttons]] and no [touch]: a desk printer (rule 66), which
        // only prints the jobs staff send it.
        Ok(cfg)
    }

    fn issue_deadline_secs(&self) -> u64 {
        self.issue_deadline_s
            .or(self.server.issue_deadline_s)
            .unwrap_or(DEFAULT_ISSUE_DEADLINE_S)
    }

    /// How long a press keeps trying before the out-of-service slip (rule
    /// 107's `issue_deadline_s`, 8 s by default).
    pub fn issue_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.issue_deadline_secs())
    }

    /// How long a scanned CCCD is held (rule 83's `hold_s`, 30 s by default).
    pub fn hold(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.scanner
                .as_ref()
                .map_or_else(default_hold_s, |s| s.hold_s),
        )
    }

    pub fn width_dots(&self) -> u32 {
        if self.printer.paper_mm == 58 {
            384
        } else {
            576
        }
    }
}

/// The websocket URL for a server's `http(s)://` URL.
pub fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/api/v1/ws")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
url = "http://192.168.1.10:8080"
token = "abc"

[printer]
target = "usb:0416:5011"

[[buttons]]
pin = 17
service = "kham-noi"

[[buttons]]
pin = 22
service = "kham-ngoai"

[leds]
ready = 27
"#;

    #[test]
    fn example_parses_with_defaults() {
        let c = KioskConfig::parse("k.toml", GOOD).unwrap();
        assert_eq!(c.width_dots(), 576);
        assert_eq!(c.buttons.len(), 2);
        assert_eq!(c.site.footer, "Vui lòng chờ gọi số");
        assert_eq!(ws_url(&c.server.url), "ws://192.168.1.10:8080/api/v1/ws");
    }

    #[test]
    fn shipped_example_is_valid() {
        let text = include_str!("../kiosk.example.toml");
        KioskConfig::parse("kiosk.example.toml", text).unwrap();
    }

    #[test]
    fn a_desk_printer_has_no_buttons() {
        let text = GOOD.split("[[buttons]]").next().unwrap();
        let c = KioskConfig::parse("k.toml", text).unwrap();
        assert!(c.buttons.is_empty());
        assert!(!c.touch.enabled);
    }

    #[test]
    fn a_scanner_with_a_plain_server_needs_allow_plain() {
        let with = |url: &str, extra: &str| {
            let text = GOOD.replace("http://192.168.1.10:8080", url)
                + &format!("\n[scanner]\ndevice = \"/dev/input/event3\"\n{extra}");
            KioskConfig::parse("k.toml", &text)
        };
        let e = with("http://192.168.1.10:8080", "").unwrap_err();
        assert_eq!(e.field, "scanner.allow_plain");
        assert!(
            e.message.starts_with("Máy quét CCCD") && e.message.contains("allow_plain = true"),
            "Vietnamese first, and what to do: {e}"
        );
        let c = with("http://192.168.1.10:8080", "allow_plain = true").unwrap();
        assert_eq!(c.hold(), std::time::Duration::from_secs(30));
        let c = with("https://luot.benhvien.vn", "hold_s = 45").unwrap();
        assert_eq!(
            c.scanner.as_ref().unwrap().device.to_str(),
            Some("/dev/input/event3")
        );
        assert_eq!(c.hold(), std::time::Duration::from_secs(45));
        let e = with("https://luot.benhvien.vn", "hold_s = 0").unwrap_err();
        assert_eq!(e.field, "scanner.hold_s");
        // Without a scanner an http:// server is fine, as before.
        let c = KioskConfig::parse("k.toml", GOOD).unwrap();
        assert!(c.scanner.is_none());
        assert_eq!(c.hold(), std::time::Duration::from_secs(30));
    }

    #[test]
    fn issue_deadline_s_is_8_by_default_and_an_ha_site_sets_it() {
        let secs = |c: &KioskConfig| c.issue_deadline().as_secs();
        let c = KioskConfig::parse("k.toml", GOOD).unwrap();
        assert_eq!(secs(&c), 8, "rule 107's default");
        let c = KioskConfig::parse("k.toml", &format!("issue_deadline_s = 20\n{GOOD}")).unwrap();
        assert_eq!(secs(&c), 20, "a top-level key");
        let in_server = GOOD.replace("token = \"abc\"", "token = \"abc\"\nissue_deadline_s = 20");
        let c = KioskConfig::parse("k.toml", &in_server).unwrap();
        assert_eq!(secs(&c), 20, "or in [server]");
        let both = format!("issue_deadline_s = 20\n{in_server}");
        let e = KioskConfig::parse("k.toml", &both).unwrap_err();
        assert_eq!(e.field, "server.issue_deadline_s");
        for bad in ["0", "121"] {
            let e = KioskConfig::parse("k.toml", &format!("issue_deadline_s = {bad}\n{GOOD}"))
                .unwrap_err();
            assert_eq!(e.field, "issue_deadline_s");
            assert!(
                e.message.starts_with(bad) && e.message.contains("giây"),
                "{e}"
            );
        }
        let e = KioskConfig::parse("k.toml", &format!("issue_deadline_s = \"20\"\n{GOOD}"))
            .unwrap_err();
        assert!(e.field.starts_with("line"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = KioskConfig::parse("k.toml", &GOOD.replace("pin = 22", "pin = 17")).unwrap_err();
        assert_eq!(e.field, "buttons[1].pin");
        let e = KioskConfig::parse("k.toml", &GOOD.replace("usb:0416:5011", "lpt1")).unwrap_err();
        assert_eq!(e.field, "printer.target");
        let e = KioskConfig::parse(
            "k.toml",
            &GOOD.replace("target =", "paper_mm = 72\ntarget ="),
        )
        .unwrap_err();
        assert_eq!(e.field, "printer.paper_mm");
        let e = KioskConfig::parse("k.toml", &GOOD.replace("http://", "ftp://")).unwrap_err();
        assert_eq!(e.field, "server.url");
        let e =
            KioskConfig::parse("k.toml", &GOOD.replace("ready = 27", "ready = 22")).unwrap_err();
        assert_eq!(e.field, "leds.ready");
        let e = KioskConfig::parse("k.toml", &GOOD.replace("token = \"abc\"", "tokn = \"abc\""))
            .unwrap_err();
        assert!(e.message.contains("tokn"), "{e}");
    }
}
