//! deploy/: every script passes shellcheck, every systemd unit passes
//! `systemd-analyze verify`, the amd64 .deb unpacks into a working server
//! with a valid example configuration, and the backup script keeps the
//! configured number of copies.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use luot_tests::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_script_passes_shellcheck() {
    let scripts = [
        "test-all",
        ".ci/run",
        "deploy/luot-backup",
        "deploy/postinst",
        "display/voice/make-clips.sh",
    ];
    for s in scripts {
        let (ok, out) = run(Command::new("shellcheck").arg(root().join(s)));
        assert!(ok, "shellcheck {s}:\n{out}");
    }
}

/// The .deb for this machine, built by `./test-all` (or here if missing).
fn deb() -> PathBuf {
    let dir = root().join("target/debian");
    let find = || {
        std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("luot-server_")
                    && p.to_string_lossy().ends_with("_amd64.deb")
            })
    };
    if let Some(p) = find() {
        return p;
    }
    let (ok, out) = run(
        Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["deb", "-p", "luot-server"])
            .current_dir(root()),
    );
    assert!(
        ok,
        "cargo deb failed (is cargo-deb installed? ./test-all installs it):\n{out}"
    );
    find().expect("the .deb")
}

#[test]
fn the_deb_installs_a_working_server_and_valid_units() {
    let deb = deb();
    let tree = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path()));
    assert!(ok, "{out}");
    let bin = tree.path().join("usr/bin/luot-server");
    let (ok, help) = run(Command::new(&bin).arg("--help"));
    assert!(
        ok && help.contains("check-config") && help.contains("backup"),
        "{help}"
    );
    let example = tree.path().join("etc/luot/site.toml");
    let (ok, out) = run(Command::new(&bin).arg("check-config").arg(&example));
    assert!(ok, "the packaged example is valid: {out}");
    for f in [
        "usr/lib/luot/luot-backup",
        "usr/share/doc/luot-server/INSTALL.md",
        "usr/share/doc/luot-server/examples/nginx-luot.conf",
    ] {
        assert!(tree.path().join(f).exists(), "{f} is packaged");
    }
    // Control data: conffiles (edited configs survive upgrades) and scripts.
    let ctrl = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(ctrl.path()));
    assert!(ok, "{out}");
    let conffiles = std::fs::read_to_string(ctrl.path().join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/luot/site.toml"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(ctrl.path().join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system") && postinst.contains("deb-systemd-helper"),
        "{postinst}"
    );
    // The units, checked against the unpacked tree.
    let units: Vec<PathBuf> = [
        "luot-server.service",
        "luot-backup.service",
        "luot-backup.timer",
    ]
    .iter()
    .map(|u| {
        let p = tree.path().join("lib/systemd/system").join(u);
        let p = if p.exists() {
            p
        } else {
            tree.path().join("usr/lib/systemd/system").join(u)
        };
        assert!(p.exists(), "{u} is packaged");
        p
    })
    .collect();
    let unit = std::fs::read_to_string(&units[0]).unwrap();
    for want in [
        "Type=notify",
        "StateDirectory=luot",
        "User=luot",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(want), "luot-server.service has {want}");
    }
    // Verify copies whose commands point into the unpacked package, so the
    // check covers the executables too.
    let units_dir = tempfile::tempdir().unwrap();
    let copies: Vec<PathBuf> = units
        .iter()
        .map(|u| {
            let text = std::fs::read_to_string(u)
                .unwrap()
                .replace("/usr/bin/", &format!("{}/usr/bin/", tree.path().display()))
                .replace(
                    "/usr/lib/luot/",
                    &format!("{}/usr/lib/luot/", tree.path().display()),
                );
            let p = units_dir.path().join(u.file_name().unwrap());
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").args(&copies));
    assert!(ok, "systemd-analyze verify:\n{out}");
}

#[tokio::test]
async fn the_backup_script_keeps_the_newest_copies() {
    let site = Site::hospital();
    let server = site.start();
    let api = Api::new(&server);
    api.issue(KIOSK_TOKEN, "kham-noi", "bk1").await;
    let backups = site.dir.path().join("backups");
    for _ in 0..3 {
        let (ok, out) = run(Command::new(root().join("deploy/luot-backup"))
            .env("LUOT_SERVER", binary("luot-server"))
            .env("LUOT_CONFIG", site.config())
            .env("LUOT_DATA_DIR", site.data())
            .env("LUOT_BACKUP_DIR", &backups)
            .env("LUOT_BACKUP_KEEP", "2"));
        assert!(ok, "{out}");
        std::thread::sleep(std::time::Duration::from_millis(1100)); // names carry the second
    }
    let mut files: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        std::fs::read(&files[1])
            .unwrap()
            .starts_with(b"LUOT-BACKUP")
    );
}

