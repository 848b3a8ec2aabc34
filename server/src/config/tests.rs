//! Tests of `site.toml` parsing: every error names its file, line and field.
//! Sessions, caps, `[appointments]`, `[identity]` and integrations (§11) are
//! tested in `capacity`.

mod capacity;

use super::*;

const GOOD: &str = r#"
[site]
name = "Bệnh viện Demo"
timezone = "Asia/Ho_Chi_Minh"
day_starts_at = "05:00"
public_url = "http://192.168.1.10:8080/"

[server]
listen = "0.0.0.0:8080"
data_dir = "/var/lib/luot"

[[services]]
id = "kham-noi"
name = "Khám Nội"
prefix = "A"
digits = 3

[[services]]
id = "kham-ngoai"
name = "Khám Ngoại"
prefix = "B"

[[counters]]
id = "quay-1"
name = "Quầy 1"
services = ["kham-noi", "kham-ngoai"]
"#;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Arbitrary text never panics the parser, and an error always names a file and field.
    #[test]
    fn arbitrary_text_is_an_error_not_a_panic(text in "\\PC{0,400}") {
        if let Err(e) = SiteConfig::parse("x.toml", &text) {
            proptest::prop_assert!(e.to_string().starts_with("x.toml:"));
            proptest::prop_assert!(!e.field.is_empty());
        }
    }

    /// Damaging a good file anywhere gives a clear error or a valid config.
    #[test]
    fn damaged_good_file(at in 0usize..600, junk in "[\\[\\]=\"a-z0-9 \n]{1,8}") {
        let mut text = GOOD.to_string();
        let at = at.min(text.len());
        if text.is_char_boundary(at) {
            text.insert_str(at, &junk);
            let _ = SiteConfig::parse("x.toml", &text);
        }
    }
}

#[test]
fn good_config_loads_with_defaults() {
    let c = SiteConfig::parse("site.toml", GOOD).unwrap();
    assert_eq!(c.site.public_url, "http://192.168.1.10:8080");
    assert_eq!(c.services[1].digits, 3);
    assert_eq!(c.priority.ratio, 3);
    assert_eq!(c.priority.classes.len(), 7);
    assert_eq!(c.priority.classes, DEFAULT_PRIORITY_CLASSES);
    assert!(!c.server.public_board);
}

fn err_of(text: &str) -> ConfigError {
    SiteConfig::parse("site.toml", text).unwrap_err()
}

#[test]
fn duplicate_prefix_reported_at_second_line() {
    let text = GOOD.replace("prefix = \"B\"", "prefix = \"A\"");
    let e = err_of(&text);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("prefix = \"A\""))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert_eq!(e.line, line);
    assert_eq!(e.field, "services.prefix");
    assert!(
        e.to_string()
            .starts_with(&format!("site.toml:{line}: services.prefix"))
    );
}

#[test]
fn unknown_service_in_counter_is_named() {
    let e = err_of(&GOOD.replace("\"kham-noi\", \"kham-ngoai\"]", "\"kham-noi\", \"rang\"]"));
    assert_eq!(e.field, "counters.services");
    assert!(e.message.contains("rang"), "{e}");
    assert_eq!(e.line, GOOD.lines().count());
}

#[test]
fn duplicate_service_id() {
    let e = err_of(&GOOD.replace("id = \"kham-ngoai\"", "id = \"kham-noi\""));
    assert_eq!(e.field, "services.id");
    assert!(e.message.contains("duplicate"));
}

