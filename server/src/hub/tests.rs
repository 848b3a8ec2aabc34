//! The hub's loop against the in-memory store: group commit, answers only
//! once durable, failed and unknown commits, recovery, subscriptions.

use std::sync::Arc;

use luot_protocol::ServerMessage;

use super::*;
use crate::config::demo_site;
use crate::engine::Event;
use crate::store::memory::{Fault, MemStore};

fn start() -> (Hub, Arc<MemStore>) {
    let store = Arc::new(MemStore::new());
    let hub = Hub::start(
        Arc::new(demo_site().0),
        store.clone(),
        Arc::new(Metrics::new()),
        Knobs::default(),
    )
    .unwrap();
    (hub, store)
}

fn issue(n: usize) -> Command {
    Command::Issue {
        scope: "device:kiosk-sanh".into(),
        request_id: format!("r{n}"),
        service: "kham-noi".into(),
        priority: None,
        ticket_id: format!("tk_{n}"),
        identity: None,
        limited: false,
        external_ref: None,
        fresh: crate::engine::identity::Fresh([0; 32]),
    }
}

async fn number(hub: &Hub, n: usize) -> Result<String, HubError> {
    match hub.command(issue(n)).await? {
        Outcome::Ticket(t) | Outcome::Replayed(t) => Ok(t.number),
        other => panic!("{other:?}"),
    }
}

/// The ids of the tickets the store holds, in order.
fn stored(store: &MemStore) -> Vec<String> {
    store
        .records()
        .into_iter()
        .filter_map(|r| match r.event {
            Event::TicketIssued { ticket, .. } => Some(ticket.id),
            _ => None,
        })
        .collect()
}

/// The seqs of the event frames a subscriber has received so far (a query
/// first: it waits until the batch being committed is broadcast).
async fn received(hub: &Hub, rx: &mut broadcast::Receiver<Frames>) -> Vec<u64> {
    hub.seq().await;
    let mut out = vec![];
    while let Ok(frames) = rx.try_recv() {
        out.extend(frames.iter().filter_map(|f| f.seq));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_wait_for_the_store_and_a_burst_shares_one_write() {
    let (hub, store) = start();
    hub.command(Command::Tick).await.unwrap(); // the day starts
    let appends0 = store.appends();
    // Hold the hub between batches: it takes a first request (a tick) and
    // waits for the lock, while 300 kiosks ask at once.
    let hold = hub.shared.core.write().await;
    let queued = |hub: &Hub| hub.tx.max_capacity() - hub.tx.capacity();
    let (reply, tick) = oneshot::channel();
    let input = Input::Command(Command::Tick);
    hub.tx
        .send(Request::Input(Box::new(input), Some(reply)))
        .await
        .unwrap();
    while queued(&hub) > 0 {
        tokio::task::yield_now().await;
    }
    let mut tasks = vec![];
    for n in 0..300 {
        let (hub, store) = (hub.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            let num = number(&hub, n).await.unwrap();
            // Acknowledged means stored.
            assert!(
                stored(&store).contains(&format!("tk_{n}")),
                "answered before stored"
            );
            num
        }));
    }
    while queued(&hub) < 300 {
        tokio::task::yield_now().await;
    }
    drop(hold);
    tick.await.unwrap().unwrap();
    let mut numbers = vec![];
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort();
    let want: Vec<String> = (1..=300).map(|n| format!("A{n:03}")).collect();
    assert_eq!(numbers, want, "every number once");
    assert_eq!(
        store.appends() - appends0,
        1,
        "300 requests waiting together are one write"
    );
    let seqs: Vec<u64> = store.records().iter().filter_map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=301).collect::<Vec<_>>(), "seq without a gap");
}

#[tokio::test]
async fn a_failed_commit_is_refused_keeps_nothing_and_the_next_goes_on() {
    let (hub, store) = start();
    hub.command(Command::Tick).await.unwrap();
    let mut rx = hub.subscribe(None).await.rx;
    store.fail_next(&[Fault::Refuse]);
    let err = number(&hub, 1).await.unwrap_err();
    assert!(matches!(err, HubError::Unavailable(_)), "{err}");
    assert!(stored(&store).is_empty());
    assert!(hub.ticket("tk_1").await.unwrap().is_none(), "never seen");
    // Its number was never acknowledged: the next ticket takes it, and the
    // stream goes on without a gap.
    assert_eq!(number(&hub, 2).await.unwrap(), "A001");
    assert_eq!(received(&hub, &mut rx).await, [2]);
    assert_eq!(hub.seq().await, 2);
}

#[tokio::test]
async fn an_unknown_outcome_that_landed_is_answered_as_done() {
    let (hub, store) = start();
    hub.command(Command::Tick).await.unwrap();
    let mut rx = hub.subscribe(None).await.rx;
    store.fail_next(&[Fault::Unknown { landed: true }]);
    assert_eq!(number(&hub, 1).await.unwrap(), "A001");
    assert_eq!(number(&hub, 2).await.unwrap(), "A002");
    assert_eq!(stored(&store), ["tk_1", "tk_2"]);
    assert_eq!(received(&hub, &mut rx).await, [2, 3]);
}

