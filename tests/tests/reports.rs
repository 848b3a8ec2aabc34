//! The visits report of rule 58 against the real server: a patient examined,
//! sent to two test services, back to the same room and done is one visit
//! with two tests, within its limit; each kind of step has its row. The
//! report answers as JSON, as CSV and as an Excel workbook (opened with a
//! real reader), and a past day's report is the one stored when it ended.
//! The daily report comes as a workbook too.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use luot_tests::*;
use serde_json::{Value, json};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The test hospital with an X-ray room, and the lab and X-ray as tests.
fn clinic() -> Site {
    Site::new(&format!(
        "{}\n[[services]]\nid = \"x-quang\"\nname = \"Chụp X-quang\"\nprefix = \"D\"\n\
         \n[[counters]]\nid = \"quay-5\"\nname = \"Phòng 5\"\nservices = [\"x-quang\"]\n\
         \n[reports]\ntest_services = [\"xet-nghiem\", \"x-quang\"]\n",
        test_site_toml(false)
    ))
}

/// A counter action by `token` that must answer 200; the ticket.
async fn act(api: &Api, token: &str, counter: &str, action: &str, body: Option<Value>) -> Value {
    let a = api
        .post(
            &format!("/api/v1/counters/{counter}/{action}"),
            Some(token),
            body,
        )
        .await;
    assert_eq!(a.status, 200, "{counter} {action}: {}", a.text);
    a.body
}

/// Seconds between two times as tickets show them.
fn secs(from: &Value, to: &Value) -> i64 {
    let t = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    t(to) - t(from)
}

/// `{"mean","p50","p90"}` of whole seconds: nearest rank, mean to 0.1 s.
fn stats(mut v: Vec<i64>) -> Value {
    if v.is_empty() {
        return json!({"mean": null, "p50": null, "p90": null});
    }
    v.sort();
    let n = v.len();
    let rank = |p: usize| v[(p * n).div_ceil(100).max(1) - 1] as f64;
    let mean = (v.iter().sum::<i64>() as f64 / n as f64 * 10.0).round() / 10.0;
    json!({"mean": mean, "p50": rank(50), "p90": rank(90)})
}

/// A report in another form: status, content type and bytes.
async fn fetch(server: &Server, path: &str, token: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// Every sheet of a workbook: its name and rows.
fn sheets(bytes: Vec<u8>) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    wb.worksheets()
        .into_iter()
        .map(|(name, range)| (name, range.rows().map(|r| r.to_vec()).collect()))
        .collect()
}

fn text(s: &str) -> Data {
    Data::String(s.into())
}

