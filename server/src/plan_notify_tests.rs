//! The planner's phone alert decisions (rule 91): `near` once per wait when
//! the position comes to `near_position` (or is there at registration),
//! `called` at each call and never at a recall, nothing for tickets
//! without contacts, and contacts that open only under the day's key.

use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::config::SiteConfig;
use crate::engine::identity::Fresh;
use crate::engine::notify::Contacts;
use crate::engine::{Millis, NotifyCmd};
use crate::store::Loaded;

const SITE: &str = "[site]\nname = \"BV\"\npublic_url = \"https://bv.vn\"\n\n[[services]]\nid = \"kham\"\nname = \"Khám\"\nprefix = \"A\"\n\n[[counters]]\nid = \"q1\"\nname = \"Quầy 1\"\nservices = [\"kham\"]\n\n[notify]\nkind = \"http\"\nurl = \"https://sms.vn/send\"\nnear_position = 2\n";

fn planner() -> Planner {
    let cfg = SiteConfig::parse("site.toml", SITE).expect("site");
    let loaded = Loaded {
        snapshot: None,
        records: vec![],
        index: None,
        day_keys: vec![],
    };
    Planner::new(Arc::new(cfg), loaded).expect("planner")
}

fn at(mins: i64) -> Millis {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 11, 23, 8, 0, 0)
        .unwrap()
        .timestamp_millis()
        + mins * 60_000
}

fn run(p: &mut Planner, cmd: Command, mins: i64) -> (Reply, Vec<Notice>) {
    let mut plan = p.plan(vec![Input::Command(cmd)], at(mins));
    let reply = plan.replies.remove(0).expect("a reply");
    (reply, plan.notices)
}

fn issue(p: &mut Planner, n: usize) -> String {
    let id = format!("tk_{n}");
    let cmd = Command::Issue {
        scope: "user:u".into(),
        request_id: format!("r{n}"),
        service: "kham".into(),
        priority: None,
        ticket_id: id.clone(),
        identity: None,
        limited: false,
        external_ref: None,
        fresh: Fresh([1; 32]),
    };
    run(p, cmd, 0).0.expect("issued");
    id
}

fn register(p: &mut Planner, id: &str, phone: &str) -> (Reply, Vec<Notice>) {
    let cmd = NotifyCmd {
        ticket: id.into(),
        contacts: Contacts {
            phone: Some(phone.into()),
            push: vec![],
        },
        off: false,
        fresh: Fresh([9; 32]),
        nonce: [3; 12],
    };
    run(p, Command::Notify(Box::new(cmd)), 1)
}

fn act(p: &mut Planner, cmd: fn(String) -> Command) -> Vec<Notice> {
    let (reply, notices) = run(p, cmd("q1".into()), 2);
    reply.expect("done");
    notices
}

fn next(c: String) -> Command {
    Command::Next {
        counter: c,
        by: None,
    }
}

fn recall(c: String) -> Command {
    Command::Recall {
        counter: c,
        by: None,
    }
}

#[test]
fn near_goes_once_when_the_ticket_comes_near_and_called_at_the_call_only() {
    let mut p = planner();
    let ids: Vec<String> = (1..=6).map(|n| issue(&mut p, n)).collect();
    let (reply, notices) = register(&mut p, &ids[3], "+84912345678");
    reply.expect("registered");
    assert!(notices.is_empty(), "4th in line is not near");
    assert_eq!(
        p.state().notify_contacts(&ids[3]).and_then(|c| c.phone),
        Some("+84912345678".into())
    );

    assert!(act(&mut p, next).is_empty()); // 3rd
    let near = act(&mut p, next); // 2nd
    assert_eq!(
        near,
        vec![Notice {
            ticket: ids[3].clone(),
            kind: NoticeKind::Near,
            number: "A004".into(),
            position: Some(2),
            service_name: "Khám".into(),
            counter_name: String::new(),
        }]
    );
    assert!(act(&mut p, next).is_empty(), "1st: near went already");
    let called = act(&mut p, next);
    assert_eq!(called.len(), 1);
    assert_eq!(
        (
            called[0].kind,
            called[0].counter_name.as_str(),
            called[0].position
        ),
        (NoticeKind::Called, "Quầy 1", None)
    );
    assert!(act(&mut p, recall).is_empty(), "a recall is no new call");

    // A005 is 1st now: registering sends near at once.
    let (_, notices) = register(&mut p, &ids[4], "+84387654321");
    assert_eq!(notices.len(), 1);
    assert_eq!(
        (notices[0].kind, notices[0].position),
        (NoticeKind::Near, Some(1))
    );
    assert_eq!(act(&mut p, next)[0].kind, NoticeKind::Called);
    // A006 has no contacts: its call is never announced.
    assert!(act(&mut p, next).is_empty());
}

