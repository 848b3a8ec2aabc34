//! Rule 115 over real HTTP: a day shipped by a site, reported by central
//! with hand-checked figures, equal to the site's own report code on the
//! same tickets; CSV columns exact; the XLSX opens; incomplete days say so.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const D: &str = "2026-11-22";

fn t(
    id: &str,
    service: &str,
    status: &str,
    counter: Option<&str>,
    issued: &str,
    called: Option<&str>,
    finished: Option<&str>,
) -> Value {
    let at = |s: &str| format!("{D}T{s}+07:00");
    ticket(
        id,
        "A001",
        service,
        status,
        counter,
        &at(issued),
        called.map(at).as_deref(),
        finished.map(at).as_deref(),
        D,
    )
}

/// One day at site A: h_a waits 120 s and is served 300 s and rated 5;
/// h_b waits 540 s and is a no-show; h_c (another service) is still
/// waiting when the next day starts.
fn the_day() -> (Vec<Value>, Vec<Value>) {
    let at = |s: &str| format!("{D}T{s}+07:00");
    let e = vec![
        ev(1, &at("05:00:00"), json!({"kind": "day_started", "day": D})),
        ev(
            2,
            &at("07:00:00"),
            json!({"kind": "ticket_issued", "ticket": t("h_a", "kham", "waiting", None, "07:00:00", None, None)}),
        ),
        ev(
            3,
            &at("07:01:00"),
            json!({"kind": "ticket_issued", "ticket": t("h_b", "kham", "waiting", None, "07:01:00", None, None)}),
        ),
        ev(
            4,
            &at("07:02:00"),
            json!({"kind": "ticket_called", "counter": "q1", "ticket": t("h_a", "kham", "called", Some("q1"), "07:00:00", Some("07:02:00"), None)}),
        ),
        ev(
            5,
            &at("07:07:00"),
            json!({"kind": "ticket_done", "counter": "q1", "ticket": t("h_a", "kham", "done", Some("q1"), "07:00:00", Some("07:02:00"), Some("07:07:00"))}),
        ),
        ev(
            6,
            &at("07:10:00"),
            json!({"kind": "ticket_called", "counter": "q1", "ticket": t("h_b", "kham", "called", Some("q1"), "07:01:00", Some("07:10:00"), None)}),
        ),
        ev(
            7,
            &at("07:12:00"),
            json!({"kind": "ticket_no_show", "counter": "q1", "ticket": t("h_b", "kham", "no_show", Some("q1"), "07:01:00", Some("07:10:00"), Some("07:12:00"))}),
        ),
        ev(
            8,
            &at("08:00:00"),
            json!({"kind": "ticket_issued", "ticket": t("h_c", "xn", "waiting", None, "08:00:00", None, None)}),
        ),
        ev(
            9,
            "2026-11-23T05:00:00+07:00",
            json!({"kind": "day_started", "day": "2026-11-23"}),
        ),
    ];
    let r = vec![json!({"after_seq": 5, "at": at("07:08:00"), "ticket": "h_a", "rating": 5})];
    (e, r)
}