#[test]
fn syntax_error_has_a_line() {
    let e = err_of("[site]\nname = \"x\"\n[[services]\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.field, "(syntax)", "a broken header sets no key");
}

#[test]
fn syntax_error_names_the_key_of_its_line() {
    let text = GOOD.replace("digits = 3", "digits = = 3");
    let e = err_of(&text);
    let line = text.lines().position(|l| l == "digits = = 3").unwrap() + 1;
    assert_eq!((e.line, e.field.as_str()), (line, "services.digits"));
    assert!(
        e.to_string()
            .starts_with(&format!("site.toml:{line}: services.digits: ")),
        "{e}"
    );
    // In [site] and [server]: the table's name.
    let e = err_of(&GOOD.replace("listen = ", "listen = = "));
    assert_eq!(e.field, "server.listen");
    let e = err_of(&GOOD.replace("name = \"Bệnh viện Demo\"", "name = \"Bệnh viện Demo"));
    assert_eq!((e.line, e.field.as_str()), (3, "site.name"));
}

#[test]
fn a_missing_field_is_named_under_its_table() {
    let text = GOOD.replace("prefix = \"B\"\n", "");
    let e = err_of(&text);
    assert_eq!(e.message, "missing field `prefix`");
    assert_eq!(e.field, "services.prefix");
    assert_eq!(e.line, nth_line(&text, "[[services]]", 1));
    let e = err_of("[site]\n[[services]]\nid = \"a\"\nname = \"b\"\nprefix = \"A\"\n");
    assert_eq!((e.line, e.field.as_str()), (1, "site.name"), "{e}");
    let e = err_of("[server]\nlisten = \"0.0.0.0:1\"\n");
    assert_eq!((e.line, e.field.as_str()), (1, "site"), "{e}");
}

#[test]
fn bad_timezone_and_time() {
    assert_eq!(
        err_of(&GOOD.replace("Asia/Ho_Chi_Minh", "Mars/Base")).field,
        "site.timezone"
    );
    assert_eq!(
        err_of(&GOOD.replace("\"05:00\"", "\"5h\"")).field,
        "site.day_starts_at"
    );
}

#[test]
fn replace_placeholder_is_explained() {
    let text = format!(
        "{GOOD}\n[[devices]]\nid = \"k\"\nrole = \"kiosk\"\ntoken_sha256 = \"REPLACE\"\nservices = [\"kham-noi\"]\n"
    );
    let e = err_of(&text);
    assert_eq!(e.field, "devices.token_sha256");
    assert!(e.message.contains("luot-server token"));
}

#[test]
fn unknown_field_is_rejected() {
    let e = err_of(&GOOD.replace("digits = 3", "digit = 3"));
    assert!(e.message.contains("digit"), "{e}");
    assert_eq!(e.field, "services.digit");
}

#[test]
fn default_classes_follow_the_law() {
    // Especially severe and severe disabilities are two groups, in this order.
    let at = |c: &str| DEFAULT_PRIORITY_CLASSES.iter().position(|d| *d == c);
    assert_eq!(
        at("especially_severe_disability").map(|i| i + 1),
        at("severe_disability")
    );
    assert_eq!(
        at("pregnant").map(|i| i + 1),
        at("especially_severe_disability")
    );
    let (demo, _) = demo_site();
    assert_eq!(demo.priority.classes, DEFAULT_PRIORITY_CLASSES);
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/site.toml"))
            .unwrap();
    let c = SiteConfig::parse("deploy/site.toml", &example).unwrap();
    assert_eq!(c.priority.classes, DEFAULT_PRIORITY_CLASSES);
}

/// GOOD with a second counter, a kiosk, a display and `extra` appended.
fn with_devices(extra: &str) -> String {
    format!(
        "{GOOD}\n[[counters]]\nid = \"quay-2\"\nname = \"Quầy 2\"\nservices = [\"kham-noi\"]\n\
         \n[[devices]]\nid = \"kiosk-a\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\nservices = [\"kham-noi\"]\n\
         \n[[devices]]\nid = \"tv\"\nrole = \"display\"\ntoken_sha256 = \"{}\"\n{extra}",
        "a".repeat(64),
        "b".repeat(64),
    )
}

/// The 1-based line of the `n`th (0-based) line equal to `l`.
fn nth_line(text: &str, l: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, x)| *x == l)
        .nth(n)
        .unwrap()
        .0
        + 1
}

#[test]
fn ids_of_every_section_are_checked_alike() {
    let text = with_devices("");
    SiteConfig::parse("site.toml", &text).unwrap();
    for (section, from, to, what) in [
        (
            "services",
            "id = \"kham-ngoai\"",
            "id = \"kham-noi\"",
            "service id",
        ),
        (
            "counters",
            "id = \"quay-2\"",
            "id = \"quay-1\"",
            "counter id",
        ),
        ("devices", "id = \"tv\"", "id = \"kiosk-a\"", "device id"),
    ] {
        // Used twice: reported at the second, naming the first.
        let dup = text.replace(from, to);
        let e = err_of(&dup);
        let first = nth_line(&dup, to, 0);
        assert_eq!(e.field, format!("{section}.id"));
        assert_eq!(e.line, nth_line(&dup, to, 1));
        let value = &to[6..to.len() - 1];
        assert_eq!(
            e.message,
            format!("duplicate {what} \"{value}\" (first used at line {first})")
        );
        // Not an id.
        let bad = text.replace(from, "id = \"Quầy_2\"");
        let e = err_of(&bad);
        assert_eq!(e.field, format!("{section}.id"));
        assert_eq!(e.line, nth_line(&bad, "id = \"Quầy_2\"", 0));
        assert_eq!(
            e.message,
            format!("\"Quầy_2\" is not a {what} (1-32 of a-z, 0-9, -)")
        );
    }
}

