//! The server under a morning-rush load (luot-load's clients: kiosks over
//! websockets, staff consoles, screens, ticket pages), with faults:
//!
//! - `kill -9` in a loop: every acknowledged ticket survives with its number,
//!   no number is reused, every screen follows `seq` without a gap and
//!   catches up on its own after each restart;
//! - a 12-hour day run 720 times faster: the day rolls over under load
//!   (numbers start again at 1) and memory does not grow from one day to the
//!   next.

#![allow(clippy::unwrap_used)] // tests may panic on a broken server

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use luot_tests::load::{self, Plan, Target};
use luot_tests::*;

fn load_site(services: usize, counters: usize) -> Site {
    let hash = luot_server::auth::hash_password(load::LOAD_PASSWORD);
    Site::new(&load::site_toml(services, counters, &hash))
}

fn target(server: &Server, counters: usize) -> Target {
    Target {
        base: server.url(""),
        kiosk_token: load::LOAD_KIOSK_TOKEN.into(),
        display_token: Some(load::LOAD_DISPLAY_TOKEN.into()),
        staff: load::site_staff(counters),
        pid: Some(server.child.id()),
    }
}

/// Checks every acknowledged ticket against the server: it is there, with
/// the number the kiosk got, and no number was given twice in a day.
async fn every_acked_ticket_is_there(api: &Api, acked: &[load::Acked]) {
    let mut numbers = HashSet::new();
    for a in acked {
        assert!(
            numbers.insert((a.day.clone(), a.service.clone(), a.number.clone())),
            "number {} of {} given twice on {}",
            a.number,
            a.service,
            a.day
        );
    }
    let checks = futures_util::stream::iter(acked.iter().cloned())
        .map(|a| {
            let api = api.clone();
            async move {
                let t = api.get(&format!("/api/v1/tickets/{}", a.id), None).await;
                (a, t)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for (a, t) in checks {
        assert_eq!(
            t.status, 200,
            "acknowledged ticket {} ({}) lost: {}",
            a.number, a.request_id, t.text
        );
        assert_eq!(
            t.body["number"],
            a.number.as_str(),
            "ticket {} changed",
            a.id
        );
    }
}

/// The number a new ticket of `service` gets now, as an integer.
async fn next_number(api: &Api, service: &str, rid: &str) -> u32 {
    let t = api.issue(load::LOAD_KIOSK_TOKEN, service, rid).await;
    assert_eq!(t.status, 201, "{}", t.text);
    number_value(t.body["number"].as_str().unwrap())
}

fn number_value(n: &str) -> u32 {
    n.trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_in_a_loop_under_morning_rush_load() {
    let (services, counters) = (6, 10);
    let site = load_site(services, counters);
    let server = site.start();
    let port = server.addr.port();
    let t = target(&server, counters);
    let plan = Plan {
        name: "morning-rush under kill -9".into(),
        kiosks: 10,
        arrivals: load::steady_arrivals(200.0, 30.0),
        consoles: counters,
        service_s: (0.5, 1.5),
        screens: 100,
        ticket_pages: 20,
        ticket_page_every_s: 4.0,
        duration: Duration::from_secs(30),
        no_show: 0.05,
        recall: 0.03,
        rating: 0.2,
        send_to_tests: 0.0,
        tests: vec![],
    };
    let watchers = plan.screens + plan.consoles;
    let run = tokio::spawn(load::run(t, plan));

    // Four kill -9s, 5–7 s apart, each followed by a restart on the same port.
    let kills = 4;
    let mut server = server;
    let killer = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(4));
        for i in 0..kills {
            std::thread::sleep(Duration::from_millis(5000 + 600 * i));
            server.kill9();
            std::thread::sleep(Duration::from_millis(300));
            server = Server::start(
                &site.config(),
                &site.data(),
                &[("LUOT_LISTEN", &format!("127.0.0.1:{port}"))],
            );
        }
        (site, server)
    });
    let (site, server) = killer.await.unwrap();
    let report = run.await.unwrap().expect("the load ran");
    eprintln!("{}", report.markdown());

    assert!(
        report.issued >= 2000,
        "kiosks kept issuing between the kills: {} tickets",
        report.issued
    );
    assert!(
        report.calls > 100,
        "consoles kept calling: {}",
        report.calls
    );
    assert!(
        report.reconnects >= (watchers * kills as usize) as u64,
        "every screen and console reconnected after each kill: {} reconnects",
        report.reconnects
    );
    assert_eq!(report.seq_gaps, 0, "a screen saw a gap in seq");
    assert_eq!(
        report.watchers_behind, 0,
        "every screen caught up with the server's last seq ({}) on its own",
        report.final_seq
    );
    let api = Api::new(&server);
    every_acked_ticket_is_there(&api, &report.tickets).await;
    // Numbers never go back: the next ticket of each service comes after
    // every number acknowledged during the load.
    let mut highest: HashMap<&str, u32> = HashMap::new();
    for a in &report.tickets {
        let h = highest.entry(a.service.as_str()).or_default();
        *h = (*h).max(number_value(&a.number));
    }
    for (service, h) in highest {
        let n = next_number(&api, service, &format!("after-{service}")).await;
        assert!(
            n > h,
            "{service}: number {n} handed out again (acknowledged up to {h})"
        );
    }
    drop(site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_day_rolls_over_under_load_and_memory_stays_flat() {
    let (services, counters) = (4, 8);
    let site = load_site(services, counters);
    // The load site's day starts at 00:00 in Asia/Ho_Chi_Minh. Put the queue
    // clock at 18:00 site time today and run it 720 times faster: midnight
    // comes after 30 s of load, then another 20 s of the next day.
    let now = chrono::Utc::now().with_timezone(&chrono_tz_hcm());
    let six_pm = now.date_naive().and_hms_opt(18, 0, 0).unwrap();
    let offset = six_pm
        .and_local_timezone(chrono_tz_hcm())
        .unwrap()
        .timestamp()
        - now.timestamp();
    let server = Server::start(
        &site.config(),
        &site.data(),
        &[
            ("LUOT_CLOCK_OFFSET_S", &offset.to_string()),
            ("LUOT_CLOCK_SPEED", "720"),
        ],
    );
    let plan = Plan {
        name: "compressed day".into(),
        kiosks: 6,
        arrivals: load::steady_arrivals(60.0, 50.0),
        consoles: counters,
        // 5–10 minutes of service at 720 times: under a second.
        service_s: (0.4, 0.8),
        screens: 40,
        ticket_pages: 10,
        ticket_page_every_s: 4.0,
        duration: Duration::from_secs(50),
        no_show: 0.05,
        recall: 0.03,
        rating: 0.2,
        send_to_tests: 0.0,
        tests: vec![],
    };
    let t0 = Instant::now();
    let report = load::run(target(&server, counters), plan).await.unwrap();
    eprintln!("{}", report.markdown());
    let days: HashSet<&str> = report.tickets.iter().map(|a| a.day.as_str()).collect();
    assert_eq!(days.len(), 2, "tickets of two days: {days:?}");
    let mut days: Vec<&str> = days.into_iter().collect();
    days.sort();
    let second_day: Vec<&load::Acked> =
        report.tickets.iter().filter(|a| a.day == days[1]).collect();
    assert!(
        second_day.len() > 300,
        "issuing went on after midnight: {}",
        second_day.len()
    );
    // Numbers start again at 1 on the new day, in every service.
    for s in 1..=services {
        let service = format!("dv-{s:02}");
        let lowest = second_day
            .iter()
            .filter(|a| a.service == service)
            .map(|a| number_value(&a.number))
            .min()
            .unwrap();
        assert_eq!(lowest, 1, "{service} starts again at 1 on {}", days[1]);
    }
    assert_eq!(report.seq_gaps, 0);
    assert_eq!(report.watchers_behind, 0, "screens followed the new day");
    let api = Api::new(&server);
    let site_now = api.get("/api/v1/site", None).await;
    assert_eq!(site_now.body["day"], days[1]);
    every_acked_ticket_is_there(&api, &report.tickets).await;

    // Memory: the second day, with as much load as the first, does not end
    // much above the first day's peak (yesterday's queue is not kept in
    // memory); within the first day, growth stays within a few KB per ticket.
    // Most of that is the replay buffer for reconnecting screens (about four
    // events of 1–2 KB per ticket), which stops growing at 20,000 events.
    let midnight = report
        .rss_timeline
        .iter()
        .position(|(t, _)| *t >= 30.0)
        .unwrap();
    let (day1, day2) = report.rss_timeline.split_at(midnight);
    let peak1 = day1.iter().map(|s| s.1).fold(0.0, f64::max);
    let end2 = day2.last().unwrap().1;
    let early1 = day1.iter().find(|(t, _)| *t >= 5.0).unwrap().1;
    let day1_tickets = report.tickets.len() - second_day.len();
    eprintln!(
        "RSS: {early1:.1} MB after 5 s, day-1 peak {peak1:.1} MB ({day1_tickets} tickets), end of run {end2:.1} MB; {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        end2 <= peak1 * 1.15 + 2.0,
        "memory grew from one day to the next: day-1 peak {peak1:.1} MB, end {end2:.1} MB"
    );
    assert!(
        (peak1 - early1) * 1024.0 / day1_tickets as f64 <= 12.0,
        "memory grew by more than 12 KB per ticket: {early1:.1} → {peak1:.1} MB for {day1_tickets} tickets"
    );
}

fn chrono_tz_hcm() -> chrono::FixedOffset {
    // Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975.
    chrono::FixedOffset::east_opt(7 * 3600).unwrap()
}
