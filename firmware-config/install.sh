#!/usr/bin/env bash
# Turns a stock Raspberry Pi OS Lite 64-bit (Bookworm) into a luot kiosk or a
# luot TV display. Idempotent: run it again with new arguments to change the
# setup. With --root DIR it writes into DIR instead of / (for tests and for
# preparing an SD card image) and touches nothing else.
#
#   install.sh --role kiosk --server http://192.168.1.10:8080 --token TOKEN \
#              --printer usb:0416:5011 --buttons 17=kham-noi,22=kham-ngoai [--led 27] \
#              [--paper 80] [--issue-deadline-s 8] [--deb luot-kiosk_0.1.0-1_arm64.deb]
#   install.sh --role display --server http://192.168.1.10:8080 --token TOKEN [--page board]
#   common:    [--root DIR] [--read-only] [--nightly-reboot 03:30]
set -euo pipefail

role='' root=/ server='' token='' printer='' buttons='' led='' paper=80 deb='' page=board
issue_deadline_s=8
read_only='' reboot_at=''

die() { echo "install.sh: $*" >&2; exit 2; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --role) role=${2:-}; shift 2 ;;
        --root) root=${2:-}; shift 2 ;;
        --server) server=${2:-}; shift 2 ;;
        --token) token=${2:-}; shift 2 ;;
        --printer) printer=${2:-}; shift 2 ;;
        --buttons) buttons=${2:-}; shift 2 ;;
        --led) led=${2:-}; shift 2 ;;
        --paper) paper=${2:-}; shift 2 ;;
        --issue-deadline-s) issue_deadline_s=${2:-}; shift 2 ;;
        --deb) deb=${2:-}; shift 2 ;;
        --page) page=${2:-}; shift 2 ;;
        --read-only) read_only=1; shift ;;
        --nightly-reboot) reboot_at=${2:-}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

[ "$role" = kiosk ] || [ "$role" = display ] || die "--role kiosk|display is required"
[ -n "$server" ] || die "--server http://HOST:PORT is required"
case "$server" in http://*|https://*) ;; *) die "--server must start with http:// or https://" ;; esac
[ -n "$token" ] || die "--token is required (make one with: luot-server token)"
[ -d "$root" ] || die "--root $root is not a directory"
live=''; [ "$root" = / ] && live=1
R=${root%/}

say() { printf '==> %s\n' "$*"; }

# write PATH MODE: standard input becomes PATH under the root, only if it changed.
write() {
    local path="$R$1" mode=$2 tmp
    mkdir -p "$(dirname "$path")"
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$path" ] && cmp -s "$tmp" "$path"; then rm -f "$tmp"; else mv "$tmp" "$path"; fi
    chmod "$mode" "$path"
}

# block FILE NAME: replaces the "# luot NAME" block of FILE with standard input.
block() {
    local path="$R$1" name=$2 body tmp
    body=$(cat)
    mkdir -p "$(dirname "$path")"
    touch "$path"
    tmp=$(mktemp)
    awk -v b="# luot $name begin" -v e="# luot $name end" '
        $0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip { print }' "$path" >"$tmp"
    { cat "$tmp"; echo "# luot $name begin"; echo "$body"; echo "# luot $name end"; } >"$path"
    rm -f "$tmp"
}

enable_unit() { # enable_unit NAME TARGET
    if [ -n "$live" ]; then
        systemctl daemon-reload
        systemctl enable --now "$1"
    else
        mkdir -p "$R/etc/systemd/system/$2.wants"
        ln -sfn "/etc/systemd/system/$1" "$R/etc/systemd/system/$2.wants/$1"
    fi
}

boot=/boot/firmware
[ -n "$live" ] && [ ! -d "$boot" ] && boot=/boot

# HDMI on a TV that is off at boot, sound over HDMI, no overscan.
block "$boot/config.txt" display <<'CFG'
hdmi_force_hotplug=1
hdmi_drive=2
dtparam=audio=on
disable_overscan=1
CFG

if [ "$role" = kiosk ]; then
    [ -n "$printer" ] || die "--printer usb:VID:PID|file:PATH|tcp:HOST:PORT is required for a kiosk"
    [ "$paper" = 80 ] || [ "$paper" = 58 ] || die "--paper 80 or 58"
    case "$issue_deadline_s" in ''|*[!0-9]*) die "--issue-deadline-s: whole seconds, 1-120" ;; esac
    [ "$issue_deadline_s" -ge 1 ] && [ "$issue_deadline_s" -le 120 ] || die "--issue-deadline-s: 1-120"
    if [ -n "$deb" ]; then
        [ -f "$deb" ] || die "--deb $deb: no such file"
        if [ -n "$live" ]; then apt-get install -y "$(realpath "$deb")"; else dpkg-deb -x "$deb" "$R"; fi
    fi
    if [ -n "$live" ] && ! getent passwd luot-kiosk >/dev/null; then
        useradd --system --home-dir /var/lib/luot-kiosk --shell /usr/sbin/nologin luot-kiosk
        usermod -a -G gpio,lp,plugdev,input luot-kiosk
    fi
    {
        echo "# Written by firmware-config/install.sh; run it again to change."
        echo "# Seconds a press keeps trying before the out-of-service slip (rule 107)."
        echo "issue_deadline_s = $issue_deadline_s"
        echo
        echo "[server]"
        echo "url = \"$server\""
        echo "token = \"$token\""
        echo
        echo "[printer]"
        echo "target = \"$printer\""
        echo "paper_mm = $paper"
        IFS=, read -r -a pairs <<<"$buttons"
        for pair in "${pairs[@]}"; do
            [ -n "$pair" ] || continue
            pin=${pair%%=*} service=${pair#*=}
            case "$pin" in ''|*[!0-9]*) die "--buttons: \"$pair\" is not PIN=SERVICE" ;; esac
            echo
            echo "[[buttons]]"
            echo "pin = $pin"
            echo "service = \"$service\""
        done
        if [ -n "$led" ]; then echo; echo "[leds]"; echo "ready = $led"; fi
        if [ -z "$buttons" ]; then echo; echo "[touch]"; echo "enabled = true"; fi
        echo
        echo "[state]"
        echo "dir = \"/var/lib/luot-kiosk\""
    } | write /etc/luot/kiosk.toml 0640
    # Common USB receipt printers (USB printer class, and the usual vendors).
    write /etc/udev/rules.d/60-luot-printers.rules 0644 <<'UDEV'
