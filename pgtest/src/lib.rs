//! A throwaway PostgreSQL server for tests: the machine's own PostgreSQL
//! (Debian's `postgresql` package, `/usr/lib/postgresql/<version>/bin`),
//! `initdb` in a temporary directory, listening on a Unix socket there and
//! on a free port of 127.0.0.1, with `trust` authentication for local
//! connections only.
//!
//! The server runs under a small `sh` that waits on a pipe from this
//! process: when the test process ends, however it ends, the pipe closes and
//! the shell stops the server and removes its directory. So a cluster kept
//! in a `static` for a whole test binary never outlives it.
//!
//! PostgreSQL refuses to run as root; as root the binaries run as the
//! `postgres` user (made by Debian's package) through `runuser`.
//!
//! Owns nothing of luot: it knows PostgreSQL's command line only.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The directory of the newest PostgreSQL's binaries on this machine.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): \
             run ./test-all, which installs Debian's postgresql package"
        ),
    }
}

/// Whether this process runs as root (then PostgreSQL's binaries run as the
/// `postgres` user).
pub fn is_root() -> bool {
    // The effective uid, without libc: /proc/self/status's "Uid:" line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command for PostgreSQL's binary `name`, as the `postgres` user when
/// this process is root.
pub fn pg_command(name: &str) -> Command {
    let bin = bin_dir().join(name);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Makes `path` owned by the `postgres` user when this process is root, so
/// that the server (which runs as that user) can write there.
pub fn give_to_postgres(path: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "chown postgres {} failed", path.display());
    }
}

/// The words a shell line starts with to run a program as the `postgres`
/// user *in place*: `setpriv` changes user and execs, where `runuser` forks
/// and waits, so a shell's `$!` is the program's own pid and a signal sent to
/// it reaches the program. Empty when this process is not root.
pub fn postgres_exec_prefix() -> &'static str {
    if is_root() {
        "setpriv --reuid=postgres --regid=postgres --init-groups env HOME=/var/lib/postgresql "
    } else {
        ""
    }
}

/// A free TCP port on `ip` (a loopback address such as 127.0.0.11).
pub fn free_port_on(ip: std::net::Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port on {ip}: {e}"))
}

/// A free TCP port on 127.0.0.1 (free when asked; tests race only each other).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A running throwaway PostgreSQL server.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    /// The write end of the pipe the guarding shell waits on.
    guard: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Cluster {
    /// Starts a new server; panics with the server's own words if it cannot.
    pub fn start() -> Cluster {
        Self::start_with(&[])
    }

    /// Starts a new server with extra settings (`("wal_level", "logical")`).
    pub fn start_with(settings: &[(&str, &str)]) -> Cluster {
        let tmp = tempfile::Builder::new()
            .prefix("luot-pg-")
            .tempdir()
            .expect("a temporary directory");
        let dir = tmp.path().to_path_buf();
        // The server's user must reach its directory.
        let _ = Command::new("chmod").arg("755").arg(&dir).status();
        let data = dir.join("data");
        std::fs::create_dir(&data).expect("create the data directory");
        give_to_postgres(&dir);
        let out = pg_command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = on\nsynchronous_commit = on\nmax_connections = 200\nshared_buffers = 64MB\n\
             log_min_messages = warning\n",
            dir.display()
        );
        for (k, v) in settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        f.write_all(conf.as_bytes()).expect("write postgresql.conf");
        // The guard: postgres in the background, then wait for our pipe to
        // close (this process ended or dropped the cluster), then a fast
        // shutdown and the directory removed.
        let postgres = bin_dir().join("postgres");
        let run = if is_root() {
            format!("runuser -u postgres -- '{}'", postgres.display())
        } else {
            format!("'{}'", postgres.display())
        };
        let script = format!(
            "{run} -D '{data}' >'{log}' 2>&1 & p=$!\n\
             cat >/dev/null\n\
             kill -INT \"$(head -n 1 '{data}/postmaster.pid' 2>/dev/null)\" 2>/dev/null\n\
             wait $p; rm -rf '{dir}'\n",
            data = data.display(),
            log = dir.join("server.log").display(),
            dir = dir.display(),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let guard = child.stdin.take();
        let c = Cluster {
            dir,
            port,
            guard: Mutex::new(guard),
            child: Mutex::new(child),
        };
        // The shell removes the directory itself; keep TempDir from racing it.
        let _ = tmp.keep();
        c.wait_ready();
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = pg_command("pg_isready")
                .args(["-q", "-h"])
                .arg(&self.dir)
                .args(["-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!("postgres did not start: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A libpq key=value connection string for `dbname` over the Unix socket.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={dbname}",
            self.dir.display(),
            self.port
        )
    }

    /// The same over TCP on 127.0.0.1.
    pub fn tcp_url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Creates database `name` (must not exist); returns its `url`.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// A fresh database with a name no other call in this process gets.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("t{}_{n}", std::process::id()))
    }

    /// Runs SQL with psql in `dbname`; panics with psql's words if it fails.
    /// Returns what psql printed (unaligned, tuples only).
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = pg_command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server now (fast shutdown) and waits for it.
    pub fn stop(&self) {
        if let Ok(mut g) = self.guard.lock() {
            g.take();
        }
        if let Ok(mut c) = self.child.lock() {
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One cluster for the whole test process, started on first use.
pub fn shared() -> &'static Cluster {
    static ONE: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    ONE.get_or_init(Cluster::start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_answers_queries_and_is_gone_when_dropped() {
        let c = Cluster::start();
        assert_eq!(c.psql("postgres", "SELECT 1 + 1"), "2");
        assert_eq!(c.psql("postgres", "SHOW synchronous_commit"), "on");
        let url = c.fresh_database();
        assert!(url.contains("dbname=t"), "{url}");
        let dir = c.socket_dir().to_path_buf();
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(10);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!dir.exists(), "the cluster's directory outlived it");
    }
}
