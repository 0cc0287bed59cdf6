//! Camera systems as operators write them (the config tests' sample site), held against the built-in
//! definitions and the repository's `integrations` folder (the config's default), each mistake with the key
//! path and line reading gave it.

use super::*;
use crate::camera::definition::load_all;
use crate::config::tests::{env, error_at, with_site};

/// The config read and held against the definitions it would run with, as `check-config` does.
fn check(text: &str) -> Result<Config, Vec<ConfigError>> {
    let config = Config::parse(text, &env)?;
    check_site(&config, &load_all(&config.integrations.dir)).map(|()| config)
}

fn valid(text: &str) -> Config {
    check(text).unwrap_or_else(|errors| panic!("expected a valid site, got: {errors:#?}"))
}

fn invalid(text: &str) -> Vec<ConfigError> {
    match check(text) {
        Ok(config) => panic!("expected errors, got a config: {config:?}"),
        Err(errors) => errors,
    }
}

#[test]
fn allowed_hosts_are_hosts_the_definition_declares_and_anything_else_is_named() {
    let system = |integration: &str, hosts: &str| {
        with_site(&format!(
            "\n[[camera_systems]]\nid = \"een\"\nintegration = \"{integration}\"\nurl = \"https://api.example.com/\"\n\
             client_id = \"tillmark\"\nclient_secret_env = \"NX_PASSWORD\"\nrefresh_token_env = \"NX_PASSWORD\"\n\
             allowed_hosts = {hosts}\n[camera_systems.options]\naccount_id = \"1\"\nevent_type = \"e\"\n"
        ))
    };
    let config = valid(&system("eagle-eye", r#"["Auth.EagleEyeNetworks.com"]"#));
    assert_eq!(
        config.camera_systems[1].allowed_hosts,
        ["auth.eagleeyenetworks.com"]
    );
    // A well-formed host the definition never contacts: allowing it would let nothing through but a mistake.
    let text = system("eagle-eye", r#"["10.0.0.5:8443"]"#);
    let errors = invalid(&text);
    assert_eq!(errors[0].path, "camera_systems[1].allowed_hosts");
    assert_eq!(
        errors[0].line,
        text.lines()
            .position(|l| l.contains("10.0.0.5"))
            .map(|i| i + 1)
    );
    assert_eq!(
        errors[0].message,
        "\"10.0.0.5:8443\" is not a host the eagle-eye definition contacts (it declares \
         auth.eagleeyenetworks.com, the host of options.token_url): remove it"
    );
    let errors = invalid(&system("webhook", r#"["auth.example.com"]"#));
    assert_eq!(
        errors[0].message,
        "\"auth.example.com\" is not a host the webhook definition contacts (it declares none besides the \
         system's url): remove it"
    );
}

#[test]
fn an_nx_witness_system_needs_a_username_and_a_password_variable() {
    let text = r#"
[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://192.0.2.10:7001"
"#;
    let errors = invalid(text);
    assert_eq!(
        error_at(&errors, "camera_systems[0].username").message,
        "is required by the nx-witness definition (login auth)"
    );
    assert_eq!(
        error_at(&errors, "camera_systems[0].password_env").message,
        "is required by the nx-witness definition (login auth)"
    );
    // A missing key is placed on its section's header line, as a missing required key is.
    assert_eq!(
        error_at(&errors, "camera_systems[0].username").line,
        Some(2)
    );
}

#[test]
fn a_footage_link_that_would_run_a_script_is_refused() {
    for (tpl, ok) in [
        ("javascript:alert(document.cookie)", false),
        ("data:text/html,<script>1</script>", false),
        ("{{ host }}/view", false),
        ("https://{{ host }}/view?t={{ start_ms }}", true),
        ("nx-vms://nxvms.com/client/{{ host }}/view", true),
    ] {
        let text = format!(
            "[[camera_systems]]\nid = \"nvr\"\nintegration = \"webhook\"\nurl = \"https://192.0.2.10/hook\"\nweb_viewer_url = \"{tpl}\"\n"
        );
        let result = check(&text);
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(errors)) => {
                let e = error_at(&errors, "camera_systems[0].web_viewer_url");
                assert!(e.message.starts_with("must begin with https://"), "{e}");
                assert_eq!(e.line, Some(5));
            }
            (ok, other) => panic!("{tpl}: expected ok={ok}, got {other:?}"),
        }
    }
}

#[test]
fn a_footage_link_that_does_not_compile_is_a_template_error_on_its_line() {
    let text = "[[camera_systems]]\nid = \"nvr\"\nintegration = \"webhook\"\nurl = \"https://192.0.2.10/hook\"\n\
                web_viewer_url = \"https://{{ host }/view\"\n";
    let errors = invalid(text);
    let e = error_at(&errors, "camera_systems[0].web_viewer_url");
    assert!(e.message.starts_with("template error: "), "{e}");
    assert_eq!(e.line, Some(5));
}

#[tokio::test]
async fn the_daemon_refuses_to_start_with_a_system_its_definition_cannot_authenticate() {
    let text = "[[camera_systems]]\nid = \"nvr\"\nintegration = \"nx-witness\"\nurl = \"https://192.0.2.10:7001\"\n";
    let mut config = Config::parse(text, &env).expect("the file alone is valid");
    // Refused before anything opens: the database named here is never created.
    let dir = tempfile::tempdir().unwrap();
    config.database.url = format!("sqlite://{}", dir.path().join("never.db").display());
    match crate::Daemon::start(config).await {
        Err(crate::StartError::Site(e)) => assert_eq!(
            e.to_string(),
            "the config has 2 errors:\n  \
             - camera_systems[0].username (line 1): is required by the nx-witness definition (login auth)\n  \
             - camera_systems[0].password_env (line 1): is required by the nx-witness definition (login auth)\n"
        ),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("started"),
    }
    assert!(!dir.path().join("never.db").exists());
}