#[test]
fn a_kiosk_without_services_is_a_desk_printer() {
    for services in ["services = []\n", ""] {
        let text = with_devices(&format!(
            "\n[[devices]]\nid = \"ban-tiep-don\"\nrole = \"kiosk\"\ntoken_sha256 = \"{}\"\n{services}",
            "c".repeat(64)
        ));
        let c = SiteConfig::parse("site.toml", &text).unwrap();
        let desk = c.devices.iter().find(|d| d.id == "ban-tiep-don").unwrap();
        assert_eq!(desk.role, DeviceRole::Kiosk);
        assert!(desk.services.is_empty());
    }
}

#[test]
fn lists_of_ids_name_known_ones_once() {
    let users = |counters: &str| {
        with_devices(&format!(
            "\n[[users]]\nusername = \"le.thu\"\nrole = \"staff\"\npassword_hash = '{}'\ncounters = {counters}\n",
            crate::secret::hash_password("x")
        ))
    };
    SiteConfig::parse("site.toml", &users("[\"quay-1\", \"quay-2\"]")).unwrap();
    let cases = [
        (
            GOOD.replace(
                "\"kham-noi\", \"kham-ngoai\"]",
                "\"kham-noi\", \"kham-noi\"]",
            ),
            "counters.services",
            "duplicate service in this counter \"kham-noi\"",
        ),
        (
            with_devices("").replace(
                "services = [\"kham-noi\"]\n\n[[devices]]\nid = \"tv\"",
                "services = [\"kham-noi\", \"rang\"]\n\n[[devices]]\nid = \"tv\"",
            ),
            "devices.services",
            "device \"kiosk-a\" names unknown service \"rang\"",
        ),
        (
            with_devices("").replace(
                "services = [\"kham-noi\"]\n\n[[devices]]\nid = \"tv\"",
                "services = [\"kham-noi\", \"kham-noi\"]\n\n[[devices]]\nid = \"tv\"",
            ),
            "devices.services",
            "duplicate service on this kiosk \"kham-noi\"",
        ),
        (
            users("[\"quay-9\"]"),
            "users.counters",
            "user \"le.thu\" names unknown counter \"quay-9\"",
        ),
        (
            users("[\"quay-2\", \"quay-2\"]"),
            "users.counters",
            "duplicate counter of this user \"quay-2\"",
        ),
    ];
    for (text, field, message) in cases {
        let e = err_of(&text);
        assert_eq!(e.field, field, "{e}");
        assert!(e.message.starts_with(message), "{e}");
    }
}

