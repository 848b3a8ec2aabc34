//! A small ESC/POS reader for tests: turns the bytes a printer would get
//! into pages (raster pictures) and cuts, so a test can look at what a
//! patient would hold.

use image::{GrayImage, Luma};

#[derive(Debug, Default)]
pub struct Page {
    pub rows: Vec<Vec<bool>>,
    pub width: u32,
    pub cut: bool,
}

impl Page {
    pub fn image(&self) -> GrayImage {
        let mut img = GrayImage::from_pixel(
            self.width.max(1),
            self.rows.len().max(1) as u32,
            Luma([255]),
        );
        for (y, row) in self.rows.iter().enumerate() {
            for (x, black) in row.iter().enumerate() {
                if *black {
                    img.put_pixel(x as u32, y as u32, Luma([0]));
                }
            }
        }
        img
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReadError {
    #[error("truncated command at byte {0}")]
    Truncated(usize),
    #[error("unknown byte {1:#04x} at {0}")]
    Unknown(usize, u8),
}

/// Reads a stream of ESC/POS commands. Knows what luot's kiosk sends:
/// `ESC @`, `CAN`, `ESC d n`, `GS v 0`, `GS V m [n]`, and plain text.
pub fn read(bytes: &[u8]) -> Result<Vec<Page>, ReadError> {
    let mut pages = Vec::new();
    let mut page = Page::default();
    let mut i = 0;
    let need = |i: usize, n: usize| {
        if i + n <= bytes.len() {
            Ok(())
        } else {
            Err(ReadError::Truncated(i))
        }
    };
    while i < bytes.len() {
        match bytes[i] {
            0x1B => {
                need(i, 2)?;
                match bytes[i + 1] {
                    b'@' => i += 2,
                    b'd' => {
                        need(i, 3)?;
                        i += 3;
                    }
                    b => return Err(ReadError::Unknown(i + 1, b)),
                }
            }
            0x18 | 0x0A => i += 1,
            0x1D => {
                need(i, 2)?;
                match bytes[i + 1] {
                    b'v' => {
                        need(i, 8)?;
                        let wb = bytes[i + 4] as usize + 256 * bytes[i + 5] as usize;
                        let h = bytes[i + 6] as usize + 256 * bytes[i + 7] as usize;
                        let start = i + 8;
                        need(start, wb * h)?;
                        page.width = page.width.max(wb as u32 * 8);
                        for r in 0..h {
                            let row = &bytes[start + r * wb..start + (r + 1) * wb];
                            page.rows.push(
                                row.iter()
                                    .flat_map(|byte| {
                                        (0..8).rev().map(move |bit| byte >> bit & 1 == 1)
                                    })
                                    .collect(),
                            );
                        }
                        i = start + wb * h;
                    }
                    b'V' => {
                        need(i, 3)?;
                        let m = bytes[i + 2];
                        i += if m >= 65 { 4 } else { 3 };
                        page.cut = true;
                        pages.push(std::mem::take(&mut page));
                    }
                    b => return Err(ReadError::Unknown(i + 1, b)),
                }
            }
            b if b >= 0x20 => i += 1,
            b => return Err(ReadError::Unknown(i, b)),
        }
    }
    if !page.rows.is_empty() {
        pages.push(page);
    }
    Ok(pages)
}

/// The QR code on a page, decoded.
pub fn qr(page: &GrayImage) -> Option<String> {
    let mut prepared = rqrr::PreparedImage::prepare(page.clone());
    let grids = prepared.detect_grids();
    grids.first()?.decode().ok().map(|(_, s)| s)
}
