//! The demo site: what `luot-server` runs when no configuration is given
//! (contract §1, rule 5), with its public secrets. Built in code, so it
//! never goes through the file checks (a test checks it would pass them).
//!
//! It shows §11 on "Khám Ngoại" only: a daily cap, bookings in the morning
//! and afternoon sessions, and an after-hours session to the end of the
//! day, so a walk-in is never refused for a closed session at any hour and
//! the caps are far above what a test issues. "Khám Nội" (the first
//! service, which tests and benchmarks copy) stays as before.

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveTime;

use super::types::{
    Appointments, Counter, DEFAULT_PRIORITY_CLASSES, Device, DeviceRole, Identity, IdentityRule,
    Priority, Queue, Reports, Server, Service, Session, Site, SiteConfig, User, UserRole, WalkIns,
};
use crate::secret::{hash_password, sha256_hex};

/// Secrets of the demo site, printed at start-up.
pub struct DemoSecrets {
    pub kiosk_token: String,
    pub display_token: String,
    /// Of the integration device `app-dat-lich` (a booking app, §11).
    pub integration_token: String,
    pub staff: (String, String),
    pub admin: (String, String),
}

/// The demo site used when no configuration file is given (contract §1, rule 5).
pub fn demo_site() -> (SiteConfig, DemoSecrets) {
    let secrets = DemoSecrets {
        kiosk_token: "demo-kiosk-token".into(),
        display_token: "demo-display-token".into(),
        integration_token: "demo-integration-token".into(),
        staff: ("nhanvien".into(), "demo-nhanvien".into()),
        admin: ("admin".into(), "demo-admin".into()),
    };
    let svc = |id: &str, name: &str, prefix: &str| Service {
        id: id.into(),
        name: name.into(),
        prefix: prefix.into(),
        digits: 3,
        daily_cap: None,
        walk_ins: WalkIns::All,
        identity: IdentityRule::Optional,
        sessions: Vec::new(),
    };
    let ctr = |id: &str, name: &str, services: &[&str]| Counter {
        id: id.into(),
        name: name.into(),
        services: services.iter().map(|s| s.to_string()).collect(),
        policy: None,
        returning_ratio: None,
    };
    let cfg = SiteConfig {
        site: Site {
            id: "luot".into(),
            name: "Bệnh viện Đa khoa Demo".into(),
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
            day_starts_at: NaiveTime::from_hms_opt(5, 0, 0).unwrap_or_default(),
            public_url: "http://127.0.0.1:8080".into(),
        },
        server: Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./luot-data"),
            public_board: false,
        },
        services: vec![
            svc("kham-noi", "Khám Nội", "A"),
            Service {
                daily_cap: Some(500),
                sessions: demo_sessions(),
                ..svc("kham-ngoai", "Khám Ngoại", "B")
            },
            svc("xet-nghiem", "Xét nghiệm", "C"),
        ],
        counters: vec![
            ctr("quay-1", "Quầy 1", &["kham-noi"]),
            ctr("quay-2", "Quầy 2", &["kham-noi", "kham-ngoai"]),
            ctr("quay-3", "Quầy 3", &["kham-ngoai"]),
            ctr("quay-4", "Quầy 4", &["xet-nghiem"]),
        ],
        devices: vec![
            Device {
                id: "kiosk-sanh".into(),
                role: DeviceRole::Kiosk,
                token_sha256: sha256_hex(&secrets.kiosk_token),
                services: vec!["kham-noi".into(), "kham-ngoai".into(), "xet-nghiem".into()],
            },
            Device {
                id: "tv-sanh".into(),
                role: DeviceRole::Display,
                token_sha256: sha256_hex(&secrets.display_token),
                services: vec![],
            },
            Device {
                id: "app-dat-lich".into(),
                role: DeviceRole::Integration,
                token_sha256: sha256_hex(&secrets.integration_token),
                services: vec!["kham-noi".into(), "kham-ngoai".into(), "xet-nghiem".into()],
            },
        ],
        users: vec![
            User {
                username: secrets.staff.0.clone(),
                role: UserRole::Staff,
                password_hash: hash_password(&secrets.staff.1),
                counters: vec!["quay-1".into(), "quay-2".into()],
            },
            User {
                username: secrets.admin.0.clone(),
                role: UserRole::Admin,
                password_hash: hash_password(&secrets.admin.1),
                counters: vec![],
            },
        ],
        queue: Queue::default(),
        reports: Reports::default(),
        appointments: Appointments::default(),
        identity: Identity::default(),
        webhooks: Vec::new(),
        notify: Default::default(),
        store: Default::default(),
        ha: None,
        priority: Priority {
            ratio: 3,
            classes: DEFAULT_PRIORITY_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    (cfg, secrets)
}

/// Khám Ngoại's day (which starts at 05:00): bookings 07:00–11:30 and
/// 13:30–16:30 (30-minute slots). A ticket counts in the session it is
/// issued in, else the next (rule 73): from 05:00 in the morning's, from
/// 11:30 in the afternoon's, after 16:30 in the after-hours session, which
/// runs to the end of the day (its `end` is `day_starts_at`).
fn demo_sessions() -> Vec<Session> {
    let at = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap_or_default();
    let session = |id: &str, start, end, cap, appointment_quota| Session {
        id: id.into(),
        start,
        end,
        cap,
        appointment_quota,
        slot_minutes: 30,
        slot_capacity: None,
    };
    vec![
        session("sang", at(7, 0), at(11, 30), Some(200), 40),
        session("chieu", at(13, 30), at(16, 30), Some(150), 20),
        session("ngoai-gio", at(16, 30), at(5, 0), None, 0),
    ]
}
