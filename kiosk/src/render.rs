//! Draws a printed ticket (contract §7, with rule 78's `Hẹn` for a
//! check-in, and its reprint of rule 67), an out-of-service slip or a
//! refusal slip (rule 84: no number, no QR code) as a 1-bit
//! picture the width of the paper (576 dots for 80 mm, 384 for 58 mm), with a
//! bundled font that covers Vietnamese, so diacritics are exact on any printer.
//! Pure: text in, pixels out; no I/O.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{GrayImage, Luma};
use qrcode::{EcLevel, QrCode};
use unicode_normalization::UnicodeNormalization;

static REGULAR: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../assets/fonts/DejaVuSans-Bold.ttf");

const BLACK: Luma<u8> = Luma([0]);
const WHITE: Luma<u8> = Luma([255]);

/// What a ticket shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    pub site_name: String,
    pub service_name: String,
    pub number: String,
    /// Priority class id, if any.
    pub priority: Option<String>,
    /// RFC 3339 time of issue with the site's offset.
    pub issued_at: String,
    /// People waiting ahead at the time of printing; `None` leaves the line
    /// out (a reprint of a ticket that is not waiting, rule 67).
    pub ahead: Option<u32>,
    /// `{public_url}/t/{id}`.
    pub url: String,
    pub footer: String,
    /// Set when the ticket is printed again (`POST /tickets/{id}/print`).
    pub reprint: Option<Reprint>,
    /// A check-in's booking time (RFC 3339): printed as `Hẹn 08:30` in the
    /// offset of `issued_at`, like the ticket's other times (rule 78).
    pub slot_at: Option<String>,
}

/// What a refusal slip shows (rule 84).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalView {
    pub site_name: String,
    /// The pressed button's service; none for a check-in (the error does
    /// not say which service the booking is for).
    pub service_name: Option<String>,
    pub headline: String,
    /// When to come back (`HH:MM`), if the error says.
    pub comeback: Option<String>,
}

/// What a reprint adds to the ticket (rule 67).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reprint {
    /// RFC 3339 time of the reprint, with the site's offset.
    pub at: String,
    /// For a visit: where to go now (rule 57's `place`s); empty otherwise.
    pub places: Vec<String>,
}

/// The Vietnamese name of a default priority class.
pub fn priority_label(class: &str) -> String {
    match class {
        "emergency" => "Cấp cứu".into(),
        "child_under_6" => "Trẻ em dưới 6 tuổi".into(),
        "pregnant" => "Phụ nữ có thai".into(),
        "especially_severe_disability" => "Người khuyết tật đặc biệt nặng".into(),
        "severe_disability" => "Người khuyết tật nặng".into(),
        "age_75_plus" => "Người từ 75 tuổi trở lên".into(),
        "merited_person" => "Người có công với cách mạng".into(),
        other => other.replace('_', " "),
    }
}

/// "07:31 - 22/11/2026" from an RFC 3339 time, in its own offset.
pub fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%H:%M - %d/%m/%Y").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// `HH:MM` of `rfc3339` in the offset of `like` (the ticket's own time),
/// or in its own offset when `like` does not parse.
pub fn clock_time(rfc3339: &str, like: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let t = match chrono::DateTime::parse_from_rfc3339(like) {
        Ok(l) => t.with_timezone(l.offset()),
        Err(_) => t,
    };
    t.format("%H:%M").to_string()
}

enum Block {
    Text { text: String, size: f32, bold: bool },
    Qr(String),
    Rule,
    Gap(u32),
}

struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

fn fonts() -> Fonts {
    Fonts {
        regular: FontRef::try_from_slice(REGULAR).expect("bundled font"),
        bold: FontRef::try_from_slice(BOLD).expect("bundled font"),
    }
}

