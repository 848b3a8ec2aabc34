//! `luot-server`: the command line (contract §6). Parses arguments, sets up
//! logging, and hands over to the library. Every file error it reports names
//! the path concerned.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use luot_server::clock::Knobs;
use luot_server::config::store::{Postgres, StoreKind};
use luot_server::config::{SiteConfig, demo_site};
use luot_server::store::postgres::PgStore;
use luot_server::store::{self, Store};
use luot_server::{auth, server};

/// luot: queue tickets for hospitals and one-stop-shop counters.
///
/// Run without arguments for a demo site on http://127.0.0.1:8080.
#[derive(Parser)]
#[command(name = "luot-server", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the demo site when no --config is given).
    Serve {
        /// The site configuration (site.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit.
    CheckConfig {
        /// The site configuration to check.
        file: PathBuf,
    },
    /// Read a password from stdin and print its argon2id hash.
    HashPassword,
    /// Print a new device token and its sha256 (for token_sha256).
    Token,
    /// Write a consistent backup, whether or not the server is running.
    Backup {
        #[arg(long, default_value = "/etc/luot/site.toml")]
        config: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the data directory (or, with PostgreSQL, the site's rows)
    /// with a backup; the server must be stopped.
    Restore {
        #[arg(long, default_value = "/etc/luot/site.toml")]
        config: PathBuf,
        /// The backup file to read.
        #[arg(long)]
        from: PathBuf,
    },
    /// Copy a sled data directory into [store]'s PostgreSQL (§13, rule 109).
    Migrate {
        #[arg(long, default_value = "/etc/luot/site.toml")]
        config: PathBuf,
        /// The store to copy into: postgres.
        #[arg(long)]
        to: String,
        /// The sled data directory (default: [server] data_dir).
        #[arg(long)]
        from_dir: Option<PathBuf>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => run_serve(None),
        Some(Cmd::Serve { config }) => run_serve(config),
        Some(Cmd::CheckConfig { file }) => check_config(&file),
        Some(Cmd::HashPassword) => hash_password(),
        Some(Cmd::Token) => {
            let t = auth::new_token();
            println!("{t}");
            println!("{}", auth::sha256_hex(&t));
            Ok(())
        }
        Some(Cmd::Backup { config, to }) => backup(&config, &to),
        Some(Cmd::Restore { config, from }) => restore(&config, &from),
        Some(Cmd::Migrate {
            config,
            to,
            from_dir,
        }) => migrate(&config, &to, from_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luot-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<SiteConfig> {
    Ok(SiteConfig::load(path)?)
}

fn run_serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    init_logging();
    let cfg = match config {
        Some(p) => load(&p)?,
        None => {
            let (mut cfg, secrets) = demo_site();
            cfg.apply_env_overrides("(demo site)")?;
            let bar = "!".repeat(72);
            eprintln!("{bar}");
            eprintln!(
                "!!! DEMO SITE: no --config given. Not for real use: the secrets below are public."
            );
            eprintln!("!!! Data is kept in {}", cfg.server.data_dir.display());
            eprintln!(
                "!!! demo kiosk token (device kiosk-sanh): {}",
                secrets.kiosk_token
            );
            eprintln!(
                "!!! demo display token (device tv-sanh): {}",
                secrets.display_token
            );
            eprintln!(
                "!!! demo integration token (device app-dat-lich): {}",
                secrets.integration_token
            );
            eprintln!(
                "!!! demo staff user {} password: {}",
                secrets.staff.0, secrets.staff.1
            );
            eprintln!(
                "!!! demo admin user {} password: {}",
                secrets.admin.0, secrets.admin.1
            );
            eprintln!("{bar}");
            cfg
        }
    };
    let demo_url = std::env::var("LUOT_PUBLIC_URL").is_err();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut cfg = cfg;
    let listen = cfg.server.listen;
    if demo_url && cfg.site.public_url == "http://127.0.0.1:8080" && listen.port() != 8080 {
        cfg.site.public_url = format!("http://{listen}");
    }
    let knobs = Knobs::from_env();
    rt.block_on(server::serve(cfg, knobs, |addr| {
        println!("luot-server listening on http://{addr}");
        let _ = std::io::stdout().flush();
    }))
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let cfg = load(file)?;
    println!(
        "{}: ok: \"{}\", {} services, {} counters, {} devices, {} users, listen {}, data in {}",
        file.display(),
        cfg.site.name,
        cfg.services.len(),
        cfg.counters.len(),
        cfg.devices.len(),
        cfg.users.len(),
        cfg.server.listen,
        cfg.server.data_dir.display()
    );
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    println!("{}", luot_server::secret::hash_password_from_stdin()?);
    Ok(())
}

/// The site's PostgreSQL store, for the commands that run beside a server.
fn open_pg(cfg: &SiteConfig, pg: &Postgres) -> anyhow::Result<PgStore> {
    PgStore::open(&cfg.site.id, pg, &server::node_name(cfg), None)
        .context("cannot open the store in PostgreSQL ([store] url)")
}

fn backup(config: &Path, to: &Path) -> anyhow::Result<()> {
    let cfg = load(config)?;
    let dir = &cfg.server.data_dir;
    let bytes = if let StoreKind::Postgres(pg) = &cfg.store {
        // Rule 110: one REPEATABLE READ transaction, on the primary or a
        // replica, servers running or not.
        let mut buf = Vec::new();
        open_pg(&cfg, pg)?
            .backup(&mut buf)
            .context("cannot read the site's rows in PostgreSQL")?;
        buf
    } else {
        match server::backup_from_running(dir) {
            Some(r) => r.with_context(|| {
                format!(
                    "cannot get a backup from the server running on {}",
                    dir.display()
                )
            })?,
            None => {
                let s = store::sled::SledStore::open(dir)
                    .with_context(|| format!("cannot open the data directory {}", dir.display()))?;
                let mut buf = Vec::new();
                s.backup(&mut buf)
                    .with_context(|| format!("cannot read the data in {}", dir.display()))?;
                buf
            }
        }
    };
    if !bytes.starts_with(b"LUOT-BACKUP") {
        anyhow::bail!(
            "the server answered with an error: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        );
    }
    // Written aside, then renamed: a backup file is never half written.
    let tmp = to.with_extension("partial");
    let cannot = || {
        format!(
            "cannot write the backup {} (via {})",
            to.display(),
            tmp.display()
        )
    };
    std::fs::write(&tmp, &bytes).with_context(cannot)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(cannot)?;
    std::fs::rename(&tmp, to).with_context(cannot)?;
    eprintln!("backup written to {} ({} bytes)", to.display(), bytes.len());
    Ok(())
}

fn restore(config: &Path, from: &Path) -> anyhow::Result<()> {
    let cfg = load(config)?;
    let dir = &cfg.server.data_dir;
    if server::is_running(dir) {
        anyhow::bail!(
            "the server is running on {}; stop it first (systemctl stop luot-server)",
            dir.display()
        );
    }
    if let StoreKind::Postgres(pg) = &cfg.store {
        return restore_pg(&cfg, pg, from);
    }
    let mut file = std::fs::File::open(from)
        .with_context(|| format!("cannot read the backup {}", from.display()))?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let staging = dir.join("db.restoring");
    let _ = std::fs::remove_dir_all(&staging);
    let n = store::sled::restore(&mut file, &staging).with_context(|| {
        format!(
            "cannot restore {} into {}",
            from.display(),
            staging.display()
        )
    })?;
    let live = dir.join("db");
    if live.exists() {
        let old = previous_copy(dir);
        std::fs::rename(&live, &old).with_context(|| {
            format!("cannot move {} aside to {}", live.display(), old.display())
        })?;
        eprintln!("the previous data is kept in {}", old.display());
    }
    let restored = staging.join("db");
    std::fs::rename(&restored, &live)
        .with_context(|| format!("cannot move {} to {}", restored.display(), live.display()))?;
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!(
        "restored {n} records from {} into {}",
        from.display(),
        dir.display()
    );
    Ok(())
}

/// Rule 110 with PostgreSQL: refuses a backup of another site, a replica,
/// and a store whose beat is under 3 s old (a server writes it); keeps the
/// site's rows as `data_dir/before-restore-<time>.backup`, then replaces
/// them in one transaction (a new epoch, term + 1).
fn restore_pg(cfg: &SiteConfig, pg: &Postgres, from: &Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(from)
        .with_context(|| format!("cannot read the backup {}", from.display()))?;
    let entries = store::backup::read(&mut file)
        .with_context(|| format!("cannot read the backup {}", from.display()))?;
    let s = open_pg(cfg, pg)?;
    if s.status()?.in_recovery {
        anyhow::bail!(
            "this PostgreSQL is a replica (in recovery); restore on the primary's machine"
        );
    }
    if let Some(age) = s.beat_age_s()?
        && age < 3.0
    {
        anyhow::bail!(
            "a luot server wrote this site's store {age:.1} s ago; stop every server of the site first"
        );
    }
    let dir = &cfg.server.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let keep = dir.join(format!("before-restore-{stamp}.backup"));
    let mut before = Vec::new();
    s.backup(&mut before)?;
    std::fs::write(&keep, &before)
        .with_context(|| format!("cannot keep the current rows in {}", keep.display()))?;
    eprintln!("the previous rows are kept in {}", keep.display());
    let n = entries.len();
    s.import(entries, &[], true).map_err(|e| match e {
        store::StoreError::WrongSite(other) => anyhow::anyhow!(
            "{} is a backup of site \"{other}\", not of \"{}\" ([site] id)",
            from.display(),
            cfg.site.id
        ),
        e => anyhow::anyhow!(e),
    })?;
    eprintln!(
        "restored {n} records from {} into PostgreSQL (site {})",
        from.display(),
        cfg.site.id
    );
    Ok(())
}

/// Rule 109: copies a sled data directory into [store]'s PostgreSQL in one
/// transaction, leaving the directory as it was.
fn migrate(config: &Path, to: &str, from_dir: Option<&Path>) -> anyhow::Result<()> {
    let cfg = load(config)?;
    if to != "postgres" {
        anyhow::bail!("--to {to}: the only store to migrate to is postgres");
    }
    let StoreKind::Postgres(pg) = &cfg.store else {
        anyhow::bail!(
            "{}: [store] kind = \"postgres\" with its url is needed to migrate to",
            config.display()
        );
    };
    let dir = from_dir.unwrap_or(&cfg.server.data_dir);
    if server::is_running(dir) {
        anyhow::bail!(
            "a server is running on {}; stop it first (systemctl stop luot-server)",
            dir.display()
        );
    }
    if !dir.join("db").exists() {
        anyhow::bail!("{} holds no sled database (db/)", dir.display());
    }
    let sled = store::sled::SledStore::open(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the sled data in {} ({e}); is a server using it?",
            dir.display()
        )
    })?;
    let mut bytes = Vec::new();
    sled.backup(&mut bytes)
        .with_context(|| format!("cannot read the data in {}", dir.display()))?;
    let day_keys = sled
        .load()
        .with_context(|| format!("cannot read the data in {}", dir.display()))?
        .day_keys;
    drop(sled);
    let entries = store::backup::read(&mut bytes.as_slice())?;
    let pg_store = open_pg(&cfg, pg)?;
    if pg_store.holds_site()? {
        anyhow::bail!(
            "the database already holds site \"{}\"; migrate refuses to overwrite it",
            cfg.site.id
        );
    }
    let done = pg_store.import(entries, &day_keys, false)?;
    let range = match (done.first, done.last) {
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "-".into(),
    };
    println!(
        "migrated {} events (seq {range}) of site {}",
        done.events, cfg.site.id
    );
    Ok(())
}

/// A new name in `dir` for the database a restore replaces:
/// `db.before-restore-<time>`, with `-2`, `-3`, … when a restore in the same
/// second already took it, so that every previous copy is kept.
fn previous_copy(dir: &Path) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let base = format!("db.before-restore-{stamp}");
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let mut path = dir.join(&base);
    let mut n = 1;
    while taken(&path) {
        n += 1;
        path = dir.join(format!("{base}-{n}"));
    }
    path
}