fn install(root: &Path, args: &[&str]) -> (bool, String) {
    run(Command::new(root_dir().join("firmware-config/install.sh"))
        .arg("--root")
        .arg(root)
        .args(args))
}

fn root_dir() -> PathBuf {
    root()
}

/// Every file under `dir` with its bytes, for comparing two runs.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.push((
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .as_bytes()
                        .to_vec(),
                ));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `systemd-analyze verify` on a copy of `unit` whose commands are replaced.
fn verify_unit(unit: &Path, replace: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(unit).unwrap();
    for (a, b) in replace {
        text = text.replace(a, b);
    }
    let copy = dir.path().join(unit.file_name().unwrap());
    std::fs::write(&copy, text).unwrap();
    let (ok, out) = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
    assert!(ok, "systemd-analyze verify {}:\n{out}", unit.display());
}

#[test]
fn install_sh_sets_up_a_kiosk_idempotently() {
    let root = tempfile::tempdir().unwrap();
    let args = [
        "--role",
        "kiosk",
        "--server",
        "http://10.0.0.2:8080",
        "--token",
        "tok-123",
        "--printer",
        "usb:0416:5011",
        "--buttons",
        "17=kham-noi,22=kham-ngoai",
        "--led",
        "27",
        "--paper",
        "58",
        "--issue-deadline-s",
        "20",
        "--nightly-reboot",
        "03:30",
        "--read-only",
    ];
    let (ok, out) = install(root.path(), &args);
    assert!(ok, "{out}");
    let first = tree(root.path());
    let (ok, out) = install(root.path(), &args);
    assert!(ok, "{out}");
    assert_eq!(tree(root.path()), first, "a second run changes nothing");

    let cfg_text = std::fs::read_to_string(root.path().join("etc/luot/kiosk.toml")).unwrap();
    let cfg = luot_kiosk::config::KioskConfig::parse("kiosk.toml", &cfg_text).unwrap();
    assert_eq!(cfg.server.url, "http://10.0.0.2:8080");
    assert_eq!(cfg.server.token, "tok-123");
    assert_eq!(cfg.printer.target, "usb:0416:5011");
    assert_eq!(cfg.width_dots(), 384);
    assert_eq!(
        cfg.buttons
            .iter()
            .map(|b| (b.pin, b.service.as_str()))
            .collect::<Vec<_>>(),
        [(17, "kham-noi"), (22, "kham-ngoai")]
    );
    assert_eq!(cfg.leds.ready, Some(27));
    assert_eq!(cfg.issue_deadline(), std::time::Duration::from_secs(20));
    let udev = std::fs::read_to_string(root.path().join("etc/udev/rules.d/60-luot-printers.rules"))
        .unwrap();
    assert!(udev.contains("bInterfaceClass}==\"07\"") && udev.contains("GROUP=\"lp\""));
    let unit = root.path().join("etc/systemd/system/luot-kiosk.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Restart=always") && text.contains("WatchdogSec="));
    let kiosk = binary("luot-kiosk");
    verify_unit(&unit, &[("/usr/bin/luot-kiosk", kiosk.to_str().unwrap())]);
    assert_eq!(
        std::fs::read_link(
            root.path()
                .join("etc/systemd/system/multi-user.target.wants/luot-kiosk.service")
        )
        .unwrap(),
        PathBuf::from("/etc/systemd/system/luot-kiosk.service"),
        "enabled"
    );
    assert_eq!(
        std::fs::read_link(
            root.path()
                .join("etc/systemd/system/timers.target.wants/luot-nightly-reboot.timer")
        )
        .unwrap(),
        PathBuf::from("/etc/systemd/system/luot-nightly-reboot.timer"),
        "enabled"
    );
    verify_unit(
        &root
            .path()
            .join("etc/systemd/system/luot-nightly-reboot.timer"),
        &[],
    );
    verify_unit(
        &root
            .path()
            .join("etc/systemd/system/luot-nightly-reboot.service"),
        &[],
    );
    assert!(root.path().join("etc/luot/read-only-root").exists());
    let config_txt = std::fs::read_to_string(root.path().join("boot/firmware/config.txt")).unwrap();
    assert_eq!(config_txt.matches("hdmi_force_hotplug=1").count(), 1);
}