impl Fonts {
    fn pick(&self, bold: bool) -> &FontRef<'static> {
        if bold { &self.bold } else { &self.regular }
    }

    fn width(&self, text: &str, size: f32, bold: bool) -> f32 {
        let font = self.pick(bold).as_scaled(PxScale::from(size));
        let mut x = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                x += font.kern(p, id);
            }
            x += font.h_advance(id);
            prev = Some(id);
        }
        x
    }

    /// Greedy word wrap to `max` pixels.
    fn wrap(&self, text: &str, size: f32, bold: bool, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for word in text.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if self.width(&candidate, size, bold) <= max || line.is_empty() {
                line = candidate;
            } else {
                lines.push(std::mem::take(&mut line));
                line = word.to_string();
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines
    }

    fn line_height(size: f32) -> u32 {
        (size * 1.25).ceil() as u32
    }

    /// Draws one centred line with its top at `y`.
    fn draw_line(&self, img: &mut GrayImage, text: &str, size: f32, bold: bool, y: u32) {
        let font = self.pick(bold);
        let scaled = font.as_scaled(PxScale::from(size));
        let w = self.width(text, size, bold);
        let mut x = ((img.width() as f32 - w) / 2.0).max(0.0);
        let baseline = y as f32 + size * 0.15 + scaled.ascent();
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(PxScale::from(size), point(x, baseline));
            x += scaled.h_advance(id);
            prev = Some(id);
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let px = b.min.x as i64 + gx as i64;
                    let py = b.min.y as i64 + gy as i64;
                    if coverage >= 0.5
                        && px >= 0
                        && py >= 0
                        && (px as u32) < img.width()
                        && (py as u32) < img.height()
                    {
                        img.put_pixel(px as u32, py as u32, BLACK);
                    }
                });
            }
        }
    }
}

/// Lays blocks out top to bottom and draws them on a white page.
fn draw(width: u32, blocks: Vec<Block>) -> GrayImage {
    let f = fonts();
    let margin = 16.0;
    let max = width as f32 - 2.0 * margin;
    // Expand text into wrapped lines first, so the height is known.
    let mut laid: Vec<Block> = Vec::new();
    for b in blocks {
        match b {
            Block::Text { text, size, bold } => {
                let text: String = text.nfc().collect();
                for line in f.wrap(&text, size, bold, max) {
                    laid.push(Block::Text {
                        text: line,
                        size,
                        bold,
                    });
                }
            }
            other => laid.push(other),
        }
    }
    let qr_side = |url: &str| -> (QrCode, u32, u32) {
        let code = QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)
            .or_else(|_| QrCode::new(url.as_bytes()))
            .unwrap_or_else(|_| QrCode::new(b"luot").expect("tiny QR"));
        let modules = code.width() as u32 + 8; // 4-module quiet zone each side
        let scale = ((width / 2).max(200) / modules).max(2);
        (code, scale, modules * scale)
    };
    let height: u32 = 24
        + laid
            .iter()
            .map(|b| match b {
                Block::Text { size, .. } => Fonts::line_height(*size),
                Block::Qr(url) => qr_side(url).2,
                Block::Rule => 12,
                Block::Gap(g) => *g,
            })
            .sum::<u32>()
        + 40;
    // Printers take whole bytes per row.
    let height = height.div_ceil(8) * 8;
    let mut img = GrayImage::from_pixel(width, height, WHITE);
    let mut y = 24;
    for b in laid {
        match b {
            Block::Text { text, size, bold } => {
                f.draw_line(&mut img, &text, size, bold, y);
                y += Fonts::line_height(size);
            }
            Block::Qr(url) => {
                let (code, scale, side) = qr_side(&url);
                let x0 = (width - side) / 2 + 4 * scale;
                let y0 = y + 4 * scale;
                let n = code.width() as u32;
                for (i, c) in code.to_colors().iter().enumerate() {
                    if *c == qrcode::Color::Dark {
                        let (mx, my) = (i as u32 % n, i as u32 / n);
                        for dy in 0..scale {
                            for dx in 0..scale {
                                img.put_pixel(x0 + mx * scale + dx, y0 + my * scale + dy, BLACK);
                            }
                        }
                    }
                }
                y += side;
            }
            Block::Rule => {
                for x in margin as u32..width - margin as u32 {
                    for dy in 5..7 {
                        img.put_pixel(x, y + dy, BLACK);
                    }
                }
                y += 12;
            }
            Block::Gap(g) => y += g,
        }
    }
    img
}