# luot kiosk: let the luot-kiosk service (group lp) use USB receipt printers.
SUBSYSTEM=="usb", ATTR{bInterfaceClass}=="07", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="0416", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="04b8", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="0519", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="0fe6", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="1fc9", MODE="0660", GROUP="lp"
SUBSYSTEM=="usb", ATTRS{idVendor}=="28e9", MODE="0660", GROUP="lp"
SUBSYSTEM=="usbmisc", KERNEL=="lp[0-9]*", MODE="0660", GROUP="lp"
UDEV
    write /etc/systemd/system/luot-kiosk.service 0644 <<'UNIT'
[Unit]
Description=luot kiosk: buttons to printed queue tickets
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
ExecStart=/usr/bin/luot-kiosk --config /etc/luot/kiosk.toml
User=luot-kiosk
SupplementaryGroups=gpio lp plugdev input
StateDirectory=luot-kiosk
Environment=RUST_LOG=info
Restart=always
RestartSec=2
WatchdogSec=90
TimeoutStopSec=10
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes

[Install]
WantedBy=multi-user.target
UNIT
    enable_unit luot-kiosk.service multi-user.target
    [ -n "$live" ] && udevadm control --reload-rules && udevadm trigger
else
    url="${server%/}/$page#token=$token"
    if [ -n "$live" ]; then
        apt-get install -y --no-install-recommends cage chromium
        getent passwd luot-display >/dev/null ||
            useradd --create-home --shell /usr/sbin/nologin --groups video,audio,render,input luot-display
    fi
    write /etc/systemd/system/luot-display.service 0644 <<UNIT
[Unit]
Description=luot TV display: Chromium full screen on the board
After=network-online.target systemd-user-sessions.service
Wants=network-online.target
Conflicts=getty@tty1.service

[Service]
User=luot-display
PAMName=login
TTYPath=/dev/tty1
StandardInput=tty
Environment=XDG_RUNTIME_DIR=/run/user/%U
RuntimeDirectory=luot-display
# The page reconnects by itself when the server restarts; systemd restarts
# the browser if it ever exits.
ExecStart=/usr/bin/cage -s -- /usr/bin/chromium --kiosk --noerrdialogs --disable-infobars --no-first-run --autoplay-policy=no-user-gesture-required --check-for-update-interval=31536000 --disk-cache-size=1 $url
Restart=always
RestartSec=3

[Install]
WantedBy=graphical.target
UNIT
    # No screen blanking on the console either.
    cmdline="$R$boot/cmdline.txt"
    mkdir -p "$(dirname "$cmdline")"
    [ -f "$cmdline" ] || echo "console=tty1 rootwait" >"$cmdline"
    grep -qw 'consoleblank=0' "$cmdline" || sed -i '1 s/$/ consoleblank=0/' "$cmdline"
    enable_unit luot-display.service graphical.target
    [ -n "$live" ] && systemctl set-default graphical.target
fi

if [ -n "$reboot_at" ]; then
    case "$reboot_at" in [0-2][0-9]:[0-5][0-9]) ;; *) die "--nightly-reboot HH:MM" ;; esac
    write /etc/systemd/system/luot-nightly-reboot.service 0644 <<'UNIT'
[Unit]
Description=luot nightly reboot

[Service]
Type=oneshot
ExecStart=/usr/bin/systemctl reboot
UNIT
    write /etc/systemd/system/luot-nightly-reboot.timer 0644 <<UNIT
[Unit]
Description=luot nightly reboot at $reboot_at

[Timer]
OnCalendar=*-*-* $reboot_at:00

[Install]
WantedBy=timers.target
UNIT
    enable_unit luot-nightly-reboot.timer timers.target
fi

if [ -n "$read_only" ]; then
    if [ -n "$live" ]; then
        say "read-only root: the overlay takes effect after a reboot"
        raspi-config nonint enable_overlayfs
    else
        echo "overlay" | write /etc/luot/read-only-root 0644
    fi
fi

say "luot $role set up under $root"
