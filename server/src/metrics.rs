//! Prometheus metrics (`GET /metrics`): tickets issued, waiting per service,
//! websocket clients, store flush latency, store errors, printer states.
//! Owns the registry and nothing else.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use luot_protocol::PrinterStatus;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub tickets_issued: Counter,
    pub waiting: Family<Labels, Gauge>,
    pub ws_clients: Gauge,
    pub flush_seconds: Histogram,
    pub store_errors: Counter,
    pub printer: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("luot");
        let tickets_issued = Counter::default();
        registry.register(
            "tickets_issued",
            "Tickets issued (acknowledged and durable)",
            tickets_issued.clone(),
        );
        let waiting = Family::<Labels, Gauge>::default();
        registry.register("waiting", "Tickets waiting per service", waiting.clone());
        let ws_clients = Gauge::default();
        registry.register(
            "websocket_clients",
            "Connected websocket clients",
            ws_clients.clone(),
        );
        let flush_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        registry.register(
            "store_flush_seconds",
            "Time to write and fsync one group commit",
            flush_seconds.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Group commits that failed (answered 503)",
            store_errors.clone(),
        );
        let printer = Family::<Labels, Gauge>::default();
        registry.register(
            "printer_status",
            "1 for each kiosk's current printer status",
            printer.clone(),
        );
        Metrics {
            registry,
            tickets_issued,
            waiting,
            ws_clients,
            flush_seconds,
            store_errors,
            printer,
        }
    }

    pub fn set_waiting(&self, service: &str, n: u32) {
        self.waiting
            .get_or_create(&vec![("service".into(), service.into())])
            .set(n as i64);
    }

    pub fn set_printer(&self, device: &str, status: Option<PrinterStatus>) {
        for s in [
            PrinterStatus::Ok,
            PrinterStatus::PaperLow,
            PrinterStatus::PaperOut,
            PrinterStatus::CoverOpen,
            PrinterStatus::Offline,
        ] {
            let name = serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            self.printer
                .get_or_create(&vec![
                    ("device".into(), device.into()),
                    ("status".into(), name),
                ])
                .set(i64::from(status == Some(s)));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