#[test]
fn install_sh_sets_up_a_tv_display() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("boot/firmware")).unwrap();
    std::fs::write(
        root.path().join("boot/firmware/config.txt"),
        "# the Pi's own settings\ndtoverlay=vc4-kms-v3d\n",
    )
    .unwrap();
    std::fs::write(
        root.path().join("boot/firmware/cmdline.txt"),
        "console=serial0,115200 console=tty1 root=PARTUUID=1 rootwait\n",
    )
    .unwrap();
    let args = [
        "--role",
        "display",
        "--server",
        "http://10.0.0.2:8080/",
        "--token",
        "tv-tok",
    ];
    for _ in 0..2 {
        let (ok, out) = install(root.path(), &args);
        assert!(ok, "{out}");
    }
    let unit = root.path().join("etc/systemd/system/luot-display.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains("http://10.0.0.2:8080/board#token=tv-tok"),
        "{text}"
    );
    assert!(
        text.contains("--autoplay-policy=no-user-gesture-required") && text.contains("--kiosk")
    );
    assert!(text.contains("Restart=always"));
    verify_unit(
        &unit,
        &[("/usr/bin/cage -s -- /usr/bin/chromium", "/usr/bin/env")],
    );
    let config_txt = std::fs::read_to_string(root.path().join("boot/firmware/config.txt")).unwrap();
    assert!(
        config_txt.starts_with("# the Pi's own settings\ndtoverlay=vc4-kms-v3d\n"),
        "keeps what was there"
    );
    assert_eq!(config_txt.matches("hdmi_force_hotplug=1").count(), 1);
    assert_eq!(config_txt.matches("hdmi_drive=2").count(), 1);
    let cmdline = std::fs::read_to_string(root.path().join("boot/firmware/cmdline.txt")).unwrap();
    assert_eq!(cmdline.lines().count(), 1);
    assert_eq!(cmdline.matches("consoleblank=0").count(), 1);
    assert_eq!(
        std::fs::read_link(
            root.path()
                .join("etc/systemd/system/graphical.target.wants/luot-display.service")
        )
        .unwrap(),
        PathBuf::from("/etc/systemd/system/luot-display.service"),
        "enabled"
    );
}

#[test]
fn install_sh_refuses_bad_arguments() {
    let root = tempfile::tempdir().unwrap();
    for (args, words) in [
        (vec!["--role", "toaster"], "--role"),
        (
            vec!["--role", "kiosk", "--server", "10.0.0.2", "--token", "t"],
            "http://",
        ),
        (
            vec!["--role", "kiosk", "--server", "http://x", "--token", "t"],
            "--printer",
        ),
        (
            vec![
                "--role",
                "kiosk",
                "--server",
                "http://x",
                "--token",
                "t",
                "--printer",
                "usb:1:2",
                "--buttons",
                "x=y",
            ],
            "PIN=SERVICE",
        ),
        (
            vec![
                "--role",
                "kiosk",
                "--server",
                "http://x",
                "--token",
                "t",
                "--printer",
                "usb:1:2",
                "--issue-deadline-s",
                "0",
            ],
            "--issue-deadline-s",
        ),
    ] {
        let (ok, out) = install(root.path(), &args);
        assert!(!ok && out.contains(words), "{args:?}: {out}");
    }
}
