//! `luot-kiosk`: the command line (contract §6). Runs the daemon from
//! `kiosk.toml`, or `--simulate` with presses, `scan:TEXT` and `code:N` on
//! standard input (rule 83), or renders a sample ticket to a PNG.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::{mpsc, watch};

use luot_kiosk::buttons::{Buttons, GpioButtons, Press, StdinButtons};
use luot_kiosk::config::{DEFAULT_ISSUE_DEADLINE_S, KioskConfig, MAX_ISSUE_DEADLINE_S, ws_url};
use luot_kiosk::daemon::{HOLD, Kiosk, Settings};
use luot_kiosk::leds::{self, GpioLed, LedMode};
use luot_kiosk::link::Link;
use luot_kiosk::printer::Target;
use luot_kiosk::printlog::PrintLog;
use luot_kiosk::render::{TicketView, render_ticket};
use luot_kiosk::reqid::RequestIds;
use luot_kiosk::scanner::EvdevScanner;

/// luot kiosk: a button press becomes a printed queue ticket.
#[derive(Parser)]
#[command(name = "luot-kiosk", version, about, long_about = None)]
struct Cli {
    /// The kiosk configuration.
    #[arg(long, conflicts_with = "simulate")]
    config: Option<PathBuf>,
    /// Read presses from standard input: a service id per line, or
    /// `scan:TEXT` (a scanned line) or `code:N` (a typed booking code).
    #[arg(long, requires_all = ["server", "token", "printer"])]
    simulate: bool,
    /// How long a scanned CCCD waits for a press or check-in, in seconds
    /// (with --simulate).
    #[arg(long, default_value_t = HOLD.as_secs())]
    hold_s: u64,
    /// How long a press keeps trying (over reconnects and `unavailable`
    /// answers) before the out-of-service slip, in seconds (with
    /// --simulate; kiosk.toml's issue_deadline_s otherwise).
    #[arg(long, default_value_t = DEFAULT_ISSUE_DEADLINE_S,
          value_parser = clap::value_parser!(u64).range(1..=MAX_ISSUE_DEADLINE_S))]
    issue_deadline_s: u64,
    /// Server URL, e.g. http://127.0.0.1:8080 (with --simulate).
    #[arg(long)]
    server: Option<String>,
    /// The kiosk's device token (with --simulate).
    #[arg(long, env = "LUOT_KIOSK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Printer target: usb:VID:PID, file:PATH or tcp:HOST:PORT (with --simulate).
    #[arg(long)]
    printer: Option<String>,
    /// Paper width in mm (with --simulate): 80 or 58.
    #[arg(long, default_value_t = 80)]
    paper_mm: u32,
    /// Where the request counter and the print jobs taken on are kept (with --simulate).
    #[arg(long, default_value = "luot-kiosk-state")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a sample ticket as a PNG, exactly as it would be printed.
    Render {
        #[arg(long)]
        png: PathBuf,
        #[arg(long, default_value_t = 80)]
        paper_mm: u32,
        #[arg(long, default_value = "A015")]
        number: String,
        #[arg(long, default_value = "Khám Nội")]
        service: String,
        #[arg(long, default_value = "Bệnh viện Đa khoa Demo")]
        site: String,
        #[arg(long)]
        priority: Option<String>,
        /// A check-in's booking time (RFC 3339): prints `Hẹn HH:MM`.
        #[arg(long)]
        slot_at: Option<String>,
    },
}

fn width(paper_mm: u32) -> anyhow::Result<u32> {
    match paper_mm {
        80 => Ok(576),
        58 => Ok(384),
        other => anyhow::bail!("--paper-mm {other}: 80 or 58"),
    }
}

