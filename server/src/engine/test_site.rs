//! Small sites for the engine's unit tests: services and counters made
//! from a few names, on a minimal parsed configuration.

use crate::config::{Counter, Priority, Service, SiteConfig};

/// A counter `id` named `name` calling `services` in that order.
pub fn counter(id: &str, name: &str, services: &[&str]) -> Counter {
    Counter {
        id: id.into(),
        name: name.into(),
        services: services.iter().map(|x| x.to_string()).collect(),
        policy: None,
        returning_ratio: None,
    }
}

/// A parsed minimal site with these services (id, prefix) and counters,
/// priority classes `emergency` and `pregnant` served 2 to 1.
pub fn config(services: &[(&str, &str)], counters: &[Counter]) -> SiteConfig {
    let mut cfg = SiteConfig::parse(
        "t.toml",
        "[site]\nname = \"T\"\n[[services]]\nid = \"a\"\nname = \"A\"\nprefix = \"A\"\n",
    )
    .expect("minimal config");
    if !services.is_empty() {
        let plain = cfg.services[0].clone();
        cfg.services = services
            .iter()
            .map(|(id, p)| Service {
                id: id.to_string(),
                name: format!("Dịch vụ {id}"),
                prefix: p.to_string(),
                digits: 3,
                ..plain.clone()
            })
            .collect();
    }
    cfg.counters = counters.to_vec();
    cfg.priority = Priority {
        ratio: 2,
        classes: vec!["emergency".into(), "pregnant".into()],
    };
    cfg
}