#[tokio::test]
async fn a_visit_with_two_tests_in_the_visits_report() {
    let site = clinic();
    let server = site.start();
    let api = Api::new(&server);
    let admin = api.login("admin").await;

    // A015's path: Khám Nội at Quầy 1, the lab and the X-ray, back to Quầy 1.
    let visit = api.issue(KIOSK_TOKEN, "kham-noi", "v1").await.body;
    let other = api.issue(KIOSK_TOKEN, "kham-noi", "v2").await.body;
    let waiting = api.issue(KIOSK_TOKEN, "kham-ngoai", "v3").await.body;
    let id = visit["id"].as_str().unwrap().to_string();
    assert_eq!(act(&api, &admin, "quay-1", "next", None).await["id"], id);
    let sent = act(
        &api,
        &admin,
        "quay-1",
        "send",
        Some(json!({"stops": [{"service": "xet-nghiem"}, {"service": "x-quang"}], "return": true})),
    )
    .await;
    assert_eq!(sent["visit"]["steps"].as_array().unwrap().len(), 4);
    // Another patient is seen at Quầy 2 with no test.
    assert_eq!(
        act(&api, &admin, "quay-2", "next", None).await["id"],
        other["id"]
    );
    act(&api, &admin, "quay-2", "done", None).await;
    for (counter, service) in [("quay-4", "xet-nghiem"), ("quay-5", "x-quang")] {
        let t = act(&api, &admin, counter, "next", None).await;
        assert_eq!(
            (t["id"].as_str(), t["service"].as_str()),
            (Some(&*id), Some(service))
        );
        act(&api, &admin, counter, "done", None).await;
    }
    let back = act(&api, &admin, "quay-1", "next", None).await;
    assert_eq!(back["id"], id.as_str(), "back to the same room");
    let done = act(&api, &admin, "quay-1", "done", None).await;
    assert_eq!(done["status"], "done");

    // What the tickets show, to count from.
    let visit = api.get(&format!("/api/v1/tickets/{id}"), None).await.body;
    let other = api
        .get(
            &format!("/api/v1/tickets/{}", other["id"].as_str().unwrap()),
            None,
        )
        .await
        .body;
    let total = |t: &Value| secs(&t["issued_at"], &t["finished_at"]);
    let steps = visit["visit"]["steps"].as_array().unwrap();
    let wait = |s: &Value| secs(&s["first_joined_at"], &s["first_called_at"]);
    let served = |s: &Value| secs(&s["called_at"], &s["finished_at"]);
    // The never-sent ticket's one step is the ticket itself.
    let other_wait = secs(&other["issued_at"], &other["called_at"]);
    let other_served = secs(&other["called_at"], &other["finished_at"]);

    let r = api.get("/api/v1/reports/visits", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let day = r.body["day"].as_str().unwrap().to_string();
    assert_eq!(day, visit["day"].as_str().unwrap());
    let row = |tests: u32, limit: u32, count: u32, t: &[i64]| {
        json!({"tests": tests, "limit_min": limit, "count": count, "within_limit": count,
               "share": if count > 0 { json!(1.0) } else { json!(null) },
               "total_s": stats(t.to_vec())})
    };
    assert_eq!(
        r.body["visits"],
        json!([
            row(0, 120, 1, &[total(&other)]),
            row(1, 180, 0, &[]),
            row(2, 210, 1, &[total(&visit)]),
            row(3, 240, 0, &[]),
            {"tests": null, "limit_min": null, "count": 2, "within_limit": 2, "share": 1.0,
             "total_s": stats(vec![total(&other), total(&visit)])}
        ]),
        "the waiting Khám Ngoại ticket {} is no visit",
        waiting["number"]
    );
    let step = |service: &str, returning: bool, waits: Vec<i64>, times: Vec<i64>| {
        json!({"service": service, "returning": returning, "count": waits.len(),
               "wait_s": stats(waits), "service_s": stats(times)})
    };
    // Site order: kham-noi (first visits, then the return), xet-nghiem, x-quang.
    let want_steps = json!([
        step(
            "kham-noi",
            false,
            vec![wait(&steps[0]), other_wait],
            vec![served(&steps[0]), other_served]
        ),
        step(
            "kham-noi",
            true,
            vec![wait(&steps[3])],
            vec![served(&steps[3])]
        ),
        step(
            "xet-nghiem",
            false,
            vec![wait(&steps[1])],
            vec![served(&steps[1])]
        ),
        step(
            "x-quang",
            false,
            vec![wait(&steps[2])],
            vec![served(&steps[2])]
        ),
    ]);
    assert_eq!(r.body["steps"], want_steps);
    assert_eq!(steps[3]["returning"], true);

    // CSV: the header of rule 58, a row per visits row then per step row.
    let path = format!("/api/v1/reports/visits?day={day}");
    let (status, ct, csv) = fetch(&server, &path, &admin, "text/csv").await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], luot_protocol::VISITS_CSV_HEADER);
    assert_eq!(lines.len(), 1 + 5 + 4, "{csv}");
    let f = |v: &Value| match v {
        Value::Null => String::new(),
        Value::Number(n) if n.as_f64().is_some_and(|x| x.fract() == 0.0) => {
            format!("{}", n.as_f64().unwrap() as i64)
        }
        v => v.to_string(),
    };
    let t = &r.body["visits"][2]["total_s"];
    assert_eq!(
        lines[3],
        format!(
            "visits,2,210,,,1,1,1,{},{},{},,,,,,",
            f(&t["mean"]),
            f(&t["p50"]),
            f(&t["p90"])
        )
    );
    assert!(lines[5].starts_with("visits,,,,,2,2,1,"), "{}", lines[5]);
    let returning = &r.body["steps"][1];
    assert_eq!(
        lines[7],
        format!(
            "step,,,kham-noi,true,1,,,,,,{},{},{},{},{},{}",
            f(&returning["wait_s"]["mean"]),
            f(&returning["wait_s"]["p50"]),
            f(&returning["wait_s"]["p90"]),
            f(&returning["service_s"]["mean"]),
            f(&returning["service_s"]["p50"]),
            f(&returning["service_s"]["p90"]),
        )
    );
    assert!(lines[9].starts_with("step,,,x-quang,false,1,"), "{csv}");

    // Excel: a sheet per table, Vietnamese headers first, names not ids.
    let (status, ct, xlsx) = fetch(&server, &path, &admin, XLSX).await;
    assert_eq!((status, ct.as_str()), (200, XLSX));
    let book = sheets(xlsx);
    let names: Vec<&str> = book.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Lượt khám", "Các bước"]);
    let visits = &book[0].1;
    assert_eq!(
        visits[0][..4],
        [
            text("Số xét nghiệm"),
            text("Giới hạn (phút)"),
            text("Số lượt"),
            text("Trong giới hạn")
        ]
    );
    assert_eq!(
        visits[3][..5],
        [
            Data::Float(2.0),
            Data::Float(210.0),
            Data::Float(1.0),
            Data::Float(1.0),
            Data::Float(1.0)
        ]
    );
    assert_eq!(visits[4][0], text("3+"));
    assert_eq!(
        visits[5][..4],
        [
            text("Tất cả"),
            Data::Empty,
            Data::Float(2.0),
            Data::Float(2.0)
        ]
    );
    let rows = &book[1].1;
    assert_eq!(
        rows[0][..5],
        [
            text("Dịch vụ"),
            text("Mã dịch vụ"),
            text("Quay lại"),
            text("Số bước"),
            text("Chờ trung bình (giây)")
        ]
    );
    let named: Vec<(Data, Data, Data)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        named,
        [
            (text("Khám Nội"), text("Không"), Data::Float(2.0)),
            (text("Khám Nội"), text("Có"), Data::Float(1.0)),
            (text("Xét nghiệm"), text("Không"), Data::Float(1.0)),
            (text("Chụp X-quang"), text("Không"), Data::Float(1.0)),
        ]
    );
    // A download link asks with ?format=, the daily report too (rule 59:
    // served per step, so Khám Nội served three steps).
    let (status, ct, daily) = fetch(
        &server,
        &format!("/api/v1/reports/daily?day={day}&format=xlsx"),
        &admin,
        "*/*",
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, XLSX));
    let daily = sheets(daily);
    assert_eq!(daily[0].0, "Dịch vụ");
    let services = &daily[0].1;
    assert_eq!(
        services[0][..4],
        [
            text("Dịch vụ"),
            text("Mã dịch vụ"),
            text("Lấy số"),
            text("Đã phục vụ")
        ]
    );
    assert_eq!(services[0][5], text("Chờ trung bình (giây)"));
    let served: Vec<(Data, Data, Data)> = services[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[3].clone()))
        .collect();
    assert_eq!(
        served,
        [
            (text("Khám Nội"), Data::Float(2.0), Data::Float(3.0)),
            (text("Khám Ngoại"), Data::Float(1.0), Data::Float(0.0)),
            (text("Xét nghiệm"), Data::Float(0.0), Data::Float(1.0)),
            (text("Chụp X-quang"), Data::Float(0.0), Data::Float(1.0)),
        ]
    );
    assert_eq!(daily[1].0, "Quầy");
    assert_eq!(daily[1].1[1][..2], [text("Quầy 1"), text("quay-1")]);
    let (status, _, csv) = fetch(&server, &format!("{path}&format=csv"), &admin, XLSX).await;
    assert_eq!(status, 200);
    assert!(csv.starts_with(b"kind,tests,"), "?format= wins over Accept");

    // Who may ask, and what.
    let staff = api.login("le.thu").await;
    let a = api.get("/api/v1/reports/visits", Some(&staff)).await;
    assert_eq!((a.status, a.code()), (403, "forbidden"));
    let a = api.get("/api/v1/reports/visits", None).await;
    assert_eq!((a.status, a.code()), (401, "unauthorized"));
    let a = api
        .get("/api/v1/reports/visits?day=22-11-2026", Some(&admin))
        .await;
    assert_eq!((a.status, a.code()), (400, "bad_request"));
    let a = api
        .get("/api/v1/reports/visits?format=pdf", Some(&admin))
        .await;
    assert_eq!((a.status, a.code()), (400, "bad_request"));
    let a = api
        .get("/api/v1/reports/visits?day=2020-01-01", Some(&admin))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["visits"][4]["count"], 0, "a day with nothing");
    assert_eq!(a.body["steps"], json!([]));
    let live = r.body;
    drop(server);

    // A day later the report of that day is the one stored when it ended.
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[("LUOT_CLOCK_OFFSET_S", "86400")],
    );
    let api = Api::new(&server);
    let admin = api.login("admin").await;
    let today = api.get("/api/v1/reports/visits", Some(&admin)).await.body;
    assert_ne!(today["day"], live["day"]);
    assert_eq!(today["visits"][4]["count"], 0);
    let past = api
        .get(&format!("/api/v1/reports/visits?day={day}"), Some(&admin))
        .await;
    assert_eq!(past.status, 200);
    assert_eq!(past.body, live, "the stored report is the live one");
}