/// `--simulate`'s settings: the flags in place of kiosk.toml.
fn simulate_settings(cli: &Cli) -> anyhow::Result<Settings> {
    Ok(Settings {
        width: width(cli.paper_mm)?,
        footer: "Vui lòng chờ gọi số".into(),
        help: "Xin mời đến Quầy Tiếp đón để được hỗ trợ.".into(),
        issue_deadline: Duration::from_secs(cli.issue_deadline_s),
        hold: Duration::from_secs(cli.hold_s),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(luot_kiosk::log_filter("info"))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let r = rt.block_on(run(cli));
            // Do not wait for a read of standard input that may never end.
            rt.shutdown_background();
            r
        }
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luot-kiosk: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Cmd::Render {
        png,
        paper_mm,
        number,
        service,
        site,
        priority,
        slot_at,
    }) = cli.command
    {
        let view = TicketView {
            site_name: site,
            service_name: service,
            number,
            priority,
            issued_at: chrono::Local::now().to_rfc3339(),
            ahead: Some(4),
            url: "http://192.168.1.10:8080/t/tk_5Jq2xYz8AbCdEfGhIjKlMn".into(),
            footer: "Vui lòng chờ gọi số".into(),
            reprint: None,
            slot_at,
        };
        let img = render_ticket(&view, width(paper_mm)?);
        img.save(&png)?;
        eprintln!(
            "ticket written to {} ({}x{})",
            png.display(),
            img.width(),
            img.height()
        );
        return Ok(());
    }

    // SIGTERM is caught from here on, before anything starts: the link may
    // connect (and the kiosk be stopped) at once.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let (presses_tx, presses_rx) = mpsc::channel(64);
    let (led_tx, led_rx) = watch::channel(LedMode::Attention);
    let mut guards: Vec<Box<dyn Send>> = Vec::new();
    let (kiosk, touch) = if cli.simulate {
        let settings = simulate_settings(&cli)?;
        let (Some(server), Some(token), Some(printer)) = (cli.server, cli.token, cli.printer)
        else {
            anyhow::bail!("--simulate needs --server, --token and --printer");
        };
        let target = Target::parse(&printer).map_err(|m| anyhow::anyhow!("--printer: {m}"))?;
        let link = Link::start(ws_url(&server), token);
        let ids = RequestIds::open(&cli.state_dir)?;
        let jobs = PrintLog::open(&cli.state_dir)?;
        guards.push(Box::new(StdinButtons).start(presses_tx.clone())?);
        (Kiosk::new(link, target, settings, ids, jobs, led_tx), None)
    } else {
        let Some(path) = cli.config else {
            anyhow::bail!("give --config kiosk.toml, or --simulate (see --help)");
        };
        let cfg = KioskConfig::load(&path)?;
        let target = Target::parse(&cfg.printer.target).map_err(|m| anyhow::anyhow!(m))?;
        // The scanner first: a wrong device stops start-up before the
        // kiosk connects.
        if let Some(scanner) = &cfg.scanner {
            let tx = presses_tx.clone();
            EvdevScanner {
                device: scanner.device.clone(),
            }
            .start(Box::new(move |scan| {
                tx.blocking_send(Press::scan(scan)).is_ok()
            }))?;
        }
        let link = Link::start(ws_url(&cfg.server.url), cfg.server.token.clone());
        let ids = RequestIds::open(&cfg.state.dir)?;
        let jobs = PrintLog::open(&cfg.state.dir)?;
        // The daemon runs until stopped, with or without buttons (a desk
        // printer has none and only prints jobs, rule 66).
        guards.push(Box::new(presses_tx.clone()));
        if !cfg.buttons.is_empty() {
            let buttons = GpioButtons {
                buttons: cfg.buttons.clone(),
                debounce: Duration::from_millis(60),
            };
            guards.push(Box::new(buttons).start(presses_tx.clone())?);
        }
        if let Some(pin) = cfg.leds.ready {
            leds::spawn(Box::new(GpioLed::open(pin)?), led_rx);
        }
        let settings = Settings::from_config(&cfg);
        let touch = cfg.touch.enabled.then_some(cfg.touch.listen);
        (Kiosk::new(link, target, settings, ids, jobs, led_tx), touch)
    };
    if let Some(listen) = touch {
        let link = kiosk.link.clone();
        let tx = presses_tx.clone();
        let screen = kiosk.screen();
        tokio::spawn(async move {
            if let Err(e) = luot_kiosk::touch::serve(listen, link, tx, screen).await {
                tracing::error!(error = %e, "touch-screen page failed");
            }
        });
    }
    // In simulate mode the channel closes at the end of standard input.
    drop(presses_tx);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
    });
    let stats = kiosk.run(presses_rx, stop_rx).await;
    tracing::info!(
        printed = stats.printed,
        refused = stats.refused,
        out_of_service = stats.out_of_service,
        refusals = stats.refusals,
        print_jobs = stats.jobs,
        "luot-kiosk stopped"
    );
    drop(guards); // releases the GPIO pins
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(extra: &[&str]) -> Result<Cli, clap::Error> {
        let args = [
            "luot-kiosk",
            "--simulate",
            "--server",
            "http://127.0.0.1:8080",
            "--token",
            "t",
            "--printer",
            "file:out.bin",
        ];
        Cli::try_parse_from(args.iter().chain(extra))
    }

    #[test]
    fn issue_deadline_s_is_8_unless_given() {
        let cli = simulate(&[]).unwrap();
        let s = simulate_settings(&cli).unwrap();
        assert_eq!(s.issue_deadline, Duration::from_secs(8));
        let cli = simulate(&["--issue-deadline-s", "20"]).unwrap();
        let s = simulate_settings(&cli).unwrap();
        assert_eq!(s.issue_deadline, Duration::from_secs(20));
        assert!(simulate(&["--issue-deadline-s", "0"]).is_err());
        assert!(simulate(&["--issue-deadline-s", "ten"]).is_err());
    }
}
