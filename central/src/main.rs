//! The `luot-central` command line (contract §14): `serve`, `check-config`,
//! `token`, `hash-password` (rules 1, 2) and `push-config`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use luot_central::config::CentralConfig;

#[derive(Parser)]
#[command(
    name = "luot-central",
    version,
    about = "luot-central: many luot sites' event logs in one PostgreSQL, cross-site reports, and each site's configuration",
    long_about = "luot-central receives the event logs that luot sites ship (POST /api/central/v1/ingest), \
                  keeps them in PostgreSQL, serves cross-site reports and a dashboard, and holds \
                  numbered configuration versions that sites may follow (contract §14)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service.
    Serve {
        /// central.toml
        #[arg(long, default_value = "/etc/luot/central.toml")]
        config: PathBuf,
    },
    /// Check a central.toml without connecting to anything.
    CheckConfig {
        /// The central configuration to check.
        file: PathBuf,
    },
    /// Print a new site token and its sha256 (for [[sites]] token_sha256).
    Token,
    /// Read a password from stdin and print its argon2id hash.
    HashPassword,
    /// Store a new configuration version for a site and print its number.
    PushConfig {
        /// central.toml (for [store])
        #[arg(long, default_value = "/etc/luot/central.toml")]
        config: PathBuf,
        /// The site's id.
        #[arg(long)]
        site: String,
        /// The site-managed TOML (all of site.toml but the machine-local sections).
        #[arg(long)]
        file: PathBuf,
        /// A note kept with the version.
        #[arg(long)]
        note: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve { config } => serve(&config),
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Token => {
            let t = luot_server::auth::new_token();
            println!("{t}");
            println!("{}", luot_server::secret::sha256_hex(&t));
            Ok(())
        }
        Cmd::HashPassword => hash_password(),
        Cmd::PushConfig {
            config,
            site,
            file,
            note,
        } => push_config(&config, &site, &file, note.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("luot-central: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let cfg = CentralConfig::load(path)?;
    logging();
    runtime()?.block_on(luot_central::server::serve(cfg))
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let cfg = CentralConfig::load(file)?;
    println!(
        "{}: ok: {} sites, {} users, listen {} ({}), store {}",
        file.display(),
        cfg.sites.len(),
        cfg.users.len(),
        cfg.listen,
        if cfg.tls.is_some() {
            "https"
        } else {
            "http, loopback"
        },
        if cfg.store.password_file.is_some() {
            "with password_file"
        } else {
            "password from env or none"
        }
    );
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    println!("{}", luot_server::secret::hash_password_from_stdin()?);
    Ok(())
}

fn push_config(config: &Path, site: &str, file: &Path, note: Option<&str>) -> anyhow::Result<()> {
    let cfg = CentralConfig::load(config)?;
    if cfg.site(site).is_none() {
        anyhow::bail!("no site \"{site}\" in {}'s [[sites]]", config.display());
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("cannot read {}", file.display()))?;
    let by = format!(
        "push-config ({})",
        std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into())
    );
    runtime()?.block_on(async {
        let db = luot_central::db::Db::new(&cfg.store)?;
        db.init(&cfg.sites)
            .await
            .context("cannot reach central's database ([store] url)")?;
        match luot_central::http::add_version(&db, site, &text, note, &by).await? {
            Ok((version, _sha)) => {
                println!("{version}");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    })
}
