//! The print checks of `App` (rules 66 and 88) against a real hub on the
//! in-memory store: who may ask, rule 88's order of 400, 404 and 409, the
//! replay of a `request_id`, and the `print` frames a kiosk's connections
//! get at once and again after each hello until answered.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use luot_protocol::{IssueRequest, PrintRequest, PrinterStatus, ServerMessage, TicketStatus};

use super::*;
use crate::clock::Knobs;
use crate::config::{Device, demo_site};
use crate::plan::DeviceUpdate;
use crate::store::memory::MemStore;

/// The demo site with a desk printer (a kiosk with no services).
async fn app() -> Arc<App> {
    let mut config = demo_site().0;
    config.devices.push(Device {
        id: "ban-tiep-don".into(),
        role: DeviceRole::Kiosk,
        token_sha256: "d".repeat(64),
        services: vec![],
    });
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let hub = Hub::start(
        config.clone(),
        Arc::new(MemStore::new()),
        metrics.clone(),
        Knobs::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Handle::current();
    let fanout = Fanout::start(&rt, &hub, 1);
    let (_stop, shutdown) = watch::channel(false);
    Arc::new(App::new(hub, config, metrics, rt, fanout, shutdown))
}

fn staff() -> Principal {
    Principal::User {
        username: "nhanvien".into(),
        role: UserRole::Staff,
        counters: vec!["quay-1".into(), "quay-2".into()],
    }
}

fn admin() -> Principal {
    Principal::User {
        username: "admin".into(),
        role: UserRole::Admin,
        counters: vec![],
    }
}

async fn issue(app: &App, service: &str, request_id: &str) -> Ticket {
    let req = IssueRequest {
        service: service.into(),
        priority: None,
        request_id: request_id.into(),
        identity: None,
        external_ref: None,
        print_at: None,
        notify: None,
    };
    app.issue(&staff(), req).await.unwrap().ticket
}

async fn print(
    app: &App,
    who: &Principal,
    ticket: &str,
    kiosk: &str,
    request_id: &str,
) -> Result<String, (u16, &'static str)> {
    let req = PrintRequest {
        kiosk: kiosk.into(),
        request_id: request_id.into(),
    };
    app.print(who, ticket, req)
        .await
        .map(|a| a.print_id)
        .map_err(|e| (e.status.as_u16(), e.code))
}

/// Tells the hub about a kiosk's connection and printer, and waits until
/// `/devices` shows it.
async fn kiosk_reports(app: &App, kiosk: &str, printer: PrinterStatus) {
    app.hub.device(kiosk, DeviceUpdate::Connected);
    app.hub.device(kiosk, DeviceUpdate::Printer(printer));
    for _ in 0..500 {
        let shown = app
            .hub
            .devices()
            .await
            .into_iter()
            .any(|d| d.id == kiosk && d.connected && d.printer == Some(printer));
        if shown {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the hub never showed {kiosk} with {printer:?}");
}

/// The next `print` frame on a kiosk connection: (print_id, ticket number,
/// service name).
async fn next_job(
    rx: &mut mpsc::Receiver<axum::extract::ws::Utf8Bytes>,
) -> (String, String, String) {
    let text = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a print frame")
        .expect("the connection's channel is open");
    match serde_json::from_str::<ServerMessage>(&text).unwrap() {
        ServerMessage::Print {
            print_id,
            ticket,
            service_name,
            ..
        } => (print_id, ticket.number, service_name.unwrap_or_default()),
        other => panic!("not a print job: {other:?}"),
    }
}

#[tokio::test]
async fn only_staff_and_admins_print_and_rule_88s_checks_come_in_order() {
    let app = app().await;
    let t = issue(&app, "kham-noi", "r1").await;

    // 403 for devices, before any look at the body.
    let kiosk = Principal::Device {
        id: "kiosk-sanh".into(),
        role: DeviceRole::Kiosk,
        services: vec!["kham-noi".into()],
    };
    let display = Principal::Device {
        id: "tv-sanh".into(),
        role: DeviceRole::Display,
        services: vec![],
    };
    for who in [&kiosk, &display, &Principal::PublicDisplay] {
        let long = "k".repeat(65);
        assert_eq!(
            print(&app, who, "tk_nope", &long, "").await,
            Err((403, "forbidden"))
        );
    }
    // 400 (kiosk over 64 characters, a bad request_id) before the 404s.
    let long = "k".repeat(65);
    for (kiosk, rid) in [
        (long.as_str(), "p1"),
        ("kiosk-sanh", ""),
        ("kiosk-sanh", "có dấu"),
    ] {
        for ticket in [t.id.as_str(), "tk_nope"] {
            assert_eq!(
                print(&app, &staff(), ticket, kiosk, rid).await,
                Err((400, "bad_request")),
                "{kiosk} {rid:?}"
            );
        }
    }
    // 404: the ticket, then the device, which must be a kiosk.
    assert_eq!(
        print(&app, &staff(), "tk_nope", "nobody", "p1").await,
        Err((404, "unknown_ticket"))
    );
    for kiosk in ["nobody", "tv-sanh", "k".repeat(64).as_str()] {
        assert_eq!(
            print(&app, &staff(), &t.id, kiosk, "p1").await,
            Err((404, "unknown_device")),
            "{kiosk}"
        );
    }
    // 409: a closed ticket comes before an unavailable kiosk.
    let done = issue(&app, "xet-nghiem", "r2").await;
    app.counter(&admin(), "quay-4", CounterAction::Next)
        .await
        .unwrap();
    app.counter(&admin(), "quay-4", CounterAction::Done)
        .await
        .unwrap();
    assert_eq!(
        app.ticket(&done.id).await.unwrap().status,
        TicketStatus::Done
    );
    assert_eq!(
        print(&app, &staff(), &done.id, "kiosk-sanh", "p1").await,
        Err((409, "ticket_closed"))
    );
    // Not connected; then printers that cannot print.
    assert_eq!(
        print(&app, &staff(), &t.id, "kiosk-sanh", "p1").await,
        Err((409, "kiosk_unavailable"))
    );
    for status in [
        PrinterStatus::PaperOut,
        PrinterStatus::CoverOpen,
        PrinterStatus::Offline,
    ] {
        kiosk_reports(&app, "kiosk-sanh", status).await;
        assert_eq!(
            print(&app, &staff(), &t.id, "kiosk-sanh", "p1").await,
            Err((409, "kiosk_unavailable")),
            "{status:?}"
        );
    }
    // A ticket closed while the kiosk is fine is still ticket_closed.
    kiosk_reports(&app, "kiosk-sanh", PrinterStatus::PaperLow).await;
    assert_eq!(
        print(&app, &staff(), &done.id, "kiosk-sanh", "p1").await,
        Err((409, "ticket_closed"))
    );
    // The refusals took nothing: p1 is still free, and paper_low prints.
    let id = print(&app, &staff(), &t.id, "kiosk-sanh", "p1")
        .await
        .unwrap();
    assert!(id.starts_with("pr_") && id.len() > 16, "{id}");
    // A desk printer is a kiosk too.
    kiosk_reports(&app, "ban-tiep-don", PrinterStatus::Ok).await;
    assert!(
        print(&app, &admin(), &t.id, "ban-tiep-don", "p1")
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_job_goes_to_the_kiosks_connections_and_again_after_each_hello_until_answered() {
    let app = app().await;
    let a = issue(&app, "kham-noi", "r1").await;
    let b = issue(&app, "kham-ngoai", "r2").await;
    kiosk_reports(&app, "kiosk-sanh", PrinterStatus::Ok).await;
    kiosk_reports(&app, "ban-tiep-don", PrinterStatus::Ok).await;
    let (tx, mut conn) = mpsc::channel(16);
    let first_conn = app.attach_printer("kiosk-sanh", tx);
    let (desk_tx, mut desk) = mpsc::channel(16);
    app.attach_printer("ban-tiep-don", desk_tx);

    // Sent at once to the kiosk named, with the ticket as it is now.
    let p1 = print(&app, &staff(), &a.id, "kiosk-sanh", "p1")
        .await
        .unwrap();
    assert_eq!(
        next_job(&mut conn).await,
        (p1.clone(), "A001".to_string(), "Khám Nội".to_string())
    );
    // A replay is the same job and sends nothing: the next frame on the
    // connection is the next job.
    assert_eq!(
        print(&app, &staff(), &a.id, "kiosk-sanh", "p1").await,
        Ok(p1.clone())
    );
    assert_eq!(
        print(&app, &staff(), &b.id, "kiosk-sanh", "p1").await,
        Err((409, "request_id_reused"))
    );
    let p2 = print(&app, &staff(), &b.id, "kiosk-sanh", "p2")
        .await
        .unwrap();
    assert_eq!(next_job(&mut conn).await.0, p2);
    // The desk printer got only its own job.
    let p3 = print(&app, &staff(), &b.id, "ban-tiep-don", "p3")
        .await
        .unwrap();
    assert_eq!(
        next_job(&mut desk).await,
        (p3, "B001".to_string(), "Khám Ngoại".to_string())
    );
    // The kiosk reconnects: both unanswered jobs again, oldest first.
    app.prints.detach("kiosk-sanh", first_conn);
    let (tx, mut conn) = mpsc::channel(16);
    let second_conn = app.attach_printer("kiosk-sanh", tx);
    assert_eq!(next_job(&mut conn).await.0, p1);
    assert_eq!(next_job(&mut conn).await.0, p2);
    // Answers end the resending: only the kiosk the job is for may answer,
    // and `ok: false` is an answer too.
    app.printed("ban-tiep-don", &p1, true);
    app.printed("kiosk-sanh", &p2, false);
    app.prints.detach("kiosk-sanh", second_conn);
    let (tx, mut conn) = mpsc::channel(16);
    app.attach_printer("kiosk-sanh", tx);
    assert_eq!(next_job(&mut conn).await.0, p1, "not answered by its kiosk");
    app.printed("kiosk-sanh", &p1, true);
    let (tx, mut conn) = mpsc::channel(16);
    app.attach_printer("kiosk-sanh", tx);
    let p4 = print(&app, &staff(), &a.id, "kiosk-sanh", "p4")
        .await
        .unwrap();
    assert_eq!(
        next_job(&mut conn).await.0,
        p4,
        "answered jobs are not sent again"
    );
}

/// An issue with `external_ref` and `print_at` (rules 87, 88) by `who`.
async fn issue_at(
    app: &App,
    who: &Principal,
    request_id: &str,
    print_at: Option<&str>,
    external_ref: Option<&str>,
) -> Result<Issued, (u16, &'static str)> {
    let req = IssueRequest {
        service: "kham-noi".into(),
        priority: None,
        request_id: request_id.into(),
        identity: None,
        external_ref: external_ref.map(String::from),
        print_at: print_at.map(String::from),
        notify: None,
    };
    app.issue(who, req)
        .await
        .map_err(|e| (e.status.as_u16(), e.code))
}

#[tokio::test]
async fn print_at_issues_only_where_a_kiosk_can_print_and_sends_it_a_new_ticket_not_a_reprint() {
    let app = app().await;
    let kiosk = Principal::Device {
        id: "kiosk-sanh".into(),
        role: DeviceRole::Kiosk,
        services: vec!["kham-noi".into()],
    };
    // A kiosk may send neither field (403), but only after the 400s.
    let long = "k".repeat(65);
    assert_eq!(
        issue_at(&app, &kiosk, "r1", Some(&long), None).await.err(),
        Some((400, "bad_request"))
    );
    assert_eq!(
        issue_at(&app, &kiosk, "r1", None, Some("a\u{1}b"))
            .await
            .err(),
        Some((400, "bad_request"))
    );
    assert_eq!(
        issue_at(&app, &kiosk, "r1", Some("kiosk-sanh"), None)
            .await
            .err(),
        Some((403, "forbidden"))
    );
    assert_eq!(
        issue_at(&app, &kiosk, "r1", None, Some("HIS-1"))
            .await
            .err(),
        Some((403, "forbidden"))
    );
    // 404 for a device that is not a kiosk, then 409 while the kiosk is
    // away: nothing is issued either time.
    assert_eq!(
        issue_at(&app, &staff(), "r1", Some("tv-sanh"), None)
            .await
            .err(),
        Some((404, "unknown_device"))
    );
    assert_eq!(
        issue_at(&app, &staff(), "r1", Some("kiosk-sanh"), None)
            .await
            .err(),
        Some((409, "kiosk_unavailable"))
    );
    assert_eq!(app.site().await.services[0].waiting, 0, "nothing issued");

    kiosk_reports(&app, "kiosk-sanh", PrinterStatus::Ok).await;
    let (tx, mut conn) = mpsc::channel(16);
    app.attach_printer("kiosk-sanh", tx);
    let issued = issue_at(&app, &staff(), "r1", Some("kiosk-sanh"), Some("HIS-1"))
        .await
        .unwrap();
    assert!(issued.created);
    assert_eq!(issued.ticket.external_ref.as_deref(), Some("HIS-1"));
    let print_id = issued.print_id.clone().unwrap();
    let text = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !text.contains("HIS-1"),
        "the kiosk never sees the reference: {text}"
    );
    match serde_json::from_str::<ServerMessage>(&text).unwrap() {
        ServerMessage::Print {
            print_id: id,
            ticket,
            reprint,
            ..
        } => {
            assert_eq!(
                (id, ticket.id),
                (print_id.clone(), issued.ticket.id.clone())
            );
            assert!(!reprint, "a new ticket, printed as §7's, not \"In lại\"");
        }
        other => panic!("not a print job: {other:?}"),
    }
    // The kiosk goes away; a replay is the same ticket and the same job.
    app.hub.device("kiosk-sanh", DeviceUpdate::Disconnected);
    let again = issue_at(&app, &staff(), "r1", Some("kiosk-sanh"), Some("HIS-1"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.ticket.id, issued.ticket.id);
    assert_eq!(again.print_id.as_deref(), Some(print_id.as_str()));
    // Sent again after the kiosk's next hello, still not a reprint.
    let (tx, mut conn) = mpsc::channel(16);
    app.attach_printer("kiosk-sanh", tx);
    let text = tokio::time::timeout(Duration::from_secs(10), conn.recv())
        .await
        .unwrap()
        .unwrap();
    let again: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&again["print_id"], &again["reprint"]),
        (&serde_json::json!(print_id), &serde_json::json!(false))
    );
}
