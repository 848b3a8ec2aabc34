//! luot-display: every screen people look at, as static assets built into
//! the binary plus `router()`, which luot-server mounts. The pages talk to the
//! server's own API (`/api/v1`, the websocket); this crate holds no state and
//! no queue rules.
//!
//! | path | screen |
//! | --- | --- |
//! | `/board` | waiting-room TV board with voice (`?services=a,b` for one area); its counter tiles grow to fill the screen; "HẾT SỐ" on a full service |
//! | `/counter/{id}` | the sign over one counter |
//! | `/console` | staff console (login, next, recall, done, no-show, transfer, open/close, a booking's check-in by its code) |
//! | `/t/{id}` | a patient's live ticket page, with a rating once served, a booking's time (`Hẹn 08:30`), and "Báo cho tôi": alerts by SMS or this phone's notifications after consent (rules 93–94) |
//! | `/sw.js` | the ticket page's service worker: shows a pushed alert, opens the ticket page when tapped |
//! | `/a/{id}` | a booking's page on a phone (§11): service, time, check-in window, status, a QR code of its own address for the kiosk's scanner, then the ticket |
//! | `/rate/{counter}` | the rating pad facing the citizen at a counter |
//! | `/admin` | devices, today's figures (services and counters by name), the day's bookings by service and session, the daily report (CSV, Excel), the visits report (rule 58: visits against their limits, a chart of each stop's wait, JSON/CSV/Excel) |

use std::path::PathBuf;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Pages and their HTML.
const BOARD: &str = include_str!("../assets/board.html");
const COUNTER: &str = include_str!("../assets/counter.html");
const CONSOLE: &str = include_str!("../assets/console.html");
const TICKET: &str = include_str!("../assets/ticket.html");
const APPOINTMENT: &str = include_str!("../assets/appointment.html");
const RATE: &str = include_str!("../assets/rate.html");
const ADMIN: &str = include_str!("../assets/admin.html");
const INDEX: &str = include_str!("../assets/index.html");
/// The ticket page's service worker (rule 93), served at the root so that
/// its scope covers `/t/`.
const SERVICE_WORKER: &str = include_str!("../assets/sw.js");

/// Shared scripts and styles under `/static/`.
const STATIC: &[(&str, &str, &str)] = &[
    (
        "luot.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/luot.js"),
    ),
    (
        "luot.css",
        "text/css; charset=utf-8",
        include_str!("../assets/luot.css"),
    ),
    (
        "voice.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/voice.js"),
    ),
    (
        "qr.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/qr.js"),
    ),
];

macro_rules! clip {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../voice/clips/", $name, ".wav")).as_slice(),
        )
    };
}

/// The default voice clips (espeak-ng, made by `voice/make-clips.sh`).
pub const CLIPS: &[(&str, &[u8])] = &[
    clip!("chime"),
    clip!("d0"),
    clip!("d1"),
    clip!("d2"),
    clip!("d3"),
    clip!("d4"),
    clip!("d5"),
    clip!("d6"),
    clip!("d7"),
    clip!("d8"),
    clip!("d9"),
    clip!("den"),
    clip!("l-a"),
    clip!("l-b"),
    clip!("l-c"),
    clip!("l-d"),
    clip!("l-e"),
    clip!("l-f"),
    clip!("l-g"),
    clip!("l-h"),
    clip!("l-i"),
    clip!("l-j"),
    clip!("l-k"),
    clip!("l-l"),
    clip!("l-m"),
    clip!("l-n"),
    clip!("l-o"),
    clip!("l-p"),
    clip!("l-q"),
    clip!("l-r"),
    clip!("l-s"),
    clip!("l-t"),
    clip!("l-u"),
    clip!("l-v"),
    clip!("l-w"),
    clip!("l-x"),
    clip!("l-y"),
    clip!("l-z"),
    clip!("lam"),
    clip!("moi-so"),
    clip!("mot2"),
    clip!("muoi"),
    clip!("muoi2"),
    clip!("phong"),
    clip!("quay"),
    clip!("tu"),
];

fn html(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"code":"not_found","message":"No such file"}}"#,
    )
        .into_response()
}

