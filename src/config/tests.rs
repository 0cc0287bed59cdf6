//! Config files as operators write them: the product spec's sample, the empty file, and files full of the
//! mistakes people make, each of which must come back with its key path and line, all in one run.

use std::collections::BTreeSet;

use super::*;

/// The sample config of the product spec, verbatim.
const SAMPLE: &str = r#"[mqtt]
url = "mqtt://127.0.0.1:1883"
client_id = "tillmark"
topics = ["pos/+/+/events"]
[database]
url = "sqlite://tillmark.db"
[web]
listen = "127.0.0.1:8080"
[bookmarks]
types = ["void", "item_void", "correction", "refund", "no_sale", "drawer_open", "paid_out"]
pre_roll = "10s"
post_roll = "20s"
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://192.0.2.10:7001"
username = "tillmark"
password_env = "NX_PASSWORD"
[[cameras]]
system = "nvr"
device = "0b8c3a52-6d1e-4a53-9d55-51d1b0cfa1e2"
name = "Counter 1"
registers = ["shibuya-01/r1", "shibuya-01/r2"]
"#;

const NX_PASSWORD: &str = "nx-pass-7f3a9c";

/// The environment of the operator's shell: only NX_PASSWORD is set.
pub(crate) fn env(name: &str) -> Option<String> {
    (name == "NX_PASSWORD").then(|| NX_PASSWORD.to_string())
}

fn valid(text: &str) -> Config {
    match Config::parse(text, &env) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got: {errors:#?}"),
    }
}

fn invalid(text: &str) -> Vec<ConfigError> {
    match Config::parse(text, &env) {
        Ok(config) => panic!("expected errors, got a config: {config:?}"),
        Err(errors) => errors,
    }
}

/// The 1-based line of `text` that contains `needle`, which must occur on exactly one line.
fn line_of(text: &str, needle: &str) -> usize {
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(hits.len(), 1, "{needle:?} is on lines {hits:?}");
    hits[0]
}

/// The 1-based line of the `n`th (from 0) line of `text` that contains `needle`.
fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} is not on {} lines", n + 1))
}

pub(crate) fn error_at<'e>(errors: &'e [ConfigError], path: &str) -> &'e ConfigError {
    errors
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}; errors: {errors:#?}"))
}

/// The sample's store, system and camera, followed by `extra`.
pub(crate) fn with_site(extra: &str) -> String {
    let start = SAMPLE.find("[[stores]]").expect("sample has stores");
    format!("{}\n{extra}", &SAMPLE[start..])
}

// ---- Valid configs ----

#[test]
fn the_sample_config_is_valid_and_every_value_lands_where_it_should() {
    let config = valid(SAMPLE);

    assert_eq!(
        config.mqtt.url,
        Some(BrokerUrl {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false
        })
    );
    assert_eq!(config.mqtt.client_id, "tillmark");
    assert_eq!(config.mqtt.topics, ["pos/+/+/events"]);
    assert_eq!(config.mqtt.username, None);
    assert!(config.mqtt.password.is_none());
    assert_eq!(config.database.url, "sqlite://tillmark.db");
    assert_eq!(config.web.listen.to_string(), "127.0.0.1:8080");

    let types: Vec<&str> = config.bookmarks.types.iter().map(|t| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "void",
            "item_void",
            "correction",
            "refund",
            "no_sale",
            "drawer_open",
            "paid_out"
        ]
    );
    assert_eq!(config.bookmarks.pre_roll, Millis(10_000));
    assert_eq!(config.bookmarks.post_roll, Millis(20_000));

    assert_eq!(config.stores.len(), 1);
    let store = config.store("shibuya-01").expect("the store");
    assert_eq!(store.name, "Shibuya");
    assert_eq!(store.timezone, chrono_tz::Asia::Tokyo);

    assert_eq!(config.camera_systems.len(), 1);
    let nvr = config.camera_system("nvr").expect("the camera system");
    assert_eq!(nvr.integration.name(), "nx-witness");
    assert_eq!(nvr.url.as_str(), "https://192.0.2.10:7001/");
    assert_eq!(nvr.username.as_deref(), Some("tillmark"));
    assert_eq!(nvr.password.as_ref().map(Secret::expose), Some(NX_PASSWORD));
    assert!(nvr.api_key.is_none());
    assert_eq!(nvr.client_id, None);
    assert!(nvr.client_secret.is_none());
    assert!(nvr.refresh_token.is_none());
    assert_eq!(nvr.tls_ca, None);
    assert!(!nvr.tls_insecure);
    assert_eq!(nvr.web_viewer_url, None);
    assert!(nvr.options.is_empty());

    assert_eq!(config.cameras.len(), 1);
    let camera = &config.cameras[0];
    assert_eq!(camera.system, "nvr");
    assert_eq!(camera.device, "0b8c3a52-6d1e-4a53-9d55-51d1b0cfa1e2");
    assert_eq!(camera.name, "Counter 1");
    let registers: Vec<String> = camera.registers.iter().map(|r| r.to_string()).collect();
    assert_eq!(registers, ["shibuya-01/r1", "shibuya-01/r2"]);
    assert_eq!(camera.offset, Millis(0));
    assert_eq!(camera.pre_roll, Millis(10_000));
    assert_eq!(camera.post_roll, Millis(20_000));
}

#[test]
fn what_the_sample_leaves_out_gets_its_default() {
    let config = valid(SAMPLE);
    assert_eq!(config.mqtt.embedded_listen.to_string(), "127.0.0.1:1883");
    let retry: Vec<String> = config
        .delivery
        .retry
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(retry, ["1s", "5s", "15s", "30s", "1m", "2m", "5m"]);
    assert_eq!(config.delivery.concurrency, 64);
    assert_eq!(config.delivery.timeout, Millis(10_000));
}

#[test]
fn the_empty_config_is_valid_and_runs_on_the_embedded_defaults() {
    let config = valid("");
    assert_eq!(config.mqtt.url, None, "no url starts the embedded broker");
    assert_eq!(config.mqtt.embedded_listen.to_string(), "127.0.0.1:1883");
    assert_eq!(config.mqtt.client_id, "tillmark");
    assert_eq!(config.mqtt.topics, ["pos/+/+/events"]);
    assert_eq!(config.database.url, "sqlite://tillmark.db");
    assert_eq!(config.web.listen.to_string(), "127.0.0.1:8080");
    let defaults: BTreeSet<EventType> = [
        EventType::Void,
        EventType::ItemVoid,
        EventType::Correction,
        EventType::Refund,
        EventType::NoSale,
        EventType::DrawerOpen,
    ]
    .into();
    assert_eq!(config.bookmarks.types, defaults);
    assert_eq!(config.bookmarks.pre_roll, Millis(10_000));
    assert_eq!(config.bookmarks.post_roll, Millis(20_000));
    assert_eq!(
        config.bookmarks.drawer_open_explained_within,
        Millis(30_000)
    );
    assert_eq!(config.bookmarks.drawer_open_hold_ms(), Some(35_000));
    let retry: Vec<i64> = config.delivery.retry.iter().map(|d| d.0).collect();
    assert_eq!(retry, DEFAULT_RETRY);
    assert_eq!(config.delivery.concurrency, 64);
    assert!(config.stores.is_empty());
    assert!(config.camera_systems.is_empty());
    assert!(config.cameras.is_empty());
}

#[test]
fn the_default_config_is_the_empty_config_and_needs_no_environment() {
    let config = Config::default();
    assert_eq!(config.database.url, "sqlite://tillmark.db");
    assert_eq!(config.bookmarks.types.len(), 6);
    assert!(Config::parse("", &|_| None).is_ok());
    assert!(Config::parse("\n# nothing here yet\n", &|_| None).is_ok());
}

#[test]
fn a_store_without_a_name_is_named_by_its_id_and_a_camera_by_its_device() {
    let config = valid(
        r#"
[[stores]]
id = "umeda-03"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "hook"
integration = "webhook"
url = "https://hooks.example.com/tillmark"
[[cameras]]
system = "hook"
device = "cam-7"
registers = ["umeda-03/r1"]
"#,
    );
    assert_eq!(config.stores[0].name, "umeda-03");
    assert_eq!(config.cameras[0].name, "cam-7");
    assert_eq!(
        config.camera_systems[0].integration,
        Integration::parse("webhook").unwrap()
    );
}

