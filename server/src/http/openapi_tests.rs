//! Rule 86 against the router itself (every layer, extractor and handler,
//! a hub on the in-memory store): every method and path the router serves
//! (its own table, `http::paths`, each method found by asking the router)
//! is an operation of the OpenAPI document, and every operation of the
//! document is answered by a handler, not by the router's 404 `not_found`
//! or 405 fallback. Operations that need a token list 401 and 403, those
//! that take a body 400, 413 and 415; the Ticket schema names every field a
//! real answer carries.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body as HttpBody;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use tokio::sync::watch;
use utoipa::OpenApi;

use super::openapi::{ApiDoc, document};
use crate::app::{App, AppState};
use crate::auth::sha256_hex;
use crate::clock::Knobs;
use crate::config::demo_site;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Session;
use crate::store::memory::MemStore;

const ADMIN: &str = "admin-login-token";

/// The methods a route may take (HEAD and OPTIONS follow GET and nothing).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

async fn app() -> AppState {
    let config = Arc::new(demo_site().0);
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(MemStore::new());
    let hub = Hub::start(config.clone(), store, metrics.clone(), Knobs::default()).unwrap();
    hub.command(crate::engine::Command::Tick).await.unwrap();
    let s = Session {
        username: "admin".into(),
        expires_at: chrono::Utc::now().timestamp_millis() + 3_600_000,
    };
    hub.put_session(sha256_hex(ADMIN), s).await.unwrap();
    let rt = tokio::runtime::Handle::current();
    let fanout = Fanout::start(&rt, &hub, 1);
    let (stop, shutdown) = watch::channel(false);
    std::mem::forget(stop);
    Arc::new(App::new(hub, config, metrics, rt, fanout, shutdown))
}

/// One request through the whole router, from a peer on the LAN:
/// (status, the error's code or "", the body).
async fn ask(
    app: &AppState,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(HttpBody::from(b.to_string())),
        None => req.body(HttpBody::empty()),
    }
    .unwrap();
    let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = tower::ServiceExt::oneshot(super::router(app.clone()), req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("").to_string();
    (status, code, v)
}

/// A path with each `{param}` replaced by a value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the document's `path` is one the router's `template` serves.
fn serves(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// Whether the router's fallback, not a handler, answered.
fn fallback(status: u16, code: &str) -> bool {
    (status == 404 && code == "not_found") || (status == 405 && code == "method_not_allowed")
}

fn doc() -> Value {
    serde_json::from_str(document()).unwrap()
}

/// Every (METHOD, path) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS
                .iter()
                .any(|m| m.as_str().eq_ignore_ascii_case(method))
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_route_the_router_serves_is_documented_and_every_documented_one_is_served() {
    let app = app().await;
    let doc = doc();
    let documented = operations(&doc);

    // What the router serves, from its own table: each method it does not
    // answer with 405.
    let mut served = BTreeSet::new();
    for template in super::paths() {
        for m in &METHODS {
            let (status, code, _) = ask(&app, m, &concrete(&template), None, None).await;
            if !(status == 405 && code == "method_not_allowed") {
                served.insert((m.as_str().to_string(), template.clone()));
            }
        }
    }
    assert!(
        served.contains(&("GET".into(), "/api/v1/tickets/{id}".into()))
            && served.contains(&("POST".into(), "/api/v1/counters/{id}/{action}".into())),
        "the router's table is read: {served:?}"
    );

    let missing: Vec<_> = served
        .iter()
        .filter(|(m, t)| !documented.iter().any(|(dm, p)| dm == m && serves(t, p)))
        .collect();
    assert!(
        missing.is_empty(),
        "served but not in the OpenAPI document (annotate the handler with #[utoipa::path] and list it in http/openapi.rs): {missing:?}"
    );

    for (m, path) in &documented {
        assert!(
            served.iter().any(|(sm, t)| sm == m && serves(t, path)),
            "{m} {path} is in the document but no route serves it"
        );
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let (status, code, _) = ask(&app, &method, &concrete(path), None, None).await;
        assert!(
            !fallback(status, code.as_str()),
            "{m} {path} is in the document but the router answers {status} {code}"
        );
    }
    // Every counter action of the contract is an operation of its own.
    for action in crate::app::COUNTER_ACTIONS {
        let path = format!("/api/v1/counters/{{id}}/{action}");
        assert!(
            documented.contains(&("POST".into(), path.clone())),
            "{path} is not documented"
        );
    }
}

#[tokio::test]
async fn the_document_is_3_1_with_its_schemas_bearer_scheme_and_each_operations_statuses() {
    let doc = doc();
    assert_eq!(document(), document(), "the same bytes each time");
    assert_eq!(
        document(),
        ApiDoc::openapi().to_json().unwrap(),
        "made afresh, the same bytes"
    );
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    for schema in ["Ticket", "Appointment", "Error"] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} is missing"
        );
    }
    assert_eq!(
        doc["components"]["schemas"]["Error"]["required"],
        json!(["error"])
    );
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses: BTreeSet<&str> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let needs_token = op["security"].as_array().is_some_and(|alternatives| {
                !alternatives.is_empty()
                    && alternatives
                        .iter()
                        .all(|a| a.as_object().is_some_and(|a| a.contains_key("bearer")))
            });
            if needs_token {
                assert!(
                    statuses.contains("401") && statuses.contains("403"),
                    "{method} {path} needs a token but lists {statuses:?}"
                );
            }
            if op.get("requestBody").is_some() {
                for s in ["400", "413", "415"] {
                    assert!(
                        statuses.contains(s),
                        "{method} {path} takes a body but does not list {s}"
                    );
                }
            }
            for (status, r) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || (status.starts_with('5') && path != "/healthz") {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{method} {path} {status} is the contract's error"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_ticket_schema_names_every_field_a_real_answer_carries() {
    let app = app().await;
    let (status, _, t) = ask(
        &app,
        &Method::POST,
        "/api/v1/tickets",
        Some(ADMIN),
        Some(json!({"service": "kham-noi", "request_id": "r1", "external_ref": "HIS-1"})),
    )
    .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["external_ref"], "HIS-1");
    let doc = doc();
    let fields = doc["components"]["schemas"]["Ticket"]["properties"]
        .as_object()
        .unwrap();
    for key in t.as_object().unwrap().keys() {
        assert!(fields.contains_key(key), "Ticket's schema lacks {key}");
    }
    for key in ["id", "number", "status", "external_ref", "visit"] {
        assert!(fields.contains_key(key), "Ticket's schema lacks {key}");
    }
}