#[test]
fn three_calls_per_ticket_delete_keeps_the_count_and_the_next_day_takes_the_contacts() {
    let mut p = planner();
    let id = issue(&mut p, 1);
    let other = issue(&mut p, 2);
    for _ in 0..2 {
        register(&mut p, &id, "+84912345678").0.expect("taken");
    }
    let (reply, _) = run(&mut p, Command::NotifyErase { ticket: id.clone() }, 1);
    reply.expect("erased");
    assert_eq!(p.state().notify_status(&id), (false, 0));
    assert!(p.state().notify_contacts(&id).is_none());
    register(&mut p, &id, "+84912345678").0.expect("third");
    let refused = register(&mut p, &id, "+84912345678").0;
    assert!(matches!(
        refused,
        Err(HubError::Rejected(
            crate::engine::Rejection::TooManyAttempts
        ))
    ));
    // Unknown, called (not waiting) before off.
    let unknown = register(&mut p, "tk_nope", "+84912345678").0;
    assert!(matches!(
        unknown,
        Err(HubError::Rejected(crate::engine::Rejection::UnknownTicket))
    ));
    act(&mut p, next);
    let cmd = NotifyCmd {
        ticket: id.clone(),
        contacts: Contacts::default(),
        off: true,
        fresh: Fresh([9; 32]),
        nonce: [3; 12],
    };
    let called = run(&mut p, Command::Notify(Box::new(cmd.clone())), 2).0;
    assert!(matches!(
        called,
        Err(HubError::Rejected(crate::engine::Rejection::NotWaiting))
    ));
    let off = NotifyCmd {
        ticket: other.clone(),
        ..cmd
    };
    let off = run(&mut p, Command::Notify(Box::new(off)), 2).0;
    assert!(matches!(
        off,
        Err(HubError::Rejected(crate::engine::Rejection::NotifyOff))
    ));

    register(&mut p, &other, "+84912345678").0.expect("waiting");
    let vapid = Fresh([5; 32]);
    run(&mut p, Command::VapidKey { key: vapid }, 2)
        .0
        .expect("kept");
    // The sealed record in the log holds no phone.
    let plan = p.plan(
        vec![Input::Command(Command::Notify(Box::new(NotifyCmd {
            ticket: other.clone(),
            contacts: Contacts {
                phone: Some("+84987654321".into()),
                push: vec![],
            },
            off: false,
            fresh: Fresh([9; 32]),
            nonce: [4; 12],
        })))],
        at(3),
    );
    let text = format!("{:?}", plan.batch.records);
    assert!(!text.contains("987654321") && !text.contains("912345678"));
    assert!(
        plan.batch.records.iter().all(|r| r.seq.is_none()),
        "no event"
    );

    // The next day: the ticket is gone from the day, and so are its contacts.
    run(&mut p, Command::Tick, 24 * 60).0.expect("the next day");
    assert_eq!(p.state().notify_status(&other), (false, 0));
    assert!(p.state().notified().next().is_none());
    assert_eq!(p.state().vapid(), Some([5; 32]), "the VAPID key stays");
}