#[test]
fn durations_and_delivery_settings_are_read_in_their_units() {
    let config = valid(
        r#"
[bookmarks]
pre_roll = "1.5s"
post_roll = "2m"
[delivery]
retry = ["250ms", "1s", "1h"]
concurrency = 16
timeout = "30s"
"#,
    );
    assert_eq!(config.bookmarks.pre_roll, Millis(1_500));
    assert_eq!(config.bookmarks.post_roll, Millis(120_000));
    assert_eq!(
        config.delivery.retry,
        [Millis(250), Millis(1_000), Millis(3_600_000)]
    );
    assert_eq!(config.delivery.concurrency, 16);
    assert_eq!(config.delivery.timeout, Millis(30_000));
}

#[test]
fn an_external_broker_with_credentials_reads_the_password_from_the_environment() {
    let config = valid(
        r#"
[mqtt]
url = "mqtts://broker.example.com"
username = "tillmark"
password_env = "NX_PASSWORD"
topics = ["pos/+/+/events", "$share/tillmark/pos/#"]
"#,
    );
    let url = config.mqtt.url.expect("a broker url");
    assert_eq!(url.to_string(), "mqtts://broker.example.com:8883");
    assert_eq!(config.mqtt.username.as_deref(), Some("tillmark"));
    assert_eq!(
        config.mqtt.password.as_ref().map(Secret::expose),
        Some(NX_PASSWORD)
    );
    assert_eq!(config.mqtt.topics.len(), 2);
}

#[test]
fn an_ipv6_loopback_address_is_accepted_for_the_web_index() {
    let config = valid("[web]\nlisten = \"[::1]:9090\"\n");
    assert_eq!(config.web.listen.to_string(), "[::1]:9090");
}

#[test]
fn the_index_listens_beyond_loopback_only_over_tls_or_behind_a_tls_proxy() {
    let proxied = valid(
        "[web]\nlisten = \"0.0.0.0:8080\"\nbehind_proxy = true\ntrusted_proxies = [\"10.0.0.5\"]\n",
    );
    assert_eq!(proxied.web.listen.to_string(), "0.0.0.0:8080");
    assert!(proxied.web.served_over_tls());
    let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
    assert!(proxied.web.trusts_proxy(proxy));
    assert!(
        !proxied.web.trusts_proxy("10.0.0.6".parse().unwrap()),
        "only the proxy named"
    );
    let local = valid("[web]\nbehind_proxy = true\n");
    assert!(local.web.trusts_proxy("127.0.0.1".parse().unwrap()));
    assert!(
        !local.web.trusts_proxy(proxy),
        "with none named, only a proxy on this machine"
    );
    assert!(!valid("").web.trusts_proxy("127.0.0.1".parse().unwrap()));
    let unnamed = invalid("[web]\nlisten = \"0.0.0.0:8080\"\nbehind_proxy = true\n");
    assert!(
        error_at(&unnamed, "web.listen")
            .message
            .contains("name the TLS reverse proxy in front in trusted_proxies"),
        "{unnamed:?}"
    );
    let wrong = invalid("[web]\ntrusted_proxies = [\"proxy.lan\"]\n");
    assert_eq!(
        error_at(&wrong, "web.trusted_proxies").message,
        "\"proxy.lan\" is not an IP address like 10.0.0.5"
    );
    let tls = valid(
        "[web]\nlisten = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nsession_idle = \"30m\"\ntoken_lifetime = \"30d\"\n",
    );
    assert_eq!(tls.web.tls.as_ref().unwrap().key.to_str(), Some("k.pem"));
    assert_eq!(tls.web.session_idle.0, 1_800_000);
    assert_eq!(tls.web.token_lifetime.to_string(), "30d");
    assert_eq!(valid("").web.token_lifetime.to_string(), "90d");
    assert!(
        !valid("").web.served_over_tls(),
        "plain HTTP on loopback by default"
    );

    let errors = invalid(
        "[web]\ntls_cert = \"c.pem\"\nbehind_proxy = true\nsession_idle = \"10s\"\ntoken_lifetime = \"3650d\"\n",
    );
    let message = |path: &str| error_at(&errors, path).message.clone();
    assert_eq!(
        message("web.tls_key"),
        "tls_cert needs tls_key, the certificate's private key"
    );
    assert_eq!(message("web.session_idle"), "must be at least 1m");
    assert_eq!(
        message("web.token_lifetime"),
        "must be from 1h to 1095d (three years)"
    );
    let both = invalid("[web]\ntls_cert = \"c\"\ntls_key = \"k\"\nbehind_proxy = true\n");
    assert!(
        error_at(&both, "web.behind_proxy")
            .message
            .starts_with("choose one")
    );
}

// ---- Watchers ----

#[test]
fn watchers_map_each_register_to_the_cameras_that_watch_it() {
    let config = valid(&with_site(
        r#"
[[cameras]]
system = "nvr"
device = "cam-door"
registers = ["shibuya-01/r2", "shibuya-01/r3"]
"#,
    ));
    let watchers = Watchers::new(&config);
    let names = |register: &str| -> Vec<&str> {
        watchers
            .cameras("shibuya-01", register)
            .iter()
            .map(|&i| config.cameras[i].name.as_str())
            .collect()
    };
    assert_eq!(names("r1"), ["Counter 1"]);
    assert_eq!(
        names("r2"),
        ["Counter 1", "cam-door"],
        "a register watched by two cameras gets both"
    );
    assert_eq!(names("r3"), ["cam-door"]);
    assert!(names("r4").is_empty());
    assert!(watchers.cameras("shibuya-02", "r1").is_empty());
}

#[test]
fn a_register_listed_twice_by_one_camera_gives_that_camera_once() {
    let config = valid(&with_site(
        r#"
[[cameras]]
system = "nvr"
device = "cam-twice"
registers = ["shibuya-01/r5", "shibuya-01/r5"]
"#,
    ));
    assert_eq!(Watchers::new(&config).cameras("shibuya-01", "r5"), [1]);
}

// ---- Configs with mistakes ----

/// One file with many of the mistakes operators make.
const MISTAKES: &str = r#"colour = "blue"

[mqtt]
url = "http://broker.local:1883"
retain = true

[web]
listen = "0.0.0.0:8080"

[bookmarks]
types = ["void", "voided", "refund"]
pre_roll = "10"
post_roll = "ten seconds"

[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokio"

[[stores]]
id = "shinjuku-02"
timezone = "Asia/Tokyo"

[[stores]]
id = "shinjuku-02"
timezone = "Asia/Tokyo"

[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://192.0.2.10:7001"
username = "tillmark"
password_env = "NVR_PASSWORD"
password = "hunter2"

[[camera_systems]]
id = "cloud"
integration = "Milestone XYZ"
url = "ftp://x"

[[cameras]]
system = "nvr"
devise = "0b8c3a52"
registers = ["shibuya-01/r1", "shibuya-02/r1", "r3"]

[[cameras]]
system = "nvr-2"
device = "cam-2"
registers = ["shinjuku-02/r1"]
"#;

#[test]
fn a_config_with_many_mistakes_reports_all_of_them_at_once_in_file_order() {
    let errors = invalid(MISTAKES);
    let found: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.path.as_str(), e.line)).collect();
    let at = |needle: &str| Some(line_of(MISTAKES, needle));
    assert_eq!(
        found,
        [
            ("colour", at("colour")),
            ("mqtt.url", at("http://broker.local")),
            ("mqtt.retain", at("retain")),
            ("web.listen", at("0.0.0.0:8080")),
            ("bookmarks.types[1]", at("voided")),
            ("bookmarks.pre_roll", at("pre_roll")),
            ("bookmarks.post_roll", at("post_roll")),
            ("stores[0].timezone", at("Asia/Tokio")),
            // The repeat is reported, where it is: the third [[stores]].
            (
                "stores[2].id",
                Some(nth_line_of(MISTAKES, "\"shinjuku-02\"", 1))
            ),
            ("camera_systems[0].password_env", at("NVR_PASSWORD")),
            ("camera_systems[0].password", at("hunter2")),
            ("camera_systems[1].integration", at("Milestone XYZ")),
            ("camera_systems[1].url", at("ftp://x")),
            // A required key that is missing is placed on its section's header line.
            (
                "cameras[0].device",
                Some(nth_line_of(MISTAKES, "[[cameras]]", 0))
            ),
            ("cameras[0].devise", at("devise")),
            ("cameras[0].registers[1]", at("shibuya-02/r1")),
            ("cameras[0].registers[2]", at("shibuya-02/r1")),
            ("cameras[1].system", at("nvr-2")),
        ]
    );
}