/// The screens. `voice_dir`, when it exists, holds a site's own recorded
/// clips (`moi-so.wav`, `d0.wav`, …) that replace the default ones.
pub fn router<S>(voice_dir: Option<PathBuf>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|| async { html(INDEX) }))
        .route("/board", get(|| async { html(BOARD) }))
        .route("/counter/{id}", get(|| async { html(COUNTER) }))
        .route("/console", get(|| async { html(CONSOLE) }))
        .route("/t/{id}", get(|| async { html(TICKET) }))
        .route("/a/{id}", get(|| async { html(APPOINTMENT) }))
        .route("/rate/{counter}", get(|| async { html(RATE) }))
        .route("/admin", get(|| async { html(ADMIN) }))
        .route(
            "/sw.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    SERVICE_WORKER,
                )
                    .into_response()
            }),
        )
        .route(
            "/static/{name}",
            get(|Path(name): Path<String>| async move {
                match STATIC.iter().find(|(n, _, _)| *n == name) {
                    Some((_, ct, body)) => (
                        [
                            (header::CONTENT_TYPE, *ct),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        *body,
                    )
                        .into_response(),
                    None => not_found(),
                }
            }),
        )
        .route(
            "/voice/{name}",
            get(move |Path(name): Path<String>| {
                let dir = voice_dir.clone();
                async move { voice(dir, &name).await }
            }),
        )
}

async fn voice(dir: Option<PathBuf>, name: &str) -> Response {
    let Some(stem) = name.strip_suffix(".wav") else {
        return not_found();
    };
    if !stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return not_found();
    }
    let wav = [
        (header::CONTENT_TYPE, "audio/wav"),
        (header::CACHE_CONTROL, "max-age=3600"),
    ];
    if let Some(dir) = dir
        && let Ok(bytes) = std::fs::read(dir.join(name))
    {
        // Small files, read rarely (browsers cache them): a plain read is fine.
        return (wav, bytes).into_response();
    }
    match CLIPS.iter().find(|(n, _)| *n == stem) {
        Some((_, bytes)) => (wav, *bytes).into_response(),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get_status(app: Router, uri: &str) -> (StatusCode, usize, String) {
        let r = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(r.into_body(), 1 << 24).await.unwrap();
        (status, body.len(), ct)
    }

    #[tokio::test]
    async fn pages_assets_and_clips_are_served() {
        for uri in [
            "/board",
            "/counter/quay-1",
            "/console",
            "/t/tk_x",
            "/a/ap_x",
            "/rate/quay-1",
            "/admin",
            "/",
        ] {
            let (s, n, ct) = get_status(router(None), uri).await;
            assert_eq!(s, StatusCode::OK, "{uri}");
            assert!(n > 200 && ct.starts_with("text/html"), "{uri}");
        }
        let (s, _, ct) = get_status(router(None), "/static/luot.js").await;
        assert_eq!(
            (s, ct.starts_with("text/javascript")),
            (StatusCode::OK, true)
        );
        let (s, n, ct) = get_status(router(None), "/sw.js").await;
        assert_eq!(
            (s, ct.starts_with("text/javascript"), n > 200),
            (StatusCode::OK, true, true),
            "the ticket page's service worker"
        );
        let (s, _, ct) = get_status(router(None), "/static/qr.js").await;
        assert_eq!(
            (s, ct.starts_with("text/javascript")),
            (StatusCode::OK, true)
        );
        let (s, n, ct) = get_status(router(None), "/voice/moi-so.wav").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "audio/wav"));
        assert!(n > 1000);
        assert_eq!(
            get_status(router(None), "/voice/../secret.wav").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get_status(router(None), "/static/nope.js").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn a_site_clip_replaces_the_default() {
        let dir = std::env::temp_dir().join(format!("luot-voice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("d1.wav"), b"RIFF-recorded").unwrap();
        let (s, n, _) = get_status(router(Some(dir.clone())), "/voice/d1.wav").await;
        assert_eq!((s, n), (StatusCode::OK, 13));
        let (_, n, _) = get_status(router(Some(dir.clone())), "/voice/d2.wav").await;
        assert!(n > 1000, "others stay the default");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_clip_the_announcer_uses_exists() {
        let js = include_str!("../assets/voice.js");
        for name in [
            "chime", "moi-so", "den", "quay", "phong", "muoi", "muoi2", "mot2", "lam", "tu",
        ] {
            assert!(CLIPS.iter().any(|(n, _)| *n == name), "{name}");
            assert!(js.contains(&format!("'{name}'")), "voice.js uses {name}");
        }
        for d in 0..10 {
            assert!(CLIPS.iter().any(|(n, _)| *n == format!("d{d}")));
        }
        for l in 'a'..='z' {
            assert!(CLIPS.iter().any(|(n, _)| *n == format!("l-{l}")));
        }
    }

    #[test]
    fn board_page_weight_without_audio_is_small() {
        let weight = BOARD.len() + STATIC.iter().map(|(_, _, b)| b.len()).sum::<usize>();
        assert!(weight < 200 * 1024, "board page weight {weight} bytes");
    }
}
