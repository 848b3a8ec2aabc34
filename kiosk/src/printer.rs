//! The thermal printer: where it is (`usb:VID:PID`, `file:PATH`,
//! `tcp:HOST:PORT`), sending a rendered page through the escpos crate's
//! drivers as `GS v 0` raster bands with a partial cut, and reading its
//! real-time status (DLE EOT) where the driver can read back.
//!
//! Everything here is blocking I/O; the daemon calls it on a blocking thread.
//! `Target::Capture` is the test printer: a buffer plus scripted status bytes.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use escpos::driver::{Driver, FileDriver, NativeUsbDriver, NetworkDriver};
use escpos::errors::{PrinterError, Result as EscResult};
use escpos::printer::Printer;
use escpos::utils::{Protocol, RealTimeStatusRequest, RealTimeStatusResponse};
use image::GrayImage;
use luot_protocol::PrinterStatus;

/// `GS V 66 0`: feed to the cutter and cut partially (Epson function B).
/// The escpos crate's `partial_cut()` sends `GS V 65 1`, which the ESC/POS
/// reference defines as a full cut, so the ticket sends this one itself.
pub const PARTIAL_CUT: [u8; 4] = [0x1D, b'V', 66, 0];

/// Rows per `GS v 0` command: small bands suit printers with small buffers.
pub const BAND_ROWS: u32 = 256;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub enum Target {
    Usb {
        vid: u16,
        pid: u16,
    },
    File(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    /// A printer that keeps what it gets (tests, benchmarks).
    Capture(CaptureDriver),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let bad =
            || format!("\"{s}\" is not a printer target (usb:VID:PID, file:PATH or tcp:HOST:PORT)");
        if let Some(rest) = s.strip_prefix("usb:") {
            let (v, p) = rest.split_once(':').ok_or_else(bad)?;
            let vid = u16::from_str_radix(v, 16).map_err(|_| bad())?;
            let pid = u16::from_str_radix(p, 16).map_err(|_| bad())?;
            return Ok(Target::Usb { vid, pid });
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Target::File(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            return Ok(Target::Tcp {
                host: host.trim_matches(['[', ']']).to_string(),
                port,
            });
        }
        Err(bad())
    }

    /// Whether this target can answer status queries.
    pub fn reads_back(&self) -> bool {
        !matches!(self, Target::File(_))
    }

    fn open(&self) -> EscResult<AnyDriver> {
        Ok(match self {
            Target::Usb { vid, pid } => AnyDriver::Usb(NativeUsbDriver::open(*vid, *pid)?),
            Target::File(path) => {
                // Rule 31: opened for appending and created if missing.
                let mut o = std::fs::OpenOptions::new();
                o.append(true).create(true);
                AnyDriver::File(FileDriver::open_with_options(path, &o)?)
            }
            Target::Tcp { host, port } => {
                let ip = host.parse::<std::net::IpAddr>().or_else(|_| {
                    use std::net::ToSocketAddrs;
                    (host.as_str(), *port)
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .map(|a| a.ip())
                        .ok_or_else(|| PrinterError::Io(format!("cannot resolve {host}")))
                })?;
                AnyDriver::Net(NetworkDriver::open(
                    &ip.to_string(),
                    *port,
                    Some(IO_TIMEOUT),
                )?)
            }
            Target::Capture(c) => AnyDriver::Capture(c.clone()),
        })
    }
}

/// One of the escpos drivers.
#[derive(Clone)]
pub enum AnyDriver {
    Usb(NativeUsbDriver),
    File(FileDriver),
    Net(NetworkDriver),
    Capture(CaptureDriver),
}

impl Driver for AnyDriver {
    fn name(&self) -> String {
        match self {
            AnyDriver::Usb(d) => d.name(),
            AnyDriver::File(d) => d.name(),
            AnyDriver::Net(d) => d.name(),
            AnyDriver::Capture(d) => d.name(),
        }
    }
    fn write(&self, data: &[u8]) -> EscResult<()> {
        match self {
            AnyDriver::Usb(d) => d.write(data),
            AnyDriver::File(d) => d.write(data),
            AnyDriver::Net(d) => d.write(data),
            AnyDriver::Capture(d) => d.write(data),
        }
    }
    fn read(&self, buf: &mut [u8]) -> EscResult<usize> {
        match self {
            AnyDriver::Usb(d) => d.read(buf),
            AnyDriver::File(d) => d.read(buf),
            AnyDriver::Net(d) => d.read(buf),
            AnyDriver::Capture(d) => d.read(buf),
        }
    }
    fn flush(&self) -> EscResult<()> {
        match self {
            AnyDriver::Usb(d) => d.flush(),
            AnyDriver::File(d) => d.flush(),
            AnyDriver::Net(d) => d.flush(),
            AnyDriver::Capture(d) => d.flush(),
        }
    }
}

/// A test printer: keeps every byte and answers DLE EOT with scripted bytes.
#[derive(Clone, Default, Debug)]
pub struct CaptureDriver {
    pub out: Arc<Mutex<Vec<u8>>>,
    /// Answers to DLE EOT 1, 2 and 4.
    pub status: Arc<Mutex<[u8; 3]>>,
    pending: Arc<Mutex<VecDeque<u8>>>,
}

/// Status bytes of a healthy printer (DLE EOT 1, 2, 4).
pub const STATUS_OK: [u8; 3] = [0x12, 0x12, 0x12];
/// Status bytes of a printer out of paper.
pub const STATUS_PAPER_OUT: [u8; 3] = [0x1A, 0x32, 0x72];
/// Status bytes of a printer whose paper is nearly out.
pub const STATUS_PAPER_LOW: [u8; 3] = [0x12, 0x12, 0x1E];
/// Status bytes of a printer with its cover open.
pub const STATUS_COVER_OPEN: [u8; 3] = [0x1A, 0x16, 0x12];

impl CaptureDriver {
    pub fn new() -> CaptureDriver {
        let c = CaptureDriver::default();
        c.set_status(STATUS_OK);
        c
    }
    pub fn set_status(&self, s: [u8; 3]) {
        if let Ok(mut st) = self.status.lock() {
            *st = s;
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.out.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Driver for CaptureDriver {
    fn name(&self) -> String {
        "capture".into()
    }
    fn write(&self, data: &[u8]) -> EscResult<()> {
        if let [0x10, 0x04, n] = data {
            let st = *self.status.lock()?;
            let answer = match n {
                1 => st[0],
                2 => st[1],
                4 => st[2],
                _ => 0x12,
            };
            self.pending.lock()?.push_back(answer);
            return Ok(());
        }
        self.out.lock()?.extend_from_slice(data);
        Ok(())
    }
    fn read(&self, buf: &mut [u8]) -> EscResult<usize> {
        let mut p = self.pending.lock()?;
        let mut n = 0;
        while n < buf.len() {
            match p.pop_front() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
    fn flush(&self) -> EscResult<()> {
        Ok(())
    }
}

/// `GS v 0 0 xL xH yL yH d…`: rows `y0..y0+rows` of a 1-bit page, black
/// where the pixel is dark, most significant bit leftmost.
pub fn raster_band(page: &GrayImage, y0: u32, rows: u32) -> Vec<u8> {
    let wb = page.width().div_ceil(8);
    let mut cmd = Vec::with_capacity(8 + (wb * rows) as usize);
    cmd.extend_from_slice(&[0x1D, b'v', b'0', 0]);
    cmd.extend_from_slice(&(wb as u16).to_le_bytes());
    cmd.extend_from_slice(&(rows as u16).to_le_bytes());
    for y in y0..y0 + rows {
        for xb in 0..wb {
            let mut byte = 0u8;
            for bit in 0..8 {
                let x = xb * 8 + bit;
                if x < page.width() && page.get_pixel(x, y).0[0] < 128 {
                    byte |= 0x80 >> bit;
                }
            }
            cmd.push(byte);
        }
    }
    cmd
}

/// Sends a page: init, raster bands, feed, partial cut.
pub fn print_page(target: &Target, page: &GrayImage) -> Result<(), String> {
    let driver = target.open().map_err(|e| e.to_string())?;
    let mut p = Printer::new(driver, Protocol::default(), None);
    p.init().map_err(|e| e.to_string())?;
    let mut y = 0;
    while y < page.height() {
        let rows = BAND_ROWS.min(page.height() - y);
        p.custom(&raster_band(page, y, rows))
            .map_err(|e| e.to_string())?;
        y += rows;
    }
    p.feeds(3)
        .and_then(|p| p.custom(&PARTIAL_CUT))
        .and_then(|p| p.print())
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Reads the printer's real-time status with DLE EOT 1, 2 and 4. Targets
/// that cannot read back (a plain file) are taken to be fine while they
/// can be opened.
pub fn query_status(target: &Target) -> PrinterStatus {
    let driver = match target.open() {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "printer cannot be opened");
            return PrinterStatus::Offline;
        }
    };
    if !target.reads_back() {
        return PrinterStatus::Ok;
    }
    let ask = |req: RealTimeStatusRequest| -> Option<std::collections::HashMap<RealTimeStatusResponse, bool>> {
        let (n, _) = <(u8, u8)>::from(req);
        driver.write(&[0x10, 0x04, n]).ok()?;
        driver.flush().ok()?;
        let mut b = [0u8; 1];
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        loop {
            match driver.read(&mut b) {
                Ok(1) => break,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
        RealTimeStatusResponse::parse(req, b[0]).ok()
    };
    let Some(printer) = ask(RealTimeStatusRequest::Printer) else {
        return PrinterStatus::Offline;
    };
    let is = |m: &std::collections::HashMap<RealTimeStatusResponse, bool>, k| {
        *m.get(&k).unwrap_or(&false)
    };
    if !is(&printer, RealTimeStatusResponse::Online)
        && let Some(cause) = ask(RealTimeStatusRequest::OfflineCause)
    {
        if !is(&cause, RealTimeStatusResponse::CoverClosed) {
            return PrinterStatus::CoverOpen;
        }
        if is(&cause, RealTimeStatusResponse::PrintingStopsDueToPaperEnd) {
            return PrinterStatus::PaperOut;
        }
    }
    match ask(RealTimeStatusRequest::RollPaperSensor) {
        Some(paper)
            if !is(
                &paper,
                RealTimeStatusResponse::RollPaperEndSensorPaperPresent,
            ) =>
        {
            PrinterStatus::PaperOut
        }
        Some(paper)
            if !is(
                &paper,
                RealTimeStatusResponse::RollPaperNearEndSensorPaperAdequate,
            ) =>
        {
            PrinterStatus::PaperLow
        }
        Some(_) if is(&printer, RealTimeStatusResponse::Online) => PrinterStatus::Ok,
        Some(_) => PrinterStatus::Offline,
        None => PrinterStatus::Offline,
    }
}

/// Whether a printer in this state can print a ticket.
pub fn can_print(s: PrinterStatus) -> bool {
    matches!(s, PrinterStatus::Ok | PrinterStatus::PaperLow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert!(matches!(
            Target::parse("usb:0416:5011"),
            Ok(Target::Usb {
                vid: 0x0416,
                pid: 0x5011
            })
        ));
        assert!(matches!(
            Target::parse("file:/dev/usb/lp0"),
            Ok(Target::File(_))
        ));
        assert!(matches!(
            Target::parse("tcp:192.168.1.50:9100"),
            Ok(Target::Tcp { port: 9100, .. })
        ));
        assert!(
            matches!(Target::parse("tcp:[::1]:9100"), Ok(Target::Tcp { ref host, .. }) if host == "::1")
        );
        for bad in ["usb:xyz:1", "file:", "tcp:host", "lpt1", "usb:0416"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_bytes_map_to_contract_states() {
        let c = CaptureDriver::new();
        let t = Target::Capture(c.clone());
        assert_eq!(query_status(&t), PrinterStatus::Ok);
        c.set_status(STATUS_PAPER_OUT);
        assert_eq!(query_status(&t), PrinterStatus::PaperOut);
        c.set_status(STATUS_PAPER_LOW);
        assert_eq!(query_status(&t), PrinterStatus::PaperLow);
        c.set_status(STATUS_COVER_OPEN);
        assert_eq!(query_status(&t), PrinterStatus::CoverOpen);
        assert!(c.bytes().is_empty(), "status queries are not printed");
    }

    #[test]
    fn a_page_is_raster_bands_and_a_partial_cut() {
        let c = CaptureDriver::new();
        let page = GrayImage::from_pixel(576, 600, image::Luma([255]));
        print_page(&Target::Capture(c.clone()), &page).unwrap();
        let b = c.bytes();
        assert!(b.starts_with(&[0x1B, b'@']), "ESC @ first");
        let bands = b.windows(3).filter(|w| *w == [0x1D, b'v', b'0']).count();
        assert_eq!(bands, 3, "600 rows in bands of 256");
        // The first band: 72 bytes wide, 256 rows, all white.
        let at = b.windows(3).position(|w| w == [0x1D, b'v', b'0']).unwrap();
        assert_eq!(&b[at + 3..at + 8], &[0, 72, 0, 0, 1]);
        assert!(b[at + 8..at + 8 + 72 * 256].iter().all(|x| *x == 0));
        assert!(b.ends_with(&PARTIAL_CUT), "partial cut last");
    }

    #[test]
    fn any_status_bytes_map_to_a_state() {
        // Every answer a printer could give (DLE EOT 1, 2, 4) maps to one of
        // the contract's states without a panic; a healthy one prints.
        let c = CaptureDriver::new();
        let t = Target::Capture(c.clone());
        for a in (0u8..=255).step_by(3) {
            for b in [0x12u8, 0x16, 0x32, 0x36, 0x52, 0xFF, 0x00, a] {
                c.set_status([a, b, a ^ b]);
                let _ = query_status(&t);
            }
        }
        c.set_status(STATUS_OK);
        assert!(can_print(query_status(&t)));
    }

    #[test]
    fn raster_bits_are_msb_first_black_is_one() {
        let mut page = GrayImage::from_pixel(16, 2, image::Luma([255]));
        page.put_pixel(0, 0, image::Luma([0]));
        page.put_pixel(9, 1, image::Luma([0]));
        assert_eq!(
            raster_band(&page, 0, 2),
            vec![0x1D, b'v', b'0', 0, 2, 0, 2, 0, 0x80, 0x00, 0x00, 0x40]
        );
    }

    #[test]
    fn file_target_is_created_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let t = Target::File(path.clone());
        let page = GrayImage::from_pixel(384, 16, image::Luma([255]));
        print_page(&t, &page).unwrap();
        let one = std::fs::metadata(&path).unwrap().len();
        print_page(&t, &page).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * one);
        assert_eq!(query_status(&t), PrinterStatus::Ok);
    }
}
