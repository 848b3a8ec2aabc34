//! The reports as Excel workbooks (.xlsx) for managers: a sheet per table,
//! Vietnamese sheet names and column headers in the first row, services and
//! counters by name with their id beside it, times in seconds as in the
//! JSON, a null as an empty cell.

use luot_protocol::{DailyReport, ReportRow, Stats, VisitsReport};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use crate::config::SiteConfig;

/// The media type of an .xlsx file.
pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

enum Cell {
    Text(String),
    Number(f64),
    /// A fraction shown as a percentage.
    Share(f64),
    Empty,
}

impl Cell {
    fn opt(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Number)
    }
}

/// One sheet: its name, its column headers, its rows.
struct Sheet {
    name: &'static str,
    headers: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

const WAIT: [&str; 3] = ["Chờ trung bình (giây)", "Chờ p50 (giây)", "Chờ p90 (giây)"];
const SERVICE: [&str; 3] = [
    "Phục vụ trung bình (giây)",
    "Phục vụ p50 (giây)",
    "Phục vụ p90 (giây)",
];
const TOTAL: [&str; 3] = [
    "Cả lượt trung bình (giây)",
    "Cả lượt p50 (giây)",
    "Cả lượt p90 (giây)",
];

fn three(s: &Stats) -> [Cell; 3] {
    [Cell::opt(s.mean), Cell::opt(s.p50), Cell::opt(s.p90)]
}

fn service_name(cfg: &SiteConfig, id: &str) -> String {
    cfg.service(id).map_or(id, |s| s.name.as_str()).to_string()
}

fn counter_name(cfg: &SiteConfig, id: &str) -> String {
    cfg.counter(id).map_or(id, |c| c.name.as_str()).to_string()
}

/// The daily report (rule 34): sheets "Dịch vụ", "Quầy", "Nhân viên".
pub fn daily(cfg: &SiteConfig, r: &DailyReport) -> Result<Vec<u8>, XlsxError> {
    let figures = |row: &ReportRow| {
        let mut cells = vec![
            Cell::Number(f64::from(row.served)),
            Cell::Number(f64::from(row.no_shows)),
        ];
        cells.extend(three(&row.wait_s));
        cells.extend(three(&row.service_s));
        cells.push(Cell::Number(f64::from(row.ratings.count)));
        cells.push(Cell::opt(row.ratings.mean));
        cells
    };
    let mut tail = vec!["Đã phục vụ", "Vắng mặt"];
    tail.extend(WAIT);
    tail.extend(SERVICE);
    tail.extend(["Lượt đánh giá", "Đánh giá trung bình"]);
    let headers = |first: &[&'static str]| [first, &tail].concat();
    let services = Sheet {
        name: "Dịch vụ",
        headers: headers(&["Dịch vụ", "Mã dịch vụ", "Lấy số"]),
        rows: r
            .services
            .iter()
            .map(|row| {
                let mut cells = vec![
                    Cell::Text(service_name(cfg, &row.id)),
                    Cell::Text(row.id.clone()),
                    Cell::opt(row.issued.map(f64::from)),
                ];
                cells.extend(figures(row));
                cells
            })
            .collect(),
    };
    let counters = Sheet {
        name: "Quầy",
        headers: headers(&["Quầy", "Mã quầy"]),
        rows: r
            .counters
            .iter()
            .map(|row| {
                let mut cells = vec![
                    Cell::Text(counter_name(cfg, &row.id)),
                    Cell::Text(row.id.clone()),
                ];
                cells.extend(figures(row));
                cells
            })
            .collect(),
    };
    let staff = Sheet {
        name: "Nhân viên",
        headers: headers(&["Nhân viên"]),
        rows: r
            .staff
            .iter()
            .map(|row| {
                let mut cells = vec![Cell::Text(row.id.clone())];
                cells.extend(figures(row));
                cells
            })
            .collect(),
    };
    workbook(&[services, counters, staff])
}

/// The visits report (rule 58): sheets "Lượt khám" and "Các bước".
pub fn visits(cfg: &SiteConfig, r: &VisitsReport) -> Result<Vec<u8>, XlsxError> {
    // The last limit also counts visits with more tests: "3+".
    let limits = r.visits.iter().filter(|v| v.tests.is_some()).count() as u32;
    let mut headers = vec![
        "Số xét nghiệm",
        "Giới hạn (phút)",
        "Số lượt",
        "Trong giới hạn",
        "Tỷ lệ đạt",
    ];
    headers.extend(TOTAL);
    let visits = Sheet {
        name: "Lượt khám",
        headers,
        rows: r
            .visits
            .iter()
            .map(|v| {
                let tests = match v.tests {
                    None => Cell::Text("Tất cả".into()),
                    Some(n) if n + 1 == limits => Cell::Text(format!("{n}+")),
                    Some(n) => Cell::Number(f64::from(n)),
                };
                let mut cells = vec![
                    tests,
                    Cell::opt(v.limit_min.map(f64::from)),
                    Cell::Number(f64::from(v.count)),
                    Cell::Number(f64::from(v.within_limit)),
                    v.share.map_or(Cell::Empty, Cell::Share),
                ];
                cells.extend(three(&v.total_s));
                cells
            })
            .collect(),
    };
    let mut headers = vec!["Dịch vụ", "Mã dịch vụ", "Quay lại", "Số bước"];
    headers.extend(WAIT);
    headers.extend(SERVICE);
    let steps = Sheet {
        name: "Các bước",
        headers,
        rows: r
            .steps
            .iter()
            .map(|s| {
                let mut cells = vec![
                    Cell::Text(service_name(cfg, &s.service)),
                    Cell::Text(s.service.clone()),
                    Cell::Text(if s.returning { "Có" } else { "Không" }.into()),
                    Cell::Number(f64::from(s.count)),
                ];
                cells.extend(three(&s.wait_s));
                cells.extend(three(&s.service_s));
                cells
            })
            .collect(),
    };
    workbook(&[visits, steps])
}

/// A workbook of `sheets`, headers in bold on a frozen first row.
fn workbook(sheets: &[Sheet]) -> Result<Vec<u8>, XlsxError> {
    let bold = Format::new().set_bold().set_text_wrap();
    let percent = Format::new().set_num_format("0.0%");
    let mut wb = Workbook::new();
    for sheet in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(sheet.name)?;
        for (c, h) in sheet.headers.iter().enumerate() {
            let c = c as u16;
            ws.write_string_with_format(0, c, *h, &bold)?;
            let width = h.chars().count().clamp(10, 18) as f64 + 2.0;
            ws.set_column_width(c, width)?;
        }
        ws.set_freeze_panes(1, 0)?;
        for (r, row) in sheet.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Text(s) => ws.write_string(r, c, s)?,
                    Cell::Number(n) => ws.write_number(r, c, *n)?,
                    Cell::Share(n) => ws.write_number_with_format(r, c, *n, &percent)?,
                    Cell::Empty => continue,
                };
            }
        }
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};

    use super::*;

    /// Every sheet of a workbook: its name and its rows of cells.
    fn read(bytes: Vec<u8>) -> Vec<(String, Vec<Vec<Data>>)> {
        let mut wb: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        wb.worksheets()
            .into_iter()
            .map(|(name, range)| (name, range.rows().map(|r| r.to_vec()).collect()))
            .collect()
    }

    fn text(s: &str) -> Data {
        Data::String(s.into())
    }

    #[test]
    fn visits_sheets_have_vietnamese_headers_and_the_figures() {
        let mut cfg = crate::config::demo_site().0;
        cfg.reports.visit_limits_min = vec![120, 180];
        let mut r = crate::report::visits(&cfg, "2026-11-22", &[]);
        r.visits[0].count = 3;
        r.visits[0].within_limit = 2;
        r.visits[0].share = Some(0.667);
        r.visits[0].total_s.mean = Some(4000.5);
        r.steps.push(luot_protocol::StepRow {
            service: "xet-nghiem".into(),
            returning: true,
            count: 2,
            wait_s: Stats {
                mean: Some(30.0),
                p50: Some(20.0),
                p90: Some(40.0),
            },
            service_s: Stats::default(),
        });
        let sheets = read(visits(&cfg, &r).unwrap());
        let names: Vec<&str> = sheets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Lượt khám", "Các bước"]);
        let rows = &sheets[0].1;
        assert_eq!(rows[0][0], text("Số xét nghiệm"));
        assert_eq!(rows[0][4], text("Tỷ lệ đạt"));
        assert_eq!(rows.len(), 4, "headers, 0 tests, 1+ tests, all");
        assert_eq!(
            rows[1][..6],
            [
                Data::Float(0.0),
                Data::Float(120.0),
                Data::Float(3.0),
                Data::Float(2.0),
                Data::Float(0.667),
                Data::Float(4000.5)
            ]
        );
        assert_eq!(rows[2][0], text("1+"), "the last limit counts more tests");
        assert_eq!(rows[2][4], Data::Empty, "no share without visits");
        assert_eq!(rows[3][..2], [text("Tất cả"), Data::Empty]);
        let steps = &sheets[1].1;
        assert_eq!(
            steps[0][..4],
            [
                text("Dịch vụ"),
                text("Mã dịch vụ"),
                text("Quay lại"),
                text("Số bước")
            ]
        );
        assert_eq!(steps[0][4], text("Chờ trung bình (giây)"));
        assert_eq!(
            steps[1][..7],
            [
                text("Xét nghiệm"),
                text("xet-nghiem"),
                text("Có"),
                Data::Float(2.0),
                Data::Float(30.0),
                Data::Float(20.0),
                Data::Float(40.0)
            ]
        );
    }

    #[test]
    fn daily_sheets_name_services_and_counters() {
        let cfg = crate::config::demo_site().0;
        let r = crate::report::daily(&cfg, "2026-11-22", &[]);
        let sheets = read(daily(&cfg, &r).unwrap());
        let names: Vec<&str> = sheets.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Dịch vụ", "Quầy", "Nhân viên"]);
        let services = &sheets[0].1;
        assert_eq!(
            services[0][..3],
            [text("Dịch vụ"), text("Mã dịch vụ"), text("Lấy số")]
        );
        assert_eq!(services[0][5], text("Chờ trung bình (giây)"));
        assert_eq!(
            services[1][..5],
            [
                text("Khám Nội"),
                text("kham-noi"),
                Data::Float(0.0),
                Data::Float(0.0),
                Data::Float(0.0)
            ]
        );
        assert_eq!(services.len(), 1 + cfg.services.len());
        let counters = &sheets[1].1;
        assert_eq!(counters[1][..2], [text("Quầy 1"), text("quay-1")]);
        assert_eq!(counters[0][2], text("Đã phục vụ"));
        // The staff sheet has its headers even with nobody in it.
        assert_eq!(sheets[2].1.len(), 1);
        assert_eq!(sheets[2].1[0][0], text("Nhân viên"));
    }
}