#[test]
fn the_duplicate_store_id_is_reported_on_the_line_of_its_second_use() {
    let errors = invalid(MISTAKES);
    let dup = error_at(&errors, "stores[2].id");
    assert_eq!(
        dup.line,
        Some(nth_line_of(MISTAKES, "id = \"shinjuku-02\"", 1))
    );
    assert_eq!(dup.message, "id \"shinjuku-02\" is used twice");
}

#[test]
fn each_mistake_comes_with_a_message_that_says_how_to_fix_it() {
    let errors = invalid(MISTAKES);
    let message = |path: &str| error_at(&errors, path).message.clone();
    assert_eq!(
        message("colour"),
        "unknown key; expected one of: alerts, bookmarks, camera_systems, cameras, database, dead_letters, delivery, intake, integrations, metrics, mqtt, retention, rules, signing, smtp, stores, web"
    );
    assert_eq!(
        message("mqtt.retain"),
        "unknown key; expected one of: client_cert, client_id, client_key, clients, embedded_listen, embedded_tls_cert, embedded_tls_key, password_env, receive_maximum, shared_group, tls_ca, topics, url, username"
    );
    assert_eq!(
        message("mqtt.url"),
        "scheme \"http\" is not supported: use mqtt:// or mqtts://"
    );
    assert_eq!(
        message("web.listen"),
        "0.0.0.0:8080 is reachable from other machines, and sign-in passwords must not cross a network in \
         clear: set tls_cert and tls_key, or behind_proxy = true behind a TLS reverse proxy"
    );
    assert!(
        message("bookmarks.types[1]").starts_with(
            "unknown event type \"voided\"; known types: void, item_void, correction, refund,"
        ),
        "{}",
        message("bookmarks.types[1]")
    );
    assert_eq!(
        message("bookmarks.pre_roll"),
        "\"10\" has no unit: write it like \"10s\", \"250ms\", \"2m\" or \"1h\""
    );
    assert!(
        message("bookmarks.post_roll")
            .starts_with("\"ten seconds\" is not a duration: write it like \"10s\"")
    );
    assert_eq!(
        message("stores[0].timezone"),
        "\"Asia/Tokio\" is not an IANA time zone such as Asia/Tokyo"
    );
    assert_eq!(
        message("camera_systems[0].password_env"),
        "environment variable NVR_PASSWORD is not set"
    );
    assert_eq!(
        message("camera_systems[0].password"),
        "secrets do not belong in the file: put it in an environment variable and name it with password_env"
    );
    assert_eq!(
        message("camera_systems[1].integration"),
        "\"Milestone XYZ\" is not an integration name: use a definition's name (a-z, 0-9, -), such as nx-witness or webhook"
    );
    assert_eq!(
        message("camera_systems[1].url"),
        "\"ftp://x\" is not an http:// or https:// URL"
    );
    assert_eq!(
        message("cameras[0].devise"),
        "unknown key; expected one of: device, name, offset, post_roll, pre_roll, registers, system"
    );
    assert_eq!(message("cameras[0].device"), "is required");
    assert_eq!(
        message("cameras[0].registers[1]"),
        "no [[stores]] has id \"shibuya-02\" (it needs one, for its time zone)"
    );
    assert_eq!(
        message("cameras[0].registers[2]"),
        "\"r3\" must be \"store/register\", e.g. \"shibuya-01/r2\""
    );
    assert_eq!(
        message("cameras[1].system"),
        "no [[camera_systems]] has id \"nvr-2\""
    );
}

#[test]
fn a_password_written_in_the_file_is_never_echoed_in_an_error() {
    for e in invalid(MISTAKES) {
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[test]
fn a_store_with_a_mistyped_time_zone_still_exists_for_the_cameras_that_name_it() {
    let text = with_site("").replace("Asia/Tokyo", "Asia/Tokio");
    let errors = invalid(&text);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["stores[0].timezone"],
        "one mistake, one error: {errors:#?}"
    );
}

#[test]
fn a_camera_system_with_a_bad_url_still_exists_for_the_cameras_that_name_it() {
    let text = with_site("").replace("https://192.0.2.10:7001", "192.0.2.10:7001");
    let errors = invalid(&text);
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["camera_systems[0].url"], "{errors:#?}");
}

#[test]
fn an_allowed_host_must_be_a_host_not_an_address() {
    let text = with_site(
        "\n[[camera_systems]]\nid = \"een\"\nintegration = \"eagle-eye\"\nurl = \"https://api.example.com/\"\n\
         client_id = \"tillmark\"\nclient_secret_env = \"NX_PASSWORD\"\nrefresh_token_env = \"NX_PASSWORD\"\n\
         allowed_hosts = [\"Auth.EagleEyeNetworks.com\"]\n[camera_systems.options]\naccount_id = \"1\"\nevent_type = \"e\"\n",
    );
    let config = valid(&text);
    assert_eq!(
        config.camera_systems[1].allowed_hosts,
        ["auth.eagleeyenetworks.com"]
    );
    let errors = invalid(&text.replace(
        "\"Auth.EagleEyeNetworks.com\"",
        "\"https://auth.example.com/token\"",
    ));
    assert_eq!(errors[0].path, "camera_systems[1].allowed_hosts");
    assert_eq!(
        errors[0].message,
        "\"https://auth.example.com/token\" is not a host like auth.example.com or 10.0.0.5:8443"
    );
}

#[test]
fn a_duplicate_camera_system_id_is_reported_at_the_repeat() {
    let errors = invalid(&with_site(
        r#"
[[camera_systems]]
id = "nvr"
integration = "webhook"
url = "https://hooks.example.com/"
"#,
    ));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "camera_systems[1].id");
    assert_eq!(errors[0].message, "id \"nvr\" is used twice");
}

#[test]
fn a_toml_syntax_error_is_one_error_with_its_line() {
    let text = "[mqtt]\nclient_id = \"tillmark\"\ntopics = [\"pos/+/+/events\"\n\n[web]\n";
    let errors = Config::parse(text, &env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "");
    assert!(
        errors[0].line.is_some_and(|l| (3..=5).contains(&l)),
        "{errors:?}"
    );
    let bare = "[mqtt]\nclient_id = tillmark\n";
    let errors = Config::parse(bare, &env).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, Some(2));
    assert!(
        errors[0].to_string().starts_with("line 2: "),
        "{}",
        errors[0]
    );
}

#[test]
fn a_value_of_the_wrong_toml_type_names_what_was_expected() {
    let errors = invalid("[bookmarks]\npre_roll = 10\n[delivery]\nconcurrency = \"4\"\n");
    assert_eq!(
        error_at(&errors, "bookmarks.pre_roll").message,
        "expected a string, found integer"
    );
    assert_eq!(error_at(&errors, "bookmarks.pre_roll").line, Some(2));
    assert!(
        error_at(&errors, "delivery.concurrency")
            .message
            .starts_with("expected an integer, found "),
    );
}