#[tokio::test]
async fn an_unknown_outcome_that_did_not_land_is_refused_and_the_state_rebuilt() {
    let (hub, store) = start();
    hub.command(Command::Tick).await.unwrap();
    store.fail_next(&[Fault::Unknown { landed: false }]);
    assert!(number(&hub, 1).await.is_err());
    // The replay of the refused request makes the ticket now, once.
    assert_eq!(number(&hub, 1).await.unwrap(), "A001");
    assert_eq!(number(&hub, 1).await.unwrap(), "A001");
    assert_eq!(stored(&store), ["tk_1"]);
}

#[tokio::test]
async fn a_store_that_cannot_recover_yet_refuses_until_it_can() {
    let (hub, store) = start();
    hub.command(Command::Tick).await.unwrap();
    store.fail_next(&[Fault::Refuse]);
    store.fail_recover(2);
    assert!(number(&hub, 1).await.is_err(), "the failed commit");
    assert!(number(&hub, 2).await.is_err(), "still broken");
    assert_eq!(number(&hub, 3).await.unwrap(), "A001", "recovered");
    assert_eq!(stored(&store), ["tk_3"]);
}

#[tokio::test]
async fn a_subscriber_gets_what_it_missed_or_a_snapshot() {
    let (hub, _store) = start();
    hub.command(Command::Tick).await.unwrap();
    for n in 0..5 {
        number(&hub, n).await.unwrap();
    }
    assert_eq!(hub.seq().await, 6);
    let c = hub.subscribe(Some(3)).await;
    let seqs: Vec<_> = c.frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [Some(4), Some(5), Some(6)]);
    assert_eq!(c.last_seq, 6);
    assert!(hub.subscribe(Some(6)).await.frames.is_empty());
    for since in [None, Some(99)] {
        let c = hub.subscribe(since).await;
        assert_eq!(c.frames.len(), 1);
        assert!(
            c.frames[0]
                .text
                .as_str()
                .starts_with(r#"{"type":"snapshot","seq":6"#)
        );
    }
    // Device frames go to admins only and carry no seq.
    let mut rx = hub.subscribe(None).await.rx;
    hub.device("kiosk-sanh", DeviceUpdate::Connected);
    hub.command(Command::Tick).await.unwrap();
    let f = rx.recv().await.unwrap();
    assert_eq!(f[0].audience, crate::frame::Audience::Admins);
    assert_eq!(f[0].seq, None);
    let ServerMessage::Device { device } = serde_json::from_str(f[0].text.as_str()).unwrap() else {
        panic!()
    };
    assert!(device.connected);
}

#[tokio::test]
async fn webhook_bodies_are_stored_with_their_event_for_the_kinds_taken_only() {
    let store = Arc::new(MemStore::new());
    let mut cfg = demo_site().0;
    cfg.site.id = "bv-thu".into();
    cfg.webhooks = vec![crate::config::Webhook {
        id: "his".into(),
        url: "http://127.0.0.1:9/h".into(),
        key: vec![7; 24],
        events: Some(vec![luot_protocol::EventKind::TicketIssued]),
    }];
    let hub = Hub::start(
        Arc::new(cfg),
        store.clone(),
        Arc::new(Metrics::new()),
        Knobs::default(),
    )
    .unwrap();
    let mut head = hub.head();
    hub.command(Command::Tick).await.unwrap(); // day_started: not taken
    assert!(store.hook_bodies(0, 10).unwrap().is_empty());
    let mut rx = hub.subscribe(None).await.rx;
    assert_eq!(number(&hub, 1).await.unwrap(), "A001");
    let bodies = store.hook_bodies(0, 10).unwrap();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].kind, "ticket_issued");
    let b: serde_json::Value = serde_json::from_slice(&bodies[0].body).unwrap();
    assert_eq!(b["site"], "bv-thu");
    assert_eq!(b["seq"], 2);
    assert_eq!(b["type"], "ticket_issued");
    assert!(b["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    // The event as admins get it on their websocket.
    hub.seq().await;
    let frames = rx.try_recv().unwrap();
    let frame: serde_json::Value = serde_json::from_str(frames[0].text.as_str()).unwrap();
    assert_eq!(frame["seq"], 2);
    assert_eq!(b["event"], frame["event"]);
    assert!(head.has_changed().unwrap());
    assert_eq!(*head.borrow_and_update(), 2);
    // A commit that fails stores no body.
    store.fail_next(&[Fault::Refuse]);
    assert!(number(&hub, 2).await.is_err());
    assert_eq!(store.hook_bodies(0, 10).unwrap().len(), 1);
}
