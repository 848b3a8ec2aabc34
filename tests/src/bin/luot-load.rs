//! `luot-load`: drives a real luot server with simulated kiosks, staff
//! consoles, screens and ticket pages over real websockets and HTTP, and
//! prints what it measured as a markdown table (and JSON with `--json`).
//!
//! ```text
//! cargo run --release -p luot-tests --bin luot-load -- morning-rush
//! cargo run --release -p luot-tests --bin luot-load -- many-screens --json out.json
//! luot-load big-hospital-day --server http://127.0.0.1:8080 --kiosk-token … --staff admin:…
//! ```
//!
//! Without `--server` it writes a generated site (services, counters, a
//! kiosk, a display, a staff user per counter) to a temporary directory and
//! starts the real `luot-server` on it on 127.0.0.1. With `--server` it loads a
//! server already running on loopback (see `--write-site`). Every loop stops
//! at the scenario's duration.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use luot_tests::load::{self, Plan, Target};

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Scenario {
    /// 200 issues/s for 2 minutes, 60 counters calling, 2,000 screens.
    MorningRush,
    /// 10,000 patients over 40 services and 80 counters, a 06:00–18:00 day
    /// compressed into 10 minutes, most arrivals at 7–9 a.m.
    BigHospitalDay,
    /// 10,000 connected screens while 10 counters call.
    ManyScreens,
}

#[derive(Parser)]
#[command(
    name = "luot-load",
    about = "Load a luot server with simulated kiosks, consoles, screens and ticket pages"
)]
struct Cli {
    scenario: Scenario,
    /// Kiosks issuing (each has one press in flight, like a real kiosk).
    #[arg(long)]
    kiosks: Option<usize>,
    /// Staff consoles calling, at the site's first counters.
    #[arg(long)]
    consoles: Option<usize>,
    /// Screens watching over websockets.
    #[arg(long)]
    screens: Option<usize>,
    /// Ticket pages polling a ticket every 4 s.
    #[arg(long)]
    ticket_pages: Option<usize>,
    /// Issues per second (steady scenarios) or patients in the day (big-hospital-day).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of issuing and calling (big-hospital-day: its whole day,
    /// consultations shortened alike).
    #[arg(long)]
    duration: Option<u64>,
    /// Load a running server instead of starting one (loopback only).
    #[arg(long)]
    server: Option<String>,
    /// Kiosk token of the running server (its kiosk's buttons are the services used).
    #[arg(long, requires = "server")]
    kiosk_token: Option<String>,
    /// Display token of the running server (screens connect without one if absent).
    #[arg(long)]
    display_token: Option<String>,
    /// USER:PASSWORD for the consoles (repeat; an admin may call at any counter).
    #[arg(long)]
    staff: Vec<String>,
    /// Process id of the running server, for its RSS and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Visits with several stops: the share of patients a room sends to a
    /// test and back (e.g. 0.4 for a hospital day; 0: none).
    #[arg(long, default_value_t = 0.0)]
    send_to_tests: f64,
    /// How many of the generated site's services are tests (its last ones).
    #[arg(long, default_value_t = 8)]
    tests: usize,
    /// Write the scenario's generated site to this file and exit.
    #[arg(long)]
    write_site: Option<std::path::PathBuf>,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Append the markdown table to this file.
    #[arg(long)]
    markdown: Option<std::path::PathBuf>,
}

struct Defaults {
    services: usize,
    counters: usize,
    kiosks: usize,
    consoles: usize,
    screens: usize,
    ticket_pages: usize,
    rate: f64,
    duration: u64,
    service_s: (f64, f64),
}

fn defaults(s: Scenario) -> Defaults {
    match s {
        Scenario::MorningRush => Defaults {
            services: 20,
            counters: 60,
            kiosks: 20,
            consoles: 60,
            screens: 2_000,
            ticket_pages: 200,
            rate: 200.0,
            duration: 120,
            service_s: (1.0, 3.0),
        },
        // 12 hours in 10 minutes: 72 times faster, so a 3–8 minute
        // consultation takes 2.5–6.7 s.
        Scenario::BigHospitalDay => Defaults {
            services: 40,
            counters: 80,
            kiosks: 24,
            consoles: 80,
            screens: 300,
            ticket_pages: 500,
            rate: 10_000.0,
            duration: 600,
            service_s: (2.5, 6.7),
        },
        Scenario::ManyScreens => Defaults {
            services: 20,
            counters: 20,
            kiosks: 4,
            consoles: 10,
            screens: 10_000,
            ticket_pages: 0,
            rate: 10.0,
            duration: 60,
            service_s: (2.0, 4.0),
        },
    }
}