/// The biggest font size at which `text` fits `max` pixels, up to `start`.
fn fit(text: &str, start: f32, max: f32) -> f32 {
    let f = fonts();
    let mut size = start;
    while size > 24.0 && f.width(text, size, true) > max {
        size -= 4.0;
    }
    size
}

/// The ticket as printed, `width` dots wide.
pub fn render_ticket(t: &TicketView, width: u32) -> GrayImage {
    let k = width as f32 / 576.0;
    let number_size = fit(&t.number, 230.0 * k, width as f32 - 40.0);
    let mut blocks = vec![
        Block::Text {
            text: t.site_name.clone(),
            size: 26.0 * k,
            bold: true,
        },
        Block::Rule,
        Block::Text {
            text: t.service_name.clone(),
            size: 40.0 * k,
            bold: true,
        },
        Block::Text {
            text: t.number.clone(),
            size: number_size,
            bold: true,
        },
    ];
    if let Some(p) = &t.priority {
        blocks.push(Block::Text {
            text: format!("Ưu tiên: {}", priority_label(p)),
            size: 30.0 * k,
            bold: true,
        });
    }
    if let Some(slot) = &t.slot_at {
        blocks.push(Block::Text {
            text: format!("Hẹn {}", clock_time(slot, &t.issued_at)),
            size: 36.0 * k,
            bold: true,
        });
    }
    blocks.push(Block::Text {
        text: local_time(&t.issued_at),
        size: 28.0 * k,
        bold: false,
    });
    if let Some(ahead) = t.ahead {
        blocks.push(Block::Text {
            text: format!("Số người đang chờ trước bạn: {ahead}"),
            size: 28.0 * k,
            bold: false,
        });
    }
    if let Some(r) = &t.reprint {
        if !r.places.is_empty() {
            blocks.push(Block::Text {
                text: format!("Đến: {}", r.places.join(" + ")),
                size: 30.0 * k,
                bold: true,
            });
        }
        blocks.push(Block::Text {
            text: format!("In lại: {}", local_time(&r.at)),
            size: 26.0 * k,
            bold: false,
        });
    }
    blocks.extend([
        Block::Gap(8),
        Block::Qr(t.url.clone()),
        Block::Text {
            text: "Quét mã để theo dõi lượt của bạn".into(),
            size: 22.0 * k,
            bold: false,
        },
        Block::Rule,
        Block::Text {
            text: t.footer.clone(),
            size: 28.0 * k,
            bold: true,
        },
    ]);
    draw(width, blocks)
}

/// The out-of-service slip (rule 107), printed when no number could be had
/// by the press's deadline: exactly the site name, "Tạm ngưng cấp số, vui
/// lòng thử lại" and the time (`at`, in its own offset); no number, no QR
/// code.
pub fn render_out_of_service(
    site_name: &str,
    at: &chrono::DateTime<chrono::FixedOffset>,
    width: u32,
) -> GrayImage {
    let k = width as f32 / 576.0;
    draw(
        width,
        vec![
            Block::Text {
                text: site_name.to_string(),
                size: 26.0 * k,
                bold: true,
            },
            Block::Rule,
            Block::Gap(8),
            Block::Text {
                text: OUT_OF_SERVICE_WORDS.into(),
                size: 44.0 * k,
                bold: true,
            },
            Block::Gap(8),
            Block::Text {
                text: at.format("%H:%M - %d/%m/%Y").to_string(),
                size: 30.0 * k,
                bold: false,
            },
        ],
    )
}

/// The out-of-service slip's sentence.
pub const OUT_OF_SERVICE_WORDS: &str = "Tạm ngưng cấp số, vui lòng thử lại";