#[test]
fn a_section_written_as_a_plain_value_is_refused() {
    let errors = invalid("mqtt = \"mqtt://127.0.0.1\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "mqtt");
    assert!(errors[0].message.starts_with("expected a table, found "));
}

#[test]
fn an_mqtt_password_needs_a_username() {
    let errors = invalid("[mqtt]\nurl = \"mqtt://broker\"\npassword_env = \"NX_PASSWORD\"\n");
    let e = error_at(&errors, "mqtt.username");
    assert_eq!(e.message, "is required when password_env is set");
}

#[test]
fn an_api_key_in_the_file_is_refused_like_a_password() {
    let errors = invalid(
        r#"
[[camera_systems]]
id = "hook"
integration = "webhook"
url = "https://hooks.example.com/"
api_key = "sk-live-123"
"#,
    );
    let e = error_at(&errors, "camera_systems[0].api_key");
    assert!(e.message.contains("api_key_env"), "{}", e.message);
    assert!(!e.to_string().contains("sk-live-123"));
}

#[test]
fn an_empty_environment_variable_counts_as_unset() {
    let text = with_site("");
    let errors = Config::parse(&text, &|_| Some(String::new())).unwrap_err();
    assert_eq!(
        error_at(&errors, "camera_systems[0].password_env").message,
        "environment variable NX_PASSWORD is not set"
    );
}

#[test]
fn rolls_must_be_within_an_hour_and_not_both_zero() {
    let errors = invalid("[bookmarks]\npre_roll = \"2h\"\n");
    assert_eq!(
        error_at(&errors, "bookmarks.pre_roll").message,
        "must be between 0s and 1h"
    );
    let errors = invalid("[bookmarks]\npre_roll = \"0s\"\npost_roll = \"0s\"\n");
    assert_eq!(
        error_at(&errors, "bookmarks.post_roll").message,
        "pre_roll and post_roll cannot both be zero: a bookmark needs a length"
    );
}

#[test]
fn the_drawer_open_window_is_a_duration_of_at_most_ten_minutes_and_zero_holds_nothing() {
    let config = valid("[bookmarks]\ndrawer_open_explained_within = \"45s\"\n");
    assert_eq!(
        config.bookmarks.drawer_open_explained_within,
        Millis(45_000)
    );
    assert_eq!(config.bookmarks.drawer_open_hold_ms(), Some(50_000));
    let config = valid("[bookmarks]\ndrawer_open_explained_within = \"0s\"\n");
    assert_eq!(config.bookmarks.drawer_open_hold_ms(), None);
    let config = valid("[bookmarks]\ntypes = [\"void\"]\n");
    assert_eq!(
        config.bookmarks.drawer_open_hold_ms(),
        None,
        "drawer opens not flagged"
    );

    let text = "[bookmarks]\ndrawer_open_explained_within = \"11m\"\n";
    let errors = invalid(text);
    let e = error_at(&errors, "bookmarks.drawer_open_explained_within");
    assert!(
        e.message
            .starts_with("must be between 0s (every drawer open is flagged) and 10m"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(line_of(text, "drawer_open_explained_within")));
    let errors = invalid("[bookmarks]\ndrawer_open_explained_within = \"thirty\"\n");
    assert!(
        !error_at(&errors, "bookmarks.drawer_open_explained_within")
            .message
            .is_empty()
    );
}

#[test]
fn a_bad_retry_step_is_named_by_its_index() {
    let errors = invalid("[delivery]\nretry = [\"1s\", \"5\", \"0s\"]\n");
    assert!(
        error_at(&errors, "delivery.retry[1]")
            .message
            .contains("has no unit")
    );
    assert_eq!(
        error_at(&errors, "delivery.retry[2]").message,
        "must be between 1ms and 24h"
    );
}

#[test]
fn a_malformed_topic_filter_is_named_by_its_index() {
    let errors = invalid("[mqtt]\ntopics = [\"pos/+/+/events\", \"pos/#/events\", \"pos/r+/x\"]\n");
    assert_eq!(
        error_at(&errors, "mqtt.topics[1]").message,
        "\"pos/#/events\": # must be a whole last level"
    );
    assert_eq!(
        error_at(&errors, "mqtt.topics[2]").message,
        "\"pos/r+/x\": + must be a whole level"
    );
}

#[test]
fn a_postgres_database_url_is_taken_and_other_urls_are_explained() {
    let config = valid("[database]\nurl = \"postgres://db/tillmark\"\n");
    assert_eq!(config.database.url, "postgres://db/tillmark");
    let errors = invalid("[database]\nurl = \"tillmark.db\"\n");
    assert_eq!(
        errors[0].message,
        "\"tillmark.db\" is not a database URL: use sqlite://FILE or postgres://USER@HOST/DATABASE"
    );
}

#[test]
fn a_store_id_outside_the_event_alphabet_is_refused() {
    let errors = invalid("[[stores]]\nid = \"shibuya 01\"\ntimezone = \"Asia/Tokyo\"\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].path, "stores[0].id");
    assert_eq!(errors[0].line, Some(2));
}

#[test]
fn a_store_needs_an_id_and_a_timezone_reported_on_its_header_line() {
    let errors = invalid("\n[[stores]]\nname = \"Shibuya\"\n");
    let found: Vec<(&str, Option<usize>, &str)> = errors
        .iter()
        .map(|e| (e.path.as_str(), e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("stores[0].id", Some(2), "is required"),
            ("stores[0].timezone", Some(2), "is required"),
        ]
    );
}

#[test]
fn a_camera_without_registers_is_told_what_to_list() {
    let errors = invalid(&with_site(
        "[[cameras]]\nsystem = \"nvr\"\ndevice = \"cam-9\"\n",
    ));
    assert_eq!(
        error_at(&errors, "cameras[1].registers").message,
        "is required: the registers this camera watches, as \"store/register\""
    );
}

// ---- Display of errors ----

#[test]
fn a_config_error_reads_path_line_and_message() {
    let e = ConfigError {
        path: "bookmarks.pre_roll".into(),
        line: Some(12),
        message: "\"10\" has no unit".into(),
    };
    assert_eq!(
        e.to_string(),
        "bookmarks.pre_roll (line 12): \"10\" has no unit"
    );
    let whole = ConfigError {
        path: String::new(),
        line: Some(3),
        message: "invalid string".into(),
    };
    assert_eq!(whole.to_string(), "line 3: invalid string");
}

#[test]
fn the_error_list_names_the_file_counts_the_errors_and_lists_each_on_its_own_line() {
    let errors = ConfigErrors {
        file: Some(PathBuf::from("/etc/tillmark.toml")),
        errors: invalid(MISTAKES),
    };
    let text = errors.to_string();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("/etc/tillmark.toml has 18 errors:"));
    assert_eq!(
        lines.next(),
        Some(
            "  - colour (line 1): unknown key; expected one of: alerts, bookmarks, camera_systems, cameras, \
             database, dead_letters, delivery, intake, integrations, metrics, mqtt, retention, rules, signing, \
             smtp, stores, web"
        )
    );
    assert_eq!(lines.count(), 17);
    let one = ConfigErrors {
        file: None,
        errors: invalid("[web]\nlisten = \"0.0.0.0:8080\"\n"),
    };
    assert!(
        one.to_string()
            .starts_with("the config has 1 error:\n  - web.listen (line 2): ")
    );
}

#[test]
fn loading_a_missing_file_says_it_cannot_be_read() {
    let path = Path::new("/nonexistent/tillmark.toml");
    let errors = Config::load(Some(path)).unwrap_err();
    assert_eq!(errors.file.as_deref(), Some(path));
    assert_eq!(errors.errors.len(), 1);
    assert!(
        errors.errors[0].message.starts_with("cannot read it: "),
        "{}",
        errors.errors[0].message
    );
    assert!(Config::load(None).is_ok(), "no file means the defaults");
}

// ---- Secrets ----

#[test]
fn a_secret_never_shows_its_value_in_debug_or_display() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "**REDACTED**");
    assert_eq!(format!("{secret}"), "**REDACTED**");
    assert_eq!(format!("{secret:#?}"), "**REDACTED**");
    assert_eq!(secret.expose(), "hunter2");
}

#[test]
fn the_debug_form_of_a_config_never_contains_a_password_or_api_key() {
    let text = format!(
        "[mqtt]\nurl = \"mqtt://broker\"\nusername = \"u\"\npassword_env = \"NX_PASSWORD\"\n{}\n{}",
        with_site(""),
        r#"
[[camera_systems]]
id = "hook"
integration = "webhook"
url = "https://hooks.example.com/"
api_key_env = "NX_PASSWORD"
client_id = "tillmark"
client_secret_env = "NX_PASSWORD"
refresh_token_env = "NX_PASSWORD"
"#
    );
    let config = valid(&text);
    assert!(config.mqtt.password.is_some());
    assert!(config.camera_systems[1].api_key.is_some());
    assert!(config.camera_systems[1].client_secret.is_some());
    assert!(config.camera_systems[1].refresh_token.is_some());
    for debug in [format!("{config:?}"), format!("{config:#?}")] {
        assert!(!debug.contains(NX_PASSWORD), "{debug}");
        assert!(debug.contains("**REDACTED**"));
    }
}

// ---- Camera clock offsets and per-camera rolls ----

/// A site whose [bookmarks] rolls are 5s and 15s, with the given `[[cameras]]` keys added to its camera.
fn with_camera(keys: &str) -> String {
    format!(
        "[bookmarks]\npre_roll = \"5s\"\npost_roll = \"15s\"\n{}{keys}\n",
        with_site("")
    )
}

#[test]
fn a_camera_offset_is_signed_and_its_rolls_default_to_the_bookmarks_section() {
    for (written, ms) in [
        ("\"-2.5s\"", -2_500),
        ("\"1500ms\"", 1_500),
        ("\"0s\"", 0),
        ("\"+3s\"", 3_000),
        ("\"-1h\"", -3_600_000),
    ] {
        let config = valid(&with_camera(&format!("offset = {written}")));
        let camera = &config.cameras[0];
        assert_eq!(camera.offset, Millis(ms), "offset = {written}");
        assert_eq!(camera.pre_roll, Millis(5_000));
        assert_eq!(camera.post_roll, Millis(15_000));
    }
    assert_eq!(valid(&with_camera("")).cameras[0].offset, Millis(0));
}