fn name(s: Scenario) -> &'static str {
    match s {
        Scenario::MorningRush => "morning-rush",
        Scenario::BigHospitalDay => "big-hospital-day",
        Scenario::ManyScreens => "many-screens",
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let d = defaults(cli.scenario);
    if let Some(path) = &cli.write_site {
        let hash = luot_server::auth::hash_password(load::LOAD_PASSWORD);
        std::fs::write(path, load::site_toml(d.services, d.counters, &hash))?;
        println!(
            "wrote {}\nkiosk token:   {}\ndisplay token: {}\nstaff:         nv-01 … nv-{:02} (one per counter) and admin (every counter), password {}",
            path.display(),
            load::LOAD_KIOSK_TOKEN,
            load::LOAD_DISPLAY_TOKEN,
            d.counters,
            load::LOAD_PASSWORD
        );
        return Ok(());
    }
    // Clients and server each need a socket per connection.
    let _ = rlimit::increase_nofile_limit(u64::MAX);

    let duration = cli.duration.unwrap_or(d.duration);
    let rate = cli.rate.unwrap_or(d.rate);
    let arrivals = match cli.scenario {
        Scenario::BigHospitalDay => load::hospital_day_arrivals(rate as usize, duration as f64),
        _ => load::steady_arrivals(rate, duration as f64),
    };
    let plan = Plan {
        name: name(cli.scenario).into(),
        kiosks: cli.kiosks.unwrap_or(d.kiosks),
        arrivals,
        consoles: cli.consoles.unwrap_or(d.consoles),
        service_s: match cli.scenario {
            // A shorter day is the same day compressed further: its
            // consultations shrink alike, so the day's patients are seen.
            Scenario::BigHospitalDay => {
                let k = duration as f64 / d.duration as f64;
                (d.service_s.0 * k, d.service_s.1 * k)
            }
            _ => d.service_s,
        },
        screens: cli.screens.unwrap_or(d.screens),
        ticket_pages: cli.ticket_pages.unwrap_or(d.ticket_pages),
        ticket_page_every_s: 4.0,
        duration: Duration::from_secs(duration),
        no_show: 0.05,
        recall: 0.03,
        rating: 0.2,
        send_to_tests: cli.send_to_tests,
        // The generated site's last services are the tests (lab, imaging).
        tests: (d.services.saturating_sub(cli.tests)..d.services)
            .map(|i| format!("dv-{:02}", i + 1))
            .collect(),
    };

    let mut spawned = None;
    let target = match &cli.server {
        Some(url) => {
            let parsed =
                reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("--server {url}: {e}"))?;
            let host = parsed.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            anyhow::ensure!(
                parsed.scheme() == "http" && loopback,
                "luot-load only loads servers on loopback (http://127.0.0.0/8, http://[::1] or http://localhost); got {url}"
            );
            let staff = cli
                .staff
                .iter()
                .map(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                        .ok_or_else(|| anyhow::anyhow!("--staff takes USER:PASSWORD, got {s}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(
                !staff.is_empty() || plan.consoles == 0,
                "--staff USER:PASSWORD is needed for the consoles (or --consoles 0)"
            );
            Target {
                base: url.trim_end_matches('/').to_string(),
                kiosk_token: cli
                    .kiosk_token
                    .clone()
                    .ok_or_else(|| anyhow::anyhow!("--kiosk-token is needed with --server"))?,
                display_token: cli.display_token.clone(),
                staff,
                pid: cli.pid,
            }
        }
        None => {
            let hash = luot_server::auth::hash_password(load::LOAD_PASSWORD);
            let site = luot_tests::Site::new(&load::site_toml(d.services, d.counters, &hash));
            let server = site.start();
            if !luot_tests::target_dir().ends_with("release") {
                eprintln!("warning: not a release build; run with `cargo run --release`");
            }
            let target = Target {
                base: server.url(""),
                kiosk_token: load::LOAD_KIOSK_TOKEN.into(),
                display_token: Some(load::LOAD_DISPLAY_TOKEN.into()),
                staff: load::site_staff(d.counters),
                pid: Some(server.child.id()),
            };
            spawned = Some((site, server));
            target
        }
    };
    eprintln!(
        "luot-load {}: {} kiosks ({} presses over {duration} s), {} consoles, {} screens, {} ticket pages against {}",
        plan.name,
        plan.kiosks,
        plan.arrivals.len(),
        plan.consoles,
        plan.screens,
        plan.ticket_pages,
        target.base
    );
    let report = load::run(target, plan).await?;
    let md = report.markdown();
    println!("{md}");
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    if let Some(path) = &cli.markdown {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{md}")?;
    }
    if let Some((_site, mut server)) = spawned {
        server.terminate();
    }
    Ok(())
}