/// The slip printed when the server refuses a press or a check-in with a
/// refusal of §11 (rule 84): site, service, a large headline and when to
/// come back; no number and no QR code.
pub fn render_refusal(v: &RefusalView, width: u32) -> GrayImage {
    let k = width as f32 / 576.0;
    let mut blocks = vec![
        Block::Text {
            text: v.site_name.clone(),
            size: 26.0 * k,
            bold: true,
        },
        Block::Rule,
    ];
    if let Some(service) = &v.service_name {
        blocks.push(Block::Text {
            text: service.clone(),
            size: 40.0 * k,
            bold: true,
        });
    }
    blocks.extend([
        Block::Gap(12),
        Block::Text {
            text: v.headline.clone(),
            size: 64.0 * k,
            bold: true,
        },
        Block::Gap(12),
    ]);
    if let Some(at) = &v.comeback {
        blocks.push(Block::Text {
            text: format!("Mời quay lại lúc {at}"),
            size: 34.0 * k,
            bold: true,
        });
    }
    draw(width, blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> TicketView {
        TicketView {
            site_name: "Bệnh viện Đa khoa tỉnh (ví dụ)".into(),
            service_name: "Khám Sản - Phụ khoa".into(),
            number: "E015".into(),
            priority: Some("pregnant".into()),
            issued_at: "2026-11-22T07:31:02+07:00".into(),
            ahead: Some(4),
            url: "http://192.168.10.5:8080/t/tk_5Jq2xYz8AbCdEfGhIjKlMn".into(),
            footer: "Vui lòng chờ gọi số".into(),
            reprint: None,
            slot_at: None,
        }
    }

    fn decode_qr(img: &GrayImage) -> String {
        let mut prepared = rqrr::PreparedImage::prepare(img.clone());
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "one QR code on the ticket");
        grids[0].decode().unwrap().1
    }

    /// The sample as printed again during a visit: not waiting (called at
    /// another room), two places to go.
    pub fn sample_reprint() -> TicketView {
        TicketView {
            ahead: None,
            reprint: Some(Reprint {
                at: "2026-11-22T09:12:40+07:00".into(),
                places: vec!["Phòng 38".into(), "Lấy mẫu xét nghiệm".into()],
            }),
            ..sample()
        }
    }

    /// Whether `img` shows `text` exactly as `draw` sets it alone (same
    /// size, weight and centring), somewhere down the page.
    fn shows(img: &GrayImage, text: &str, size: f32, bold: bool) -> bool {
        let alone = draw(
            img.width(),
            vec![Block::Text {
                text: text.into(),
                size,
                bold,
            }],
        );
        let rows = |img: &GrayImage| -> Vec<Vec<u8>> {
            (0..img.height())
                .map(|y| (0..img.width()).map(|x| img.get_pixel(x, y).0[0]).collect())
                .collect()
        };
        // The text's rows, from its first inked row to its last.
        let alone = rows(&alone);
        let inked = |r: &Vec<u8>| r.contains(&0);
        let (Some(top), Some(bottom)) =
            (alone.iter().position(inked), alone.iter().rposition(inked))
        else {
            return false;
        };
        let band = &alone[top..=bottom];
        rows(img).windows(band.len()).any(|w| w == band)
    }

    /// Compares with a golden PNG in tests/golden (LUOT_UPDATE_GOLDEN=1
    /// writes it); a few pixels may move with float rounding on other CPUs.
    fn assert_golden(img: &GrayImage, name: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("LUOT_UPDATE_GOLDEN").is_some() {
            img.save(&path).unwrap();
        }
        let golden = image::open(&path)
            .expect("golden image (LUOT_UPDATE_GOLDEN=1 makes it)")
            .to_luma8();
        assert_eq!(
            golden.dimensions(),
            img.dimensions(),
            "{name}: size changed"
        );
        let differ = golden
            .pixels()
            .zip(img.pixels())
            .filter(|(a, b)| a != b)
            .count();
        let limit = (img.width() * img.height()) as usize / 1000;
        if differ > limit {
            let out = std::env::temp_dir().join(name.replace(".png", ".actual.png"));
            img.save(&out).unwrap();
            panic!("{differ} pixels differ from {name}; see {}", out.display());
        }
    }

    /// The reprint as a golden image: "In lại" and its time, "Đến: " and
    /// the places, no line of people ahead.
    #[test]
    fn golden_reprint() {
        let img = render_ticket(&sample_reprint(), 576);
        assert_eq!(decode_qr(&img), sample().url, "the same QR code");
        assert_golden(&img, "reprint-80mm.png");
    }

    #[test]
    fn a_reprint_adds_its_lines_and_leaves_out_people_ahead_when_not_waiting() {
        let ahead = "Số người đang chờ trước bạn: 4";
        let normal = render_ticket(&sample(), 576);
        assert!(shows(&normal, ahead, 28.0, false));
        assert!(!shows(&normal, "In lại: 09:12 - 22/11/2026", 26.0, false));

        let reprint = render_ticket(&sample_reprint(), 576);
        assert!(shows(&reprint, "In lại: 09:12 - 22/11/2026", 26.0, false));
        assert!(shows(
            &reprint,
            "Đến: Phòng 38 + Lấy mẫu xét nghiệm",
            30.0,
            true
        ));
        assert!(
            shows(&reprint, "07:31 - 22/11/2026", 28.0, false),
            "time of issue kept"
        );
        assert!(
            !shows(&reprint, ahead, 28.0, false),
            "not waiting: no people ahead"
        );

        // Waiting, without a visit: people ahead, no "Đến: ".
        let mut waiting = sample_reprint();
        waiting.ahead = Some(4);
        waiting.reprint.as_mut().unwrap().places.clear();
        let img = render_ticket(&waiting, 576);
        assert!(shows(&img, ahead, 28.0, false));
        assert!(shows(&img, "In lại: 09:12 - 22/11/2026", 26.0, false));
        assert!(!shows(
            &img,
            "Đến: Phòng 38 + Lấy mẫu xét nghiệm",
            30.0,
            true
        ));
    }

    #[test]
    fn ticket_is_paper_wide_one_bit_and_its_qr_decodes() {
        for width in [576, 384] {
            let img = render_ticket(&sample(), width);
            assert_eq!(img.width(), width);
            assert_eq!(img.height() % 8, 0);
            assert!(img.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
            assert_eq!(decode_qr(&img), sample().url);
        }
    }

    #[test]
    fn the_number_is_large() {
        let img = render_ticket(&sample(), 576);
        // Find the tallest run of rows that contain black: the number is the
        // biggest text, at least 120 dots high.
        let mut best = 0;
        let mut run = 0;
        for y in 0..img.height() {
            let black = (0..img.width()).any(|x| img.get_pixel(x, y).0[0] == 0);
            run = if black { run + 1 } else { 0 };
            best = best.max(run);
        }
        assert!(best >= 120, "tallest block {best} dots");
    }

    #[test]
    fn long_numbers_still_fit() {
        let mut t = sample();
        t.number = "ABC12345".into();
        let img = render_ticket(&t, 384);
        assert_eq!(img.width(), 384);
        assert_eq!(decode_qr(&img), t.url);
    }

    #[test]
    fn vietnamese_labels_and_times() {
        assert_eq!(priority_label("age_75_plus"), "Người từ 75 tuổi trở lên");
        assert_eq!(
            priority_label("especially_severe_disability"),
            "Người khuyết tật đặc biệt nặng"
        );
        assert_eq!(priority_label("severe_disability"), "Người khuyết tật nặng");
        assert_eq!(
            local_time("2026-11-22T07:31:02+07:00"),
            "07:31 - 22/11/2026"
        );
    }

    /// A golden image of a sample ticket: layout changes show in review.
    /// Regenerate with LUOT_UPDATE_GOLDEN=1 and look at the PNG.
    #[test]
    fn golden_ticket() {
        let img = render_ticket(&sample(), 576);
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/ticket-80mm.png");
        if std::env::var_os("LUOT_UPDATE_GOLDEN").is_some() {
            img.save(&path).unwrap();
        }
        let golden = image::open(&path)
            .expect("golden image (LUOT_UPDATE_GOLDEN=1 makes it)")
            .to_luma8();
        assert_eq!(golden.dimensions(), img.dimensions(), "ticket size changed");
        let differ = golden
            .pixels()
            .zip(img.pixels())
            .filter(|(a, b)| a != b)
            .count();
        // Float rounding may move a pixel on another CPU (aarch64 under qemu);
        // a layout change moves thousands.
        let limit = (img.width() * img.height()) as usize / 1000;
        if differ > limit {
            let out = std::env::temp_dir().join("ticket-80mm.actual.png");
            img.save(&out).unwrap();
            panic!(
                "{differ} pixels differ from the golden ticket; see {}",
                out.display()
            );
        }
    }

    #[test]
    fn a_check_in_shows_its_booking_time_in_the_tickets_offset() {
        let mut t = sample();
        // The booking's time sent in UTC: printed in the site's time, as
        // the time of issue is.
        t.slot_at = Some("2026-11-22T01:30:00Z".into());
        let img = render_ticket(&t, 576);
        assert!(shows(&img, "Hẹn 08:30", 36.0, true));
        assert!(shows(&img, "07:31 - 22/11/2026", 28.0, false));
        assert_eq!(decode_qr(&img), t.url);
        assert!(!shows(
            &render_ticket(&sample(), 576),
            "Hẹn 08:30",
            36.0,
            true
        ));
        assert_eq!(clock_time("2026-11-22T08:30:00+07:00", "x"), "08:30");
    }

    #[test]
    fn a_refusal_slip_has_its_headline_and_no_number_or_qr() {
        let v = RefusalView {
            site_name: "Bệnh viện".into(),
            service_name: Some("Khám Nội".into()),
            headline: "HẾT SỐ".into(),
            comeback: Some("13:30".into()),
        };
        for width in [576, 384] {
            let img = render_refusal(&v, width);
            assert_eq!(img.width(), width);
            assert_eq!(img.height() % 8, 0);
            let k = width as f32 / 576.0;
            assert!(shows(&img, "HẾT SỐ", 64.0 * k, true));
            assert!(shows(&img, "Khám Nội", 40.0 * k, true));
            assert!(shows(&img, "Mời quay lại lúc 13:30", 34.0 * k, true));
            let mut prepared = rqrr::PreparedImage::prepare(img);
            assert!(prepared.detect_grids().is_empty(), "no QR code");
        }
        // No time given, no service known (a check-in): those lines are left out.
        let bare = RefusalView {
            service_name: None,
            comeback: None,
            headline: "KHÔNG TÌM THẤY LỊCH HẸN".into(),
            ..v
        };
        let img = render_refusal(&bare, 576);
        assert!(!shows(&img, "Khám Nội", 40.0, true));
        assert!(!shows(&img, "Mời quay lại lúc 13:30", 34.0, true));
    }

    #[test]
    fn the_out_of_service_slip_has_the_site_the_words_and_the_time_and_no_qr() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T09:05:40+07:00").unwrap();
        for width in [576, 384] {
            let img = render_out_of_service("Bệnh viện Đa khoa", &at, width);
            assert_eq!(img.width(), width);
            assert_eq!(img.height() % 8, 0);
            let k = width as f32 / 576.0;
            assert!(shows(&img, "Bệnh viện Đa khoa", 26.0 * k, true));
            if width == 576 {
                // On 58 mm paper the sentence wraps onto two lines.
                assert!(shows(
                    &img,
                    "Tạm ngưng cấp số, vui lòng thử lại",
                    44.0 * k,
                    true
                ));
            }
            assert!(shows(&img, "09:05 - 22/11/2026", 30.0 * k, false));
            let mut prepared = rqrr::PreparedImage::prepare(img);
            assert!(prepared.detect_grids().is_empty(), "no QR code");
        }
        // The time is the slip's own: another minute prints another slip.
        let later = chrono::DateTime::parse_from_rfc3339("2026-11-22T09:06:00+07:00").unwrap();
        assert_ne!(
            render_out_of_service("Bệnh viện Đa khoa", &at, 576),
            render_out_of_service("Bệnh viện Đa khoa", &later, 576)
        );
    }
}