#[test]
fn a_camera_sets_its_own_rolls_and_keeps_the_section_default_for_the_other() {
    let config = valid(&with_camera("pre_roll = \"2s\""));
    assert_eq!(config.cameras[0].pre_roll, Millis(2_000));
    assert_eq!(config.cameras[0].post_roll, Millis(15_000));
    let config = valid(&with_camera("pre_roll = \"0s\"\npost_roll = \"1m\""));
    assert_eq!(config.cameras[0].pre_roll, Millis(0));
    assert_eq!(config.cameras[0].post_roll, Millis(60_000));
}

#[test]
fn a_camera_offset_that_is_not_a_duration_is_refused_on_its_line() {
    for (written, says) in [
        ("\"soon\"", "is not a duration"),
        ("\"-2.5\"", "has no unit"),
        ("\"2 fortnights\"", "unknown unit"),
        ("\"--2s\"", "is not a duration"),
    ] {
        let text = with_camera(&format!("offset = {written}"));
        let errors = invalid(&text);
        let e = error_at(&errors, "cameras[0].offset");
        assert!(
            e.message.contains(says),
            "offset = {written}: {}",
            e.message
        );
        assert_eq!(e.line, Some(line_of(&text, "offset =")));
    }
    let errors = invalid(&with_camera("offset = -2500"));
    assert_eq!(
        error_at(&errors, "cameras[0].offset").message,
        "expected a string, found integer"
    );
}

#[test]
fn a_camera_offset_beyond_an_hour_either_way_is_refused_as_a_misset_clock() {
    for written in ["\"61m\"", "\"-2h\"", "\"3600001ms\""] {
        let text = with_camera(&format!("offset = {written}"));
        let errors = invalid(&text);
        let e = error_at(&errors, "cameras[0].offset");
        assert_eq!(
            e.message,
            "must be between -1h and 1h: a camera clock further off than that is misconfigured; \
             set its time (NTP) instead of correcting it here",
            "offset = {written}"
        );
        assert_eq!(e.line, Some(line_of(&text, "offset =")));
    }
}

#[test]
fn a_cameras_rolls_follow_the_bookmarks_rules_on_their_own_lines() {
    let text = with_camera("pre_roll = \"0s\"\npost_roll = \"0s\"");
    let errors = invalid(&text);
    let e = error_at(&errors, "cameras[0].post_roll");
    assert_eq!(
        e.message,
        "pre_roll and post_roll cannot both be zero: a bookmark needs a length"
    );
    assert_eq!(e.line, Some(nth_line_of(&text, "post_roll =", 1)));

    let text = with_camera("pre_roll = \"-1s\"\npost_roll = \"2h\"");
    let errors = invalid(&text);
    for key in ["pre_roll", "post_roll"] {
        let e = error_at(&errors, &format!("cameras[0].{key}"));
        assert_eq!(e.message, "must be between 0s and 1h");
        // Line 0 of each is the [bookmarks] one.
        assert_eq!(e.line, Some(nth_line_of(&text, &format!("{key} ="), 1)));
    }
}

#[test]
fn a_camera_that_zeroes_the_one_roll_the_section_sets_has_no_length() {
    let text = format!(
        "[bookmarks]\npre_roll = \"0s\"\npost_roll = \"20s\"\n{}post_roll = \"0s\"\n",
        with_site("")
    );
    let errors = invalid(&text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        error_at(&errors, "cameras[0].post_roll").message,
        "pre_roll and post_roll cannot both be zero: a bookmark needs a length"
    );
}

// ---- OAuth2 credentials ----

const OAUTH_SYSTEM: &str = r#"
[[camera_systems]]
id = "cloud"
integration = "webhook"
url = "https://api.example.com/"
client_id = "tillmark-site-7"
client_secret_env = "CLOUD_CLIENT_SECRET"
refresh_token_env = "CLOUD_REFRESH_TOKEN"
"#;

#[test]
fn oauth2_credentials_read_the_client_id_from_the_file_and_the_secrets_from_the_environment() {
    let env = |name: &str| match name {
        "CLOUD_CLIENT_SECRET" => Some("cs-91d2".to_string()),
        "CLOUD_REFRESH_TOKEN" => Some("rt-5e0b".to_string()),
        _ => None,
    };
    let config = Config::parse(OAUTH_SYSTEM, &env).expect("valid");
    let cloud = config.camera_system("cloud").expect("the system");
    assert_eq!(cloud.client_id.as_deref(), Some("tillmark-site-7"));
    assert_eq!(
        cloud.client_secret.as_ref().map(Secret::expose),
        Some("cs-91d2")
    );
    assert_eq!(
        cloud.refresh_token.as_ref().map(Secret::expose),
        Some("rt-5e0b")
    );
}

#[test]
fn an_unset_oauth2_variable_is_named_on_its_line() {
    let errors = invalid(OAUTH_SYSTEM);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for (key, var) in [
        ("client_secret_env", "CLOUD_CLIENT_SECRET"),
        ("refresh_token_env", "CLOUD_REFRESH_TOKEN"),
    ] {
        let e = error_at(&errors, &format!("camera_systems[0].{key}"));
        assert_eq!(e.message, format!("environment variable {var} is not set"));
        assert_eq!(e.line, Some(line_of(OAUTH_SYSTEM, key)));
    }
}

#[test]
fn an_oauth2_secret_in_the_file_is_refused_like_a_password() {
    let text = r#"
[[camera_systems]]
id = "cloud"
integration = "webhook"
url = "https://api.example.com/"
client_id = "tillmark-site-7"
client_secret = "cs-91d2"
refresh_token = "rt-5e0b"
"#;
    let errors = invalid(text);
    for key in ["client_secret", "refresh_token"] {
        let e = error_at(&errors, &format!("camera_systems[0].{key}"));
        assert_eq!(
            e.message,
            format!(
                "secrets do not belong in the file: put it in an environment variable and name it with {key}_env"
            )
        );
        assert_eq!(e.line, Some(line_of(text, &format!("{key} ="))));
    }
    for e in &errors {
        assert!(!e.to_string().contains("cs-91d2") && !e.to_string().contains("rt-5e0b"));
    }
}

#[test]
fn an_oauth2_secret_without_a_client_id_asks_for_one() {
    let text = OAUTH_SYSTEM.replace("client_id = \"tillmark-site-7\"\n", "");
    let errors = Config::parse(&text, &|_| Some("set".into())).expect_err("no client id");
    assert_eq!(
        error_at(&errors, "camera_systems[0].client_id").message,
        "is required when client_secret_env or refresh_token_env is set"
    );
}

// ---- Broker URLs ----

#[test]
fn broker_urls_accept_mqtt_tcp_mqtts_and_a_bare_host_and_port() {
    let parse = |text| BrokerUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(
        parse("mqtt://broker.local:1884"),
        BrokerUrl {
            host: "broker.local".into(),
            port: 1884,
            tls: false
        }
    );
    assert_eq!(
        parse("tcp://10.0.0.5"),
        BrokerUrl {
            host: "10.0.0.5".into(),
            port: 1883,
            tls: false
        }
    );
    assert_eq!(
        parse("mqtts://broker.example.com"),
        BrokerUrl {
            host: "broker.example.com".into(),
            port: 8883,
            tls: true
        }
    );
    assert_eq!(parse("ssl://broker.example.com:8884").port, 8884);
    assert!(parse("ssl://broker.example.com").tls);
    assert_eq!(
        parse("127.0.0.1:1883"),
        BrokerUrl {
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false
        }
    );
    assert_eq!(parse("broker.local").port, 1883);
    assert_eq!(
        parse("mqtt://[::1]:1883").host,
        "[::1]",
        "kept in brackets, as the client joins host and port"
    );
}

#[test]
fn a_broker_url_displays_with_its_scheme_and_port() {
    assert_eq!(
        BrokerUrl::parse("broker.local").unwrap().to_string(),
        "mqtt://broker.local:1883"
    );
    assert_eq!(
        BrokerUrl::parse("ssl://b.example.com").unwrap().to_string(),
        "mqtts://b.example.com:8883"
    );
}

#[test]
fn an_http_broker_url_is_refused_naming_the_schemes_to_use() {
    assert_eq!(
        BrokerUrl::parse("http://broker.local:1883").unwrap_err(),
        "scheme \"http\" is not supported: use mqtt:// or mqtts://"
    );
    assert_eq!(
        BrokerUrl::parse("ws://broker.local:8083/mqtt").unwrap_err(),
        "scheme \"ws\" is not supported: use mqtt:// or mqtts://"
    );
    assert!(BrokerUrl::parse("mqtt://").is_err());
    assert!(BrokerUrl::parse("").is_err());
}