/// An example site of the repository's `examples/`, its `REPLACE`
/// secrets filled in as its README says: each device its own token hash,
/// each user a password hash.
fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let hash = crate::secret::hash_password("x");
    let mut n = 0;
    text.lines()
        .map(|l| match l {
            l if l.starts_with("token_sha256") => {
                n += 1;
                format!("token_sha256 = \"{n:064x}\"")
            }
            l => l.replace("\"REPLACE\"", &format!("'{hash}'")),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn examples_parse_once_secrets_are_filled() {
    for name in ["benh-vien.toml", "mot-cua.toml"] {
        let c = SiteConfig::parse(name, &example(name)).unwrap();
        assert!(c.services.len() >= 7);
    }
}

#[test]
fn queue_and_reports_default_to_the_contract() {
    let c = SiteConfig::parse("site.toml", GOOD).unwrap();
    assert_eq!(c.queue.policy, Policy::Preference);
    assert_eq!(c.queue.returning_ratio, 0);
    assert_eq!(c.queue.no_show_grace_min, 15);
    assert_eq!(c.queue.min_calls_before_no_show, 1);
    assert!(c.reports.test_services.is_empty());
    assert_eq!(c.reports.visit_limits_min, [120, 180, 210, 240]);
    assert_eq!(
        (c.counters[0].policy, c.counters[0].returning_ratio),
        (None, None)
    );
    // An empty table is the defaults too.
    let c = SiteConfig::parse("site.toml", &format!("{GOOD}\n[queue]\n[reports]\n")).unwrap();
    assert_eq!(c.queue, Queue::default());
    assert_eq!(c.reports, Reports::default());
}

/// GOOD with a lab service, `queue` and `reports` sections, and `counter`
/// lines added to its counter.
fn with_queue(queue: &str, reports: &str, counter: &str) -> String {
    let counter_at = "services = [\"kham-noi\", \"kham-ngoai\"]\n";
    format!(
        "{}\n[[services]]\nid = \"xet-nghiem\"\nname = \"Xét nghiệm\"\nprefix = \"C\"\n\
         \n[queue]\n{queue}\n[reports]\n{reports}\n",
        GOOD.replace(counter_at, &format!("{counter_at}{counter}"))
    )
}

#[test]
fn queue_reports_and_counter_fields_are_read() {
    let text = with_queue(
        "policy = \"longest_wait\"\nreturning_ratio = 3\nno_show_grace_min = 0\nmin_calls_before_no_show = 10\n",
        "test_services = [\"xet-nghiem\", \"kham-ngoai\"]\nvisit_limits_min = [60, 1440]\n",
        "policy = \"preference\"\nreturning_ratio = 100\n",
    );
    let c = SiteConfig::parse("site.toml", &text).unwrap();
    assert_eq!(
        c.queue,
        Queue {
            policy: Policy::LongestWait,
            returning_ratio: 3,
            no_show_grace_min: 0,
            min_calls_before_no_show: 10,
        }
    );
    assert_eq!(c.reports.test_services, ["xet-nghiem", "kham-ngoai"]);
    assert_eq!(c.reports.visit_limits_min, [60, 1440]);
    assert_eq!(c.counters[0].policy, Some(Policy::Preference));
    assert_eq!(c.counters[0].returning_ratio, Some(100));
    // The bounds themselves are allowed.
    let edges = with_queue(
        "returning_ratio = 0\nno_show_grace_min = 1440\nmin_calls_before_no_show = 1\n",
        &format!("visit_limits_min = [{}]\n", ["1"; 10].join(", ")),
        "returning_ratio = 0\n",
    );
    let c = SiteConfig::parse("site.toml", &edges).unwrap();
    assert_eq!(c.reports.visit_limits_min, [1; 10]);
    assert_eq!(c.counters[0].returning_ratio, Some(0));
}

#[test]
fn bad_queue_reports_and_counter_values_name_line_and_field() {
    // (queue lines, reports lines, counter lines, the bad line, field, message start)
    let cases: [(&str, &str, &str, &str, &str, &str); 13] = [
        (
            "policy = \"fifo\"\n",
            "",
            "",
            "policy = \"fifo\"",
            "queue.policy",
            "\"fifo\" is not a calling policy",
        ),
        (
            "returning_ratio = 101\n",
            "",
            "",
            "returning_ratio = 101",
            "queue.returning_ratio",
            "101 is not between 0 and 100",
        ),
        (
            "returning_ratio = -1\n",
            "",
            "",
            "returning_ratio = -1",
            "queue.returning_ratio",
            "-1 is not between 0 and 100",
        ),
        (
            "no_show_grace_min = 1441\n",
            "",
            "",
            "no_show_grace_min = 1441",
            "queue.no_show_grace_min",
            "1441 is not between 0 and 1440",
        ),
        (
            "min_calls_before_no_show = 0\n",
            "",
            "",
            "min_calls_before_no_show = 0",
            "queue.min_calls_before_no_show",
            "0 is not between 1 and 10",
        ),
        (
            "min_calls_before_no_show = 11\n",
            "",
            "",
            "min_calls_before_no_show = 11",
            "queue.min_calls_before_no_show",
            "11 is not between 1 and 10",
        ),
        (
            "",
            "",
            "policy = \"random\"\n",
            "policy = \"random\"",
            "counters.policy",
            "\"random\" is not a calling policy",
        ),
        (
            "",
            "",
            "returning_ratio = 200\n",
            "returning_ratio = 200",
            "counters.returning_ratio",
            "200 is not between 0 and 100",
        ),
        (
            "",
            "test_services = [\"x-quang\"]\n",
            "",
            "test_services = [\"x-quang\"]",
            "reports.test_services",
            "[reports] names unknown service \"x-quang\"",
        ),
        (
            "",
            "test_services = [\"xet-nghiem\",\n  \"xet-nghiem\"]\n",
            "",
            "  \"xet-nghiem\"]",
            "reports.test_services",
            "duplicate test service \"xet-nghiem\"",
        ),
        (
            "",
            "visit_limits_min = []\n",
            "",
            "visit_limits_min = []",
            "reports.visit_limits_min",
            "give 1 to 10 limits",
        ),
        (
            "",
            "visit_limits_min = [1,1,1,1,1,1,1,1,1,1,1]\n",
            "",
            "visit_limits_min = [1,1,1,1,1,1,1,1,1,1,1]",
            "reports.visit_limits_min",
            "give 1 to 10 limits",
        ),
        (
            "",
            "visit_limits_min = [120,\n  0]\n",
            "",
            "  0]",
            "reports.visit_limits_min",
            "0 is not between 1 and 1440",
        ),
    ];
    for (queue, reports, counter, bad, field, message) in cases {
        let text = with_queue(queue, reports, counter);
        let e = err_of(&text);
        assert_eq!(e.field, field, "{e}");
        assert_eq!(e.line, nth_line(&text, bad, 0), "{e}");
        assert!(e.message.starts_with(message), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("site.toml:{}: {field}: ", e.line)),
            "{e}"
        );
    }
    // Wrong types and unknown fields are named as TOML reports them.
    for (queue, reports, counter, field) in [
        ("returning_ratio = \"3\"\n", "", "", "queue.returning_ratio"),
        ("polcy = \"preference\"\n", "", "", "queue.polcy"),
        (
            "",
            "visit_limits_min = 120\n",
            "",
            "reports.visit_limits_min",
        ),
        ("", "", "policy = 1\n", "counters.policy"),
    ] {
        let e = err_of(&with_queue(queue, reports, counter));
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn the_hospital_example_takes_tests_and_limits() {
    let mut text = example("benh-vien.toml");
    text.push_str(
        "\n[queue]\npolicy = \"longest_wait\"\nreturning_ratio = 2\n\
         \n[reports]\ntest_services = [\"xet-nghiem\", \"x-quang\", \"sieu-am\"]\n",
    );
    let c = SiteConfig::parse("benh-vien.toml", &text).unwrap();
    assert_eq!(
        c.reports.test_services,
        ["xet-nghiem", "x-quang", "sieu-am"]
    );
    assert_eq!(c.reports.visit_limits_min, [120, 180, 210, 240]);
    assert_eq!(c.queue.policy, Policy::LongestWait);
}

#[test]
fn the_store_and_ha_sections_follow_rule_100() {
    // The default is sled, with no [ha].
    let c = SiteConfig::parse("site.toml", GOOD).unwrap();
    assert_eq!(c.store, crate::config::store::StoreKind::Sled);
    assert!(c.ha.is_none());
    let pg = format!(
        "{GOOD}\n[store]\nkind = \"postgres\"\nurl = \"host=/var/run/postgresql dbname=luot user=luot\"\n\
         password_file = \"/etc/luot/pg-password\"\n[ha]\nnode = \"luot-a\"\nurl = \"http://10.0.0.11:8080\"\n"
    );
    let c = SiteConfig::parse("site.toml", &pg).unwrap();
    let crate::config::store::StoreKind::Postgres(p) = &c.store else {
        panic!("postgres");
    };
    assert_eq!(p.url, "host=/var/run/postgresql dbname=luot user=luot");
    let ha = c.ha.unwrap();
    assert_eq!(ha.node, "luot-a");
    assert_eq!(ha.patroni_url, "http://127.0.0.1:8008", "the default");
    // A password in the url: refused at its line, naming store.url, never
    // echoing it.
    for url in [
        "host=db dbname=luot user=luot password=hunter2",
        "postgres://luot:hunter2@db/luot",
        "postgresql://db/luot?password=hunter2",
    ] {
        let text = format!("{GOOD}\n[store]\nkind = \"postgres\"\nurl = \"{url}\"\n");
        let e = err_of(&text);
        assert_eq!(e.field, "store.url", "{e}");
        assert_eq!(e.line, text.lines().count(), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
    // postgres needs a url; [ha] needs postgres; a node name is checked.
    let e = err_of(&format!("{GOOD}\n[store]\nkind = \"postgres\"\n"));
    assert_eq!(e.field, "store.url");
    let e = err_of(&format!("{GOOD}\n[ha]\nnode = \"luot-a\"\n"));
    assert_eq!(e.field, "ha", "{e}");
    let e = err_of(&pg.replace("node = \"luot-a\"", "node = \"Luot A\""));
    assert_eq!(e.field, "ha.node");
    let e = err_of(&format!("{GOOD}\n[store]\nkind = \"mysql\"\n"));
    assert_eq!(e.field, "store.kind");
}