fn row<'a>(rows: &'a [Value], kind: &str, id: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["kind"] == kind && r["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} row {id} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_day_is_reported_as_the_site_reports_it() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let (events, ratings) = the_day();
    let b = batch("bv-a", &[(E1, 1)], E1, 9, 1, events.clone(), ratings);
    assert_eq!(c.post("/ingest", Some(TOKEN_A), &b).await.status, 200);
    let a = c
        .get(
            &format!("/reports/daily?from={D}&to={D}&site=bv-a"),
            Some(&admin),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["from"].clone(), a.body["to"].clone()),
        (json!(D), json!(D))
    );
    let rows = a.body["rows"].as_array().unwrap().clone();
    let kham = row(&rows, "service", "kham");
    assert_eq!(kham["site"], "bv-a");
    assert_eq!(kham["day"], D);
    assert_eq!(kham["complete"], true);
    assert_eq!(kham["issued"], 2);
    assert_eq!(kham["served"], 1);
    assert_eq!(kham["no_shows"], 1);
    assert_eq!(
        kham["wait_s"],
        json!({"mean": 330.0, "p50": 120.0, "p90": 540.0})
    );
    assert_eq!(
        kham["service_s"],
        json!({"mean": 300.0, "p50": 300.0, "p90": 300.0})
    );
    assert_eq!(kham["ratings"], json!({"count": 1, "mean": 5.0}));
    let xn = row(&rows, "service", "xn");
    assert_eq!(
        (xn["issued"].clone(), xn["no_shows"].clone()),
        (json!(1), json!(1)),
        "closed by the next day_started"
    );
    let q1 = row(&rows, "counter", "q1");
    assert_eq!(q1["served"], 1);
    assert_eq!(q1["no_shows"], 1);
    assert_eq!(q1["wait_s"]["mean"], 330.0);
    assert!(q1.get("issued").is_none());
    let site = row(&rows, "site", "bv-a");
    assert_eq!(site["issued"], 3);
    assert_eq!(site["served"], 1);
    assert_eq!(site["no_shows"], 2);
    assert_eq!(site["wait_s"]["mean"], 330.0);
    assert_eq!(site["ratings"]["count"], 1);

    // The site's own report code on the same tickets gives the same rows,
    // once central holds the site's configuration (its order of rows).
    let cfg_toml =
        "[site]\nname = \"A\"\n[[services]]\nid = \"kham\"\nname = \"Khám\"\nprefix = \"A\"\n\
         [[services]]\nid = \"xn\"\nname = \"Xét nghiệm\"\nprefix = \"B\"\n\
         [[counters]]\nid = \"q1\"\nname = \"Quầy 1\"\nservices = [\"kham\", \"xn\"]\n"
            .to_string();
    let p = c
        .post(
            "/sites/bv-a/config",
            Some(&admin),
            &json!({"toml": cfg_toml}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.text);
    let cfg = luot_server::config::SiteConfig::parse("x", &cfg_toml).unwrap();
    let stored: Vec<luot_central::db::StoredEvent> = events
        .iter()
        .map(|e| luot_central::db::StoredEvent {
            seq: e["seq"].as_u64().unwrap(),
            at: e["at"].as_str().unwrap().into(),
            kind: e["event"]["kind"].as_str().unwrap().into(),
            day: None,
            body: e["event"].clone(),
        })
        .collect();
    let ratings = vec![luot_central::db::StoredRating {
        ticket: "h_a".into(),
        after_seq: 5,
        rating: 5,
    }];
    let close = chrono::DateTime::parse_from_rfc3339("2026-11-23T05:00:00+07:00")
        .unwrap()
        .timestamp_millis();
    let tickets = luot_central::reports::day_tickets(D, &stored[..8], &ratings, Some(close));
    let own = luot_server::report::daily(&cfg, D, &tickets);
    let a = c
        .get(&format!("/reports/daily?from={D}&site=bv-a"), Some(&admin))
        .await;
    let rows = a.body["rows"].as_array().unwrap().clone();
    let services: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "service").collect();
    assert_eq!(services.len(), own.services.len());
    for (got, want) in services.iter().zip(&own.services) {
        let mut want = serde_json::to_value(want).unwrap();
        want.as_object_mut().unwrap().remove("wait_by_hour");
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "service {} field {k}", want["id"]);
        }
    }
    let counters: Vec<&Value> = rows.iter().filter(|r| r["kind"] == "counter").collect();
    assert_eq!(counters.len(), own.counters.len());
    for (got, want) in counters.iter().zip(&own.counters) {
        let want = serde_json::to_value(want).unwrap();
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&got[k], v, "counter field {k}");
        }
    }

    // CSV: exactly rule 115's columns.
    let r = c
        .http
        .get(c.url(&format!("/reports/daily?from={D}&site=bv-a")))
        .bearer_auth(&admin)
        .header("accept", "text/csv");
    let csv = c.send(r).await.text;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "site,day,kind,id,issued,served,no_shows,wait_mean_s,wait_p50_s,wait_p90_s,service_mean_s,service_p50_s,service_p90_s,ratings,rating_mean,complete"
    );
    assert_eq!(
        lines.next().unwrap(),
        "bv-a,2026-11-22,service,kham,2,1,1,330,120,540,300,300,300,1,5,true"
    );
    assert!(
        csv.contains("\nbv-a,2026-11-22,counter,q1,,1,1,330,120,540,300,300,300,1,5,true\n"),
        "{csv}"
    );
    assert!(csv.contains("\nbv-a,2026-11-22,site,bv-a,3,1,2,"), "{csv}");

    // XLSX opens, with the same columns.
    let r = c
        .http
        .get(c.url(&format!("/reports/daily?from={D}&site=bv-a&format=xlsx")))
        .bearer_auth(&admin);
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = wb.worksheet_range_at(0).unwrap().unwrap();
    let header: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(header.join(","), luot_central::reports::DAILY_HEADER);
    assert_eq!(sheet.rows().count(), 1 + rows.len());

    // Hourly: issued by the hour of issue, first calls by the hour of call.
    let a = c
        .get(&format!("/reports/hourly?day={D}&site=bv-a"), Some(&admin))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["day"], D);
    assert_eq!(
        a.body["rows"],
        json!([
            {"site": "bv-a", "hour": 7, "issued": 2, "called": 2, "wait_s": {"mean": 330.0, "p90": 540.0}},
            {"site": "bv-a", "hour": 8, "issued": 1, "called": 0, "wait_s": {"mean": null, "p90": null}},
        ])
    );
    // Visits (rule 58) with site and day first.
    let a = c
        .get(&format!("/reports/visits?from={D}&site=bv-a"), Some(&admin))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let all = a.body["visits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["tests"].is_null())
        .unwrap()
        .clone();
    assert_eq!(
        (
            all["site"].clone(),
            all["day"].clone(),
            all["count"].clone()
        ),
        (json!("bv-a"), json!(D), json!(1))
    );
    assert_eq!(all["total_s"]["mean"], 420.0);
    let r = c
        .http
        .get(c.url(&format!("/reports/visits?from={D}&site=bv-a&format=csv")))
        .bearer_auth(&admin);
    let csv = c.send(r).await.text;
    assert!(
        csv.starts_with("site,day,kind,tests,limit_min,service,returning,count,"),
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_a_hole_or_still_running_is_not_complete() {
    let c = start().await;
    let admin = c.login("admin", ADMIN_PW).await;
    let (events, _) = the_day();
    // The site holds nothing before seq 3: 1..2 are missing, so the day
    // has no day_started at central and no rows; a day still running is
    // reported incomplete.
    let b = batch("bv-b", &[(E1, 1)], E1, 8, 1, events[..8].to_vec(), vec![]);
    assert_eq!(c.post("/ingest", Some(TOKEN_B), &b).await.status, 200);
    let a = c
        .get(&format!("/reports/daily?from={D}&site=bv-b"), Some(&admin))
        .await;
    let rows = a.body["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["complete"] == false), "{rows:?}");
    // Unknown site 404; a day that is not a day 400.
    assert_eq!(
        c.get("/reports/daily?site=nope", Some(&admin)).await.status,
        404
    );
    assert_eq!(
        c.get("/reports/daily?from=22-11-2026", Some(&admin))
            .await
            .status,
        400
    );
    // Today by default: no events today, no rows.
    let a = c.get("/reports/daily", Some(&admin)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["rows"], json!([]));
}