#[test]
fn credentials_inside_a_url_are_refused_so_they_never_sit_in_the_file() {
    let text = r#"
[mqtt]
url = "mqtt://bridge:hunter2@broker.example:1883"
[[camera_systems]]
id = "nvr"
integration = "webhook"
url = "https://admin:hunter2@192.0.2.10/hook"
"#;
    let errors = Config::parse(text, &|_| None).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["mqtt.url", "camera_systems[0].url"], "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.message.contains("use username and password_env")
                && !e.message.contains("hunter2"))
    );
}

#[test]
fn the_index_may_be_bound_to_localhost_by_name() {
    let config = Config::parse("[web]\nlisten = \"localhost:9090\"\n", &|_| None).unwrap();
    assert_eq!(config.web.listen, "127.0.0.1:9090".parse().unwrap());
}

/// PEM files for `[mqtt]` TLS in a temporary folder: a CA, a client certificate it signed with its key, and a key
/// of another pair.
struct MqttTlsFilesOnDisk {
    dir: tempfile::TempDir,
}

impl MqttTlsFilesOnDisk {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["tillmark".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        for (name, text) in [
            ("ca.pem", ca_pem),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
            (
                "other.key",
                rcgen::KeyPair::generate().unwrap().serialize_pem(),
            ),
            ("notes.txt", "not a certificate\n".to_string()),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        MqttTlsFilesOnDisk { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `[mqtt]` with `url` and each `(key, file)` pointing into the folder.
    fn config(&self, url: &str, keys: &[(&str, &str)]) -> String {
        let mut text = format!("[mqtt]\nurl = \"{url}\"\n");
        for (key, file) in keys {
            text += &format!("{key} = \"{}\"\n", self.path(file));
        }
        text
    }

    fn error(&self, keys: &[(&str, &str)], key: &str) -> String {
        let text = self.config("mqtts://broker.example.com", keys);
        let errors = invalid(&text);
        let error = error_at(&errors, &format!("mqtt.{key}"));
        assert_eq!(error.line, Some(line_of(&text, &format!("{key} ="))));
        error.message.clone()
    }
}

#[test]
fn mqtts_with_a_private_ca_and_a_client_certificate_loads_and_debug_shows_only_the_paths() {
    let files = MqttTlsFilesOnDisk::new();
    let config = valid(&files.config(
        "mqtts://broker.example.com",
        &[
            ("tls_ca", "ca.pem"),
            ("client_cert", "client.pem"),
            ("client_key", "client.key"),
        ],
    ));
    assert!(config.mqtt.tls.is_some());
    let shown = format!("{config:?}");
    assert!(shown.contains(&files.path("ca.pem")), "{shown}");
    let key = std::fs::read_to_string(files.path("client.key")).unwrap();
    let key_body = key.lines().nth(1).expect("a PEM body line");
    assert!(!shown.contains(key_body), "the key is not shown: {shown}");
    assert!(!shown.contains("BEGIN"), "no PEM is shown: {shown}");
}

#[test]
fn mqtts_without_tls_ca_trusts_the_systems_roots() {
    let config = valid("[mqtt]\nurl = \"mqtts://broker.example.com\"\n");
    assert!(config.mqtt.tls.is_some());
    assert!(
        valid("[mqtt]\nurl = \"mqtt://broker\"\n")
            .mqtt
            .tls
            .is_none()
    );
}

#[test]
fn an_unreadable_tls_file_is_named_at_its_key() {
    let files = MqttTlsFilesOnDisk::new();
    let message = files.error(&[("tls_ca", "missing.pem")], "tls_ca");
    assert!(message.starts_with("cannot read \""), "{message}");
    assert!(message.contains("missing.pem"), "{message}");
}

#[test]
fn a_tls_ca_without_a_certificate_is_refused() {
    let files = MqttTlsFilesOnDisk::new();
    for file in ["notes.txt", "client.key"] {
        let message = files.error(&[("tls_ca", file)], "tls_ca");
        assert!(message.contains("holds no certificate"), "{message}");
    }
}

#[test]
fn a_client_key_that_holds_no_key_or_another_pairs_key_is_refused() {
    let files = MqttTlsFilesOnDisk::new();
    let no_key = files.error(
        &[("client_cert", "client.pem"), ("client_key", "client.pem")],
        "client_key",
    );
    assert!(no_key.contains("holds no private key"), "{no_key}");
    let other = files.error(
        &[("client_cert", "client.pem"), ("client_key", "other.key")],
        "client_key",
    );
    assert!(
        other.contains("it is not the key of the certificate in client_cert"),
        "{other}"
    );
    let not_a_cert = files.error(
        &[("client_cert", "client.key"), ("client_key", "client.key")],
        "client_cert",
    );
    assert!(not_a_cert.contains("holds no certificate"), "{not_a_cert}");
}

#[test]
fn a_client_certificate_needs_its_key_and_the_key_its_certificate() {
    let files = MqttTlsFilesOnDisk::new();
    let url = "mqtts://broker.example.com";
    let errors = invalid(&files.config(url, &[("client_cert", "client.pem")]));
    assert_eq!(
        error_at(&errors, "mqtt.client_key").message,
        "client_cert needs client_key, the certificate's private key"
    );
    let errors = invalid(&files.config(url, &[("client_key", "client.key")]));
    assert_eq!(
        error_at(&errors, "mqtt.client_cert").message,
        "client_key needs client_cert, the certificate it belongs to"
    );
}

#[test]
fn tls_settings_with_a_plain_url_or_the_embedded_broker_are_refused() {
    let files = MqttTlsFilesOnDisk::new();
    let text = files.config(
        "mqtt://broker.example.com",
        &[
            ("tls_ca", "ca.pem"),
            ("client_cert", "client.pem"),
            ("client_key", "client.key"),
        ],
    );
    let errors = invalid(&text);
    for key in ["tls_ca", "client_cert", "client_key"] {
        let e = error_at(&errors, &format!("mqtt.{key}"));
        assert_eq!(e.line, Some(line_of(&text, &format!("{key} ="))));
        assert_eq!(
            e.message,
            "is for a TLS connection, but url is plain mqtt://: use an mqtts:// url"
        );
    }
    let embedded = format!("[mqtt]\ntls_ca = \"{}\"\n", files.path("ca.pem"));
    let errors = invalid(&embedded);
    assert!(
        error_at(&errors, "mqtt.tls_ca")
            .message
            .contains("set url = \"mqtts://HOST:PORT\""),
        "{errors:?}"
    );
}

#[test]
fn signing_keys_are_read_per_register_and_per_store_and_the_registers_own_key_wins() {
    let text = r#"
[signing]
mode = "required"
[[signing.keys]]
register = "shibuya-01/r1"
key_env = "NX_PASSWORD"
[[signing.keys]]
register = "shibuya-01/*"
key_env = "NX_PASSWORD"
"#;
    let env = |name: &str| match name {
        "NX_PASSWORD" => Some("a-register-key-of-32-characters!".to_string()),
        _ => None,
    };
    let config = Config::parse(text, &env).expect("valid");
    assert_eq!(config.signing.mode, crate::event::SigningMode::Required);
    assert_eq!(config.signing.keys.len(), 2);
    assert!(config.signing.key_for("shibuya-01", "r7").is_some());
    assert!(config.signing.key_for("osaka-01", "r1").is_none());
    assert_eq!(
        config.signing.keys[0].scope.register.as_deref(),
        Some("r1"),
        "the register's own key comes first"
    );
    assert_eq!(config.intake.max_age, Millis(400 * 86_400_000));
}

#[test]
fn signing_mistakes_each_name_their_line_and_how_to_fix_them() {
    let text = r#"[signing]
mode = "always"
[[signing.keys]]
register = "shibuya-01"
key_env = "NX_PASSWORD"
[[signing.keys]]
register = "osaka-01/r1"
key_env = "UNSET_KEY"
[intake]
max_ahead = "10s"
"#;
    let errors = invalid(text);
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(
        has(
            "signing.mode (line 2): \"always\" is not a signing mode: use off, optional or required"
        ),
        "{messages:#?}"
    );
    assert!(
        has("(line 4): \"shibuya-01\" must be \"store/register\" or \"store/*\""),
        "{messages:#?}"
    );
    assert!(
        has("shorter than 16 characters: make one with `openssl rand -hex 32`"),
        "{messages:#?}"
    );
    assert!(
        has("(line 8): environment variable UNSET_KEY is not set"),
        "{messages:#?}"
    );
    assert!(
        has("intake.max_ahead (line 10): must be at least 1m"),
        "{messages:#?}"
    );
}

#[test]
fn required_signing_without_any_key_is_refused() {
    let errors = invalid("[signing]\nmode = \"required\"\n");
    assert!(
        errors[0]
            .message
            .contains("needs at least one [[signing.keys]]"),
        "{errors:?}"
    );
}

// ---- [dead_letters] ----

#[test]
fn dead_letters_are_kept_thirty_days_and_64_mib_unless_the_file_says_otherwise() {
    let config = valid("");
    assert_eq!(config.retention.dead_letters, Millis(30 * 86_400_000));
    assert_eq!(config.dead_letters.max_total, Bytes(64 * 1024 * 1024));

    let config = valid("[dead_letters]\nkeep_for = \"7d\"\nmax_total = \"1.5GiB\"\n");
    assert_eq!(config.retention.dead_letters, Millis(7 * 86_400_000));
    assert_eq!(config.dead_letters.max_total, Bytes(1_610_612_736));
    let config = valid("[dead_letters]\nkeep_for = \"36h\"\n");
    assert_eq!(config.retention.dead_letters, Millis(36 * 3_600_000));
    assert_eq!(config.dead_letters.max_total, Bytes(64 * 1024 * 1024));
}

#[test]
fn the_sample_file_documents_the_dead_letter_and_retention_defaults() {
    let sample = valid(include_str!("../../examples/tillmark.toml"));
    let defaults = valid("");
    assert_eq!(sample.retention, defaults.retention);
    assert_eq!(
        sample.dead_letters.max_total,
        defaults.dead_letters.max_total
    );
}

#[test]
fn dead_letter_bounds_too_small_or_without_a_unit_are_refused_on_their_lines() {
    let text = "[dead_letters]\nkeep_for = \"10m\"\nmax_total = \"100KiB\"\n";
    let errors = invalid(text);
    let keep = error_at(&errors, "dead_letters.keep_for");
    assert_eq!(keep.line, Some(line_of(text, "keep_for")));
    assert_eq!(
        keep.message,
        "must be at least 1h: a shorter time removes letters before anyone reads them"
    );
    let max = error_at(&errors, "dead_letters.max_total");
    assert_eq!(max.line, Some(line_of(text, "max_total")));
    assert_eq!(
        max.message,
        "must be at least 1MiB: a smaller bound keeps only a few letters"
    );

    let text = "[dead_letters]\nkeep_for = \"30\"\nmax_total = \"64\"\nkeep = \"1d\"\n";
    let errors = invalid(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        error_at(&errors, "dead_letters.keep_for")
            .message
            .contains("has no unit")
    );
    let max = error_at(&errors, "dead_letters.max_total");
    assert_eq!(
        max.message,
        "\"64\" has no unit: write it like \"64MiB\", \"512KiB\" or \"1GiB\""
    );
    assert!(
        error_at(&errors, "dead_letters.keep")
            .message
            .starts_with("unknown key; expected one of: keep_for, max_total"),
        "{errors:#?}"
    );
}

// ---- [retention] ----

#[test]
fn retention_keeps_events_400_days_and_the_audit_log_three_years_unless_the_file_says_otherwise() {
    let config = valid("");
    assert_eq!(config.retention.events, Millis(400 * 86_400_000));
    assert_eq!(config.retention.audit_log, Millis(3 * 365 * 86_400_000));
    assert_eq!(config.retention.dead_letters, Millis(30 * 86_400_000));
    assert_eq!(config.retention.sessions, config.web.session_idle);

    let config = valid(
        "[web]\nsession_idle = \"30m\"\n[retention]\nevents = \"90d\"\ndead_letters = \"2d\"\n\
         sessions = \"7d\"\naudit_log = \"10y\"\n",
    );
    assert_eq!(config.retention.events, Millis(90 * 86_400_000));
    assert_eq!(config.retention.dead_letters, Millis(2 * 86_400_000));
    assert_eq!(config.retention.sessions, Millis(7 * 86_400_000));
    assert_eq!(config.retention.audit_log, Millis(3650 * 86_400_000));
    // Without sessions, an unused session's row goes when the session has ended.
    let config = valid("[web]\nsession_idle = \"30m\"\n");
    assert_eq!(config.retention.sessions, Millis(1_800_000));
}

#[test]
fn retention_values_too_short_forever_or_without_a_unit_are_refused_naming_the_key_and_line() {
    let text = "[retention]\nevents = \"7d\"\ndead_letters = \"10m\"\nsessions = \"1h\"\n\
                audit_log = \"forever\"\n";
    let errors = invalid(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let events = error_at(&errors, "retention.events");
    assert_eq!(events.line, Some(line_of(text, "events")));
    assert_eq!(
        events.message,
        "must be at least 30d: a shorter time removes events before a month's review of them"
    );
    assert!(
        error_at(&errors, "retention.dead_letters")
            .message
            .starts_with("must be at least 1h")
    );
    assert_eq!(
        error_at(&errors, "retention.sessions").message,
        "must be at least 8h: [web] session_idle keeps an unused session that long, and its row must outlast it"
    );
    let audit = error_at(&errors, "retention.audit_log");
    assert_eq!(audit.line, Some(line_of(text, "audit_log")));
    assert!(
        audit.message.starts_with(
            "\"forever\" is not a retention: write how long, like \"1y\", at most 10y."
        ),
        "{audit:?}"
    );

    let text = "[retention]\nevents = \"400\"\naudit_log = \"11y\"\nkeep = \"1d\"\n";
    let errors = invalid(text);
    assert!(
        error_at(&errors, "retention.events")
            .message
            .contains("has no unit")
    );
    assert!(
        error_at(&errors, "retention.audit_log")
            .message
            .contains("out of range")
    );
    assert!(
        error_at(&errors, "retention.keep")
            .message
            .starts_with("unknown key; expected one of: audit_log, dead_letters, events, sessions")
    );
}

#[test]
fn the_dead_letter_age_is_set_in_one_place_and_the_old_keep_for_still_works() {
    let config = valid("[dead_letters]\nkeep_for = \"7d\"\n");
    assert_eq!(config.retention.dead_letters, Millis(7 * 86_400_000));
    let text = "[dead_letters]\nkeep_for = \"7d\"\n[retention]\ndead_letters = \"2d\"\n";
    let errors = invalid(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let both = error_at(&errors, "dead_letters.keep_for");
    assert_eq!(both.line, Some(line_of(text, "keep_for")));
    assert_eq!(
        both.message,
        "is the older name of [retention] dead_letters, which is set too: keep only that one"
    );
}

// ---- The embedded broker's TLS and logins ----

/// A self-signed certificate and its key written as PEM files in a fresh directory.
fn pem_files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("a certificate");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (c, k) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    (dir, c, k)
}

#[test]
fn the_embedded_broker_takes_tls_files_and_logins_bound_to_a_register_or_a_store() {
    let (_dir, cert, key) = pem_files();
    let text = format!(
        "[mqtt]\nembedded_listen = \"0.0.0.0:8883\"\nembedded_tls_cert = \"{cert}\"\nembedded_tls_key = \"{key}\"\n\
         [[mqtt.clients]]\nusername = \"shibuya-01-r1\"\npassword_env = \"NX_PASSWORD\"\nregister = \"shibuya-01/r1\"\n\
         [[mqtt.clients]]\nusername = \"osaka\"\npassword_env = \"NX_PASSWORD\"\nregister = \"osaka-03/*\"\n"
    );
    let config = valid(&text);
    let tls = config.mqtt.embedded_tls.as_ref().expect("TLS files");
    assert_eq!(tls.cert.display().to_string(), cert);
    assert_eq!(tls.key.display().to_string(), key);
    let clients = &config.mqtt.clients;
    assert_eq!(clients.len(), 2);
    assert_eq!(clients[0].username, "shibuya-01-r1");
    assert_eq!(clients[0].password.expose(), NX_PASSWORD);
    assert!(clients[0].register.covers("shibuya-01", "r1"));
    assert!(!clients[0].register.covers("shibuya-01", "r2"));
    assert!(clients[1].register.covers("osaka-03", "r7"));
    assert!(!clients[1].register.covers("shibuya-01", "r1"));
    assert!(
        !format!("{:?}", config.mqtt).contains(NX_PASSWORD),
        "the password is never shown"
    );
}

#[test]
fn by_default_the_embedded_broker_is_open_on_loopback_and_plain() {
    let config = valid("");
    assert!(config.mqtt.embedded_tls.is_none());
    assert!(config.mqtt.clients.is_empty());
}

#[test]
fn a_login_without_its_password_or_with_a_bad_register_is_reported_with_its_line() {
    let text = "[mqtt]\n\
        [[mqtt.clients]]\nusername = \"r1\"\npassword_env = \"NOT_SET\"\nregister = \"shibuya-01/r1\"\n\
        [[mqtt.clients]]\nusername = \"r1\"\nregister = \"shibuya-01\"\n\
        [[mqtt.clients]]\nusername = \"r3\"\npassword_env = \"NX_PASSWORD\"\nregister = \"shibuya-01/r*\"\npassword = \"x\"\n";
    let errors = invalid(text);
    let unset = error_at(&errors, "mqtt.clients[0].password_env");
    assert_eq!(unset.message, "environment variable NOT_SET is not set");
    assert_eq!(unset.line, Some(line_of(text, "NOT_SET")));
    assert!(
        error_at(&errors, "mqtt.clients[1].password_env")
            .message
            .starts_with("is required")
    );
    let register = error_at(&errors, "mqtt.clients[1].register");
    assert!(
        register
            .message
            .contains("\"store/register\" or \"store/*\"")
    );
    assert_eq!(register.line, Some(line_of(text, "\"shibuya-01\"")));
    assert!(
        error_at(&errors, "mqtt.clients[1].username")
            .message
            .contains("used by an earlier login")
    );
    assert!(
        error_at(&errors, "mqtt.clients[2].register")
            .message
            .contains("store/*")
    );
    assert_eq!(
        error_at(&errors, "mqtt.clients[2].password").line,
        Some(line_of(text, "password = \"x\"")),
        "a password in the file is refused"
    );
}

#[test]
fn the_embedded_broker_beyond_loopback_needs_tls_and_logins() {
    let (_dir, cert, key) = pem_files();
    let tls = format!("embedded_tls_cert = \"{cert}\"\nembedded_tls_key = \"{key}\"\n");
    let login = "[[mqtt.clients]]\nusername = \"r1\"\npassword_env = \"NX_PASSWORD\"\nregister = \"s/r1\"\n";

    let bare = invalid("[mqtt]\nembedded_listen = \"0.0.0.0:1883\"\n");
    let e = error_at(&bare, "mqtt.embedded_listen");
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("embedded_tls_cert and embedded_tls_key"),
        "{}",
        e.message
    );
    assert!(e.message.contains("[[mqtt.clients]]"), "{}", e.message);

    let tls_only = invalid(&format!(
        "[mqtt]\nembedded_listen = \"0.0.0.0:8883\"\n{tls}"
    ));
    let e = error_at(&tls_only, "mqtt.embedded_listen");
    assert!(!e.message.contains("embedded_tls_cert"), "{}", e.message);
    assert!(e.message.contains("[[mqtt.clients]]"), "{}", e.message);

    let logins_only = invalid(&format!(
        "[mqtt]\nembedded_listen = \"0.0.0.0:8883\"\n{login}"
    ));
    let e = error_at(&logins_only, "mqtt.embedded_listen");
    assert!(e.message.contains("embedded_tls_cert"), "{}", e.message);
    assert!(!e.message.contains("[[mqtt.clients]]"), "{}", e.message);

    let empty_logins = invalid(&format!(
        "[mqtt]\nembedded_listen = \"0.0.0.0:8883\"\nclients = []\n{tls}"
    ));
    let e = error_at(&empty_logins, "mqtt.embedded_listen");
    assert!(e.message.contains("[[mqtt.clients]]"), "{}", e.message);

    valid(&format!(
        "[mqtt]\nembedded_listen = \"0.0.0.0:8883\"\n{tls}{login}"
    ));
    valid("[mqtt]\nembedded_listen = \"[::1]:1883\"\n");
    valid("[mqtt]\nurl = \"mqtt://broker\"\nembedded_listen = \"0.0.0.0:1883\"\n");
}

#[test]
fn embedded_tls_files_that_are_missing_or_not_pem_are_reported_at_load() {
    let (_dir, cert, key) = pem_files();
    let text = format!("[mqtt]\nembedded_tls_cert = \"{key}\"\nembedded_tls_key = \"{cert}\"\n");
    let errors = invalid(&text);
    let e = error_at(&errors, "mqtt.embedded_tls_cert");
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("holds no PEM certificate"),
        "{}",
        e.message
    );
    let e = error_at(&errors, "mqtt.embedded_tls_key");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("no PEM private key"), "{}", e.message);

    let missing = invalid(
        "[mqtt]\nembedded_tls_cert = \"/nonexistent/c.pem\"\nembedded_tls_key = \"/nonexistent/k.pem\"\n",
    );
    assert!(
        error_at(&missing, "mqtt.embedded_tls_cert")
            .message
            .starts_with("cannot read /nonexistent/c.pem")
    );
    let half = invalid(&format!("[mqtt]\nembedded_tls_cert = \"{cert}\"\n"));
    assert!(
        error_at(&half, "mqtt.embedded_tls_key")
            .message
            .contains("needs embedded_tls_key")
    );
}

#[test]
fn receive_maximum_defaults_to_ten_thousand_and_must_fit_mqtt_5() {
    assert_eq!(valid("").mqtt.receive_maximum, 10_000);
    assert_eq!(
        valid("[mqtt]\nreceive_maximum = 500\n")
            .mqtt
            .receive_maximum,
        500
    );
    for bad in ["0", "65536"] {
        let errors = invalid(&format!("[mqtt]\nreceive_maximum = {bad}\n"));
        assert_eq!(
            error_at(&errors, "mqtt.receive_maximum").message,
            "must be between 1 and 65535"
        );
    }
}

#[test]
fn a_shared_group_subscribes_each_topic_as_share_and_needs_an_external_broker_and_a_plain_name() {
    let config = valid(
        "[mqtt]\nurl = \"mqtt://broker.example:1883\"\nclient_id = \"tillmark-2\"\nshared_group = \"lp-desk\"\ntopics = [\"pos/+/+/events\", \"bridge/#\"]\n",
    );
    assert_eq!(
        config.mqtt.filter("pos/+/+/events"),
        "$share/lp-desk/pos/+/+/events"
    );
    assert_eq!(config.mqtt.filter("bridge/#"), "$share/lp-desk/bridge/#");
    assert_eq!(valid("").mqtt.filter("pos/+/+/events"), "pos/+/+/events");

    let errors = invalid("[mqtt]\nshared_group = \"lp\"\n");
    assert!(
        error_at(&errors, "mqtt.shared_group")
            .message
            .contains("several daemons on one external broker"),
        "{errors:?}"
    );
    for bad in ["", "lp/desk", "lp+", "#", "$share"] {
        let errors = invalid(&format!(
            "[mqtt]\nurl = \"mqtt://broker.example:1883\"\nshared_group = \"{bad}\"\n"
        ));
        assert!(
            error_at(&errors, "mqtt.shared_group")
                .message
                .starts_with("must be a name of 1 to 64 characters"),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn delivery_daemons_is_how_many_share_each_vendors_rate() {
    assert_eq!(valid("").delivery.daemons, 1);
    assert_eq!(valid("[delivery]\ndaemons = 3\n").delivery.daemons, 3);
    for bad in ["0", "65"] {
        let errors = invalid(&format!("[delivery]\ndaemons = {bad}\n"));
        assert_eq!(
            error_at(&errors, "delivery.daemons").message,
            "must be between 1 and 64"
        );
    }
}

#[test]
fn a_postgres_url_is_taken_and_one_holding_a_password_is_refused_without_repeating_it() {
    let url = "postgres://tillmark@db.internal:5432/tillmark?sslmode=verify-full";
    assert_eq!(
        valid(&format!("[database]\nurl = \"{url}\"\n"))
            .database
            .url,
        url
    );
    for bad in [
        "postgres://tillmark:hunter2-secret@db.internal/tillmark",
        "postgresql://tillmark@db.internal/tillmark?sslmode=require&password=hunter2-secret",
    ] {
        let errors = invalid(&format!("[database]\nurl = \"{bad}\"\n"));
        let e = error_at(&errors, "database.url");
        assert!(e.message.contains("holds a password"), "{e:?}");
        assert!(
            !e.message.contains("hunter2"),
            "the error repeats the password: {e:?}"
        );
    }
}
