//! Who may see what in the index: sign-in, sessions, CSRF, throttling, API tokens, roles, store scopes and the
//! audit log, against the real router on a real port and a real SQLite file. The scope tests walk
//! `tillmark::web::ROUTES`, the list the router itself is built from, so a new route is covered the day it
//! is added.

mod web_support;

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};
use tillmark::config::Config;
use tillmark::store::AuditQuery;
use tillmark::web::{PUBLIC_ROUTES, ROUTES};
use web_support::*;

#[tokio::test]
async fn every_route_but_health_sign_in_and_the_stylesheet_refuses_a_visitor_who_is_not_signed_in()
{
    let site = Site::start("").await;
    assert!(
        ROUTES.len() >= 20,
        "the route list is the router's: {ROUTES:?}"
    );
    for (method, path) in ROUTES {
        let method = method.to_uppercase();
        let path = site.osaka_path(path);
        let (status, headers, body) = site.send(&method, &path, None).await;
        if PUBLIC_ROUTES.contains(&path.as_str()) {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_ne!(status, StatusCode::SEE_OTHER, "{method} {path}");
            continue;
        }
        assert!(
            !OSAKA_MARKS
                .iter()
                .chain(&["T-SHIBUYA-1"])
                .any(|m| body.contains(m)),
            "{method} {path} shows events to a visitor: {body}"
        );
        if path.starts_with("/api/") {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(body.contains("sign in first"), "{body}");
        } else {
            assert_eq!(status, StatusCode::SEE_OTHER, "{method} {path}: {body}");
            assert!(
                location(&headers).starts_with("/login?next="),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn an_investigator_of_one_store_gets_nothing_of_another_on_any_route_nor_by_guessing_its_urls()
 {
    let site = Site::start("").await;
    // The same walk as the owner first: Osaka's event is there to be leaked, so the walk can fail.
    let (status, owner_view) = site
        .get_as("aiko", &format!("/events/{}", site.osaka_seq))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(owner_view.contains("T-OSAKA-77"));
    let (_, mine) = site.get_as("ken", "/?q=返品").await;
    assert!(
        mine.contains("T-SHIBUYA-1"),
        "Ken sees his own store: {mine}"
    );

    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "get") {
        let path = site.osaka_path(path);
        // Every way of asking for Osaka: its ids in the path, its name in every filter a route takes.
        for query in [
            "",
            "?store=osaka-02",
            "?store=osaka-02&register=r1&from=2026-11-21T00:00&to=2026-11-22T00:00",
            "?q=T-OSAKA-77",
            "?txn=T-OSAKA-77",
            "?cashier=c-osaka-9",
        ] {
            let url = format!("{path}{query}");
            let (status, body) = site.get_as("ken", &url).await;
            // A form shows again what was typed into it; nothing else of Osaka may show.
            let typed = url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .map(|(_, v)| v.into_owned());
            let shown = typed.fold(body.clone(), |text, v| text.replace(&v, ""));
            for mark in OSAKA_MARKS {
                assert!(
                    !shown.contains(mark),
                    "{method} {url} ({status}) shows {mark}: {body}"
                );
            }
        }
    }
    for path in [
        format!("/events/{}", site.osaka_seq),
        format!("/events/{}/footage/0", site.osaka_seq),
        format!(
            "/events/{}/bookmarks/{}/thumbnail",
            site.osaka_seq, site.osaka_bookmark
        ),
        format!("/api/events/{}", site.osaka_seq),
    ] {
        let (status, _) = site.get_as("ken", &path).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path}: another store's event is not found"
        );
    }
    let (_, api) = site.get_as("ken", "/api/events?store=osaka-02").await;
    assert_eq!(
        serde_json::from_str::<Value>(&api).unwrap()["events"],
        json!([])
    );
}

#[tokio::test]
async fn an_investigator_of_shibuya_filtering_by_an_osaka_transaction_gets_nothing() {
    let site = Site::start("").await;
    let listed = |html: &str, seq: i64| html.contains(&format!("href=\"/events/{seq}\""));
    // The owner finds Osaka's transaction by its number, so the filter is there to leak it.
    let (status, owner) = site.get_as("aiko", "/?txn=T-OSAKA-77").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed(&owner, site.osaka_seq), "{owner}");
    assert!(!listed(&owner, site.shibuya_seq), "only that transaction");
    let (_, api) = site.get_as("aiko", "/api/events?txn=T-OSAKA-77").await;
    let events = serde_json::from_str::<Value>(&api).unwrap()["events"].clone();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{api}");

    for query in ["txn=T-OSAKA-77", "store=osaka-02&txn=T-OSAKA-77"] {
        let (status, mine) = site.get_as("ken", &format!("/?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!listed(&mine, site.osaka_seq), "{query}: {mine}");
        for mark in ["c-osaka-9", "cam-osaka"] {
            assert!(!mine.contains(mark), "{query} shows {mark}: {mine}");
        }
        let (_, api) = site.get_as("ken", &format!("/api/events?{query}")).await;
        assert_eq!(
            serde_json::from_str::<Value>(&api).unwrap()["events"],
            json!([]),
            "{query}"
        );
    }
    // His own transaction he finds the same way.
    let (_, mine) = site.get_as("ken", "/?txn=T-SHIBUYA-1").await;
    assert!(listed(&mine, site.shibuya_seq), "{mine}");
}

#[tokio::test]
async fn each_role_reaches_only_its_pages() {
    let site = Site::start("").await;
    let cases: [(&str, &str, StatusCode); 19] = [
        ("ito", "/", StatusCode::FORBIDDEN),
        ("ito", "/api/events", StatusCode::FORBIDDEN),
        ("ito", "/timeline", StatusCode::FORBIDDEN),
        ("ito", "/integrations", StatusCode::OK),
        ("ito", "/dead-letters", StatusCode::OK),
        ("mika", "/", StatusCode::OK),
        ("mika", "/cashiers", StatusCode::OK),
        ("mika", "/integrations", StatusCode::FORBIDDEN),
        ("mika", "/audit", StatusCode::FORBIDDEN),
        ("ken", "/api/dead-letters", StatusCode::FORBIDDEN),
        ("mika", "/dead-letters", StatusCode::FORBIDDEN),
        ("ken", "/audit", StatusCode::FORBIDDEN),
        ("aiko", "/audit", StatusCode::OK),
        ("ken", "/tokens", StatusCode::FORBIDDEN),
        ("mika", "/people", StatusCode::FORBIDDEN),
        ("aiko", "/people", StatusCode::OK),
        ("aiko", "/tokens", StatusCode::OK),
        ("aiko", "/dead-letters", StatusCode::OK),
        ("aiko", "/integrations", StatusCode::OK),
    ];
    for (user, path, want) in cases {
        let (status, body) = site.get_as(user, path).await;
        assert_eq!(status, want, "{user} {path}: {body}");
        if want == StatusCode::FORBIDDEN && !path.starts_with("/api/") {
            assert!(body.contains("does not give access to this page"), "{body}");
        }
    }
    let (_, api) = site.get_as("ito", "/api/events").await;
    assert_eq!(
        serde_json::from_str::<Value>(&api).unwrap()["error"],
        "the integrator role does not give access to this; ask an owner"
    );
    // The header links only to what the role may open.
    let (_, page) = site.get_as("mika", "/").await;
    assert!(page.contains("href=\"/timeline\""));
    assert!(!page.contains("href=\"/integrations\"") && !page.contains("href=\"/audit\""));
}

#[tokio::test]
async fn signing_in_never_sends_the_browser_to_another_site_whatever_next_says() {
    let site = Site::start("").await;
    for away in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/x\r\nSet-Cookie: a=b",
    ] {
        let browser = Browser::new(&site);
        let (status, headers, _) = browser.sign_in("ken", PASSWORD, away).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{away:?}");
        assert_eq!(location(&headers), "/", "{away:?}");
    }
    // The sign-in page itself, asked with `next=/%09/evil.example` (a tab once decoded), keeps only `/`.
    let (_, _, page) = Browser::new(&site)
        .get("/login?next=/%09/evil.example")
        .await;
    assert!(page.contains(r#"name="next" value="&#x2f;""#), "{page}");
}

#[tokio::test]
async fn signing_in_sets_an_http_only_cookie_returns_to_the_page_asked_for_and_signing_out_ends_it()
{
    let site = Site::start("").await;
    let browser = Browser::new(&site);
    let (status, headers, _) = browser.get("/timeline?store=shibuya-01").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let next = location(&headers)
        .strip_prefix("/login?next=")
        .unwrap()
        .to_string();
    assert_eq!(next, "%2Ftimeline%3Fstore%3Dshibuya-01");

    let (status, headers, _) = browser
        .sign_in("ken", PASSWORD, "/timeline?store=shibuya-01")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/timeline?store=shibuya-01");
    let cookie = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("tillmark_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    assert!(
        !headers.contains_key("strict-transport-security"),
        "no HSTS over plain HTTP"
    );

    let (status, _, page) = browser.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("T-SHIBUYA-1") && page.contains(">ken<"),
        "{page}"
    );

    let csrf = hidden(&page, "csrf");
    let (status, headers, _) = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/login");
    let (status, _, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
}

#[tokio::test]
async fn a_form_without_the_sessions_token_changes_nothing() {
    let site = Site::start("").await;
    let browser = Browser::new(&site);
    browser.sign_in("aiko", PASSWORD, "/").await;
    for token in ["", "forged"] {
        let (status, _, body) = browser.post("/logout", &[("csrf", token)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.contains("did not come from your current session"),
            "{body}"
        );
    }
    let (status, _, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::OK, "still signed in");
    let (status, _, _) = browser
        .post(
            "/account/password",
            &[
                ("csrf", "forged"),
                ("current", PASSWORD),
                ("new", "a brand new password"),
                ("confirm", "a brand new password"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The sign-in form carries its own token: a post from elsewhere, without the form's cookie, is refused.
    let (status, _, body) = Site::client()
        .post(format!("{}/login", site.base))
        .form(&[("username", "aiko"), ("password", PASSWORD), ("csrf", "x")])
        .send()
        .await
        .map(|r| (r.status(), (), r))
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.text()
            .await
            .unwrap()
            .contains("This sign-in form had expired")
    );
}

#[tokio::test]
async fn after_five_wrong_passwords_an_account_waits_even_with_the_right_one_and_others_still_sign_in()
 {
    let site = Site::start("").await;
    let browser = Browser::new(&site);
    for _ in 0..5 {
        let (status, _, body) = browser.sign_in("ken", "wrong password 123", "/").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            body.contains("That name and password do not match"),
            "{body}"
        );
        assert!(body.contains("value=\"ken\""), "the name stays in the box");
    }
    let (status, headers, body) = browser.sign_in("ken", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "900");
    assert!(body.contains("Too many refused sign-ins"), "{body}");
    let (status, _, _) = browser.sign_in("mika", PASSWORD, "/").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "another account is not held up"
    );

    // An unknown name is refused like a wrong password, and counts the same.
    let (status, _, body) = browser.sign_in("nobody", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("That name and password do not match"));
    let refused = refused_sign_ins(&site).await;
    assert_eq!(refused.len(), 6);
    assert_eq!(refused[0].actor.as_deref(), Some("nobody"));
    assert_eq!(refused[0].address.as_deref(), Some("127.0.0.1"));
}

/// The audit log's entries of `action`, newest first.
async fn audited(site: &Site, action: &str) -> Vec<tillmark::store::AuditEntry> {
    site.store
        .audit(&AuditQuery {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The audit log's refused sign-ins, newest first.
async fn refused_sign_ins(site: &Site) -> Vec<tillmark::store::AuditEntry> {
    audited(site, "sign_in_refused").await
}

#[tokio::test]
async fn twenty_refused_sign_ins_from_one_address_hold_every_name_from_it() {
    let site = Site::start("").await;
    let browser = Browser::new(&site);
    for i in 0..20 {
        let (status, _, _) = browser
            .sign_in(&format!("guess{i}"), "wrong password 123", "/")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = browser.sign_in("aiko", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_api_token_reads_as_its_user_and_an_unknown_one_is_refused() {
    let site = Site::start("").await;
    let (status, body) = site.get_as("ken", "/api/events").await;
    assert_eq!(status, StatusCode::OK);
    let events: Value = serde_json::from_str(&body).unwrap();
    let stores: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["store"].as_str().unwrap())
        .collect();
    assert_eq!(stores, ["shibuya-01"]);
    let (_, body) = site.get_as("aiko", "/api/events").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (status, headers, body) = site
        .send("GET", "/api/events", Some("tm_not-a-token"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(body.contains("this API token is not known"), "{body}");
    // Tokens are kept as digests only.
    let (status, _) = site
        .get_as("ken", &format!("/events/{}", site.shibuya_seq))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_changed_password_signs_out_every_other_browser_and_keeps_this_one_signed_in() {
    let site = Site::start("").await;
    let (here, elsewhere) = (Browser::new(&site), Browser::new(&site));
    here.sign_in("ken", PASSWORD, "/").await;
    elsewhere.sign_in("ken", PASSWORD, "/").await;
    let (_, _, form) = here.get("/account/password").await;
    let csrf = hidden(&form, "csrf");
    let new = "a brand new password";
    let (status, _, body) = here
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", "not it at all"),
                ("new", new),
                ("confirm", new),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("The current password is not right"), "{body}");
    let (status, _, body) = here
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("too short: use at least 12 characters"),
        "{body}"
    );
    let (status, headers, _) = here
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", new),
                ("confirm", new),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, done) = here.get(location(&headers)).await;
    assert!(done.contains("Your password is changed"), "{done}");
    assert_eq!(
        elsewhere.get("/").await.0,
        StatusCode::SEE_OTHER,
        "the other browser is signed out"
    );
    assert_eq!(here.get("/").await.0, StatusCode::OK);
    assert_eq!(
        Browser::new(&site).sign_in("ken", PASSWORD, "/").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Browser::new(&site).sign_in("ken", new, "/").await.0,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn sign_in_returns_only_to_pages_of_this_site() {
    let site = Site::start("").await;
    for next in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let (status, headers, _) = Browser::new(&site).sign_in("aiko", PASSWORD, next).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location(&headers), "/", "{next}");
    }
}

#[tokio::test]
async fn behind_a_tls_proxy_cookies_are_secure_and_the_clients_address_is_the_proxys_last_hop() {
    let site = Site::start("[web]\nbehind_proxy = true\n").await;
    let client = Site::client();
    let form = client
        .get(format!("{}/login", site.base))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.starts_with("__Secure-tillmark_signin="),
        "a prefix only a secure page can set: {cookie}"
    );
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let signin = cookie.split(';').next().unwrap().to_string();
    let resp = client
        .post(format!("{}/login", site.base))
        .header("cookie", signin)
        .header("x-forwarded-for", "198.51.100.7, 203.0.113.9")
        .form(&[
            ("username", "aiko"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let session = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.contains("tillmark_session="))
        .expect("a session cookie");
    assert!(
        session.starts_with("__Host-tillmark_session=")
            && session.contains("; Path=/;")
            && session.contains("; Secure"),
        "the session's cookie can be set only by this host over TLS: {session}"
    );
    let page = client
        .get(format!("{}/", site.base))
        .header("cookie", session.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK, "signed in by that cookie");
    let entries = site
        .store
        .audit(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries[0].action, "sign_in");
    assert_eq!(entries[0].address.as_deref(), Some("203.0.113.9"));
}

/// Signs in as `name` through the proxy for a client at `address`; the answer's status.
async fn sign_in_from(site: &Site, address: &str, name: &str, password: &str) -> StatusCode {
    let client = Site::client();
    let form = client
        .get(format!("{}/login", site.base))
        .send()
        .await
        .unwrap();
    let cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    client
        .post(format!("{}/login", site.base))
        .header("cookie", cookie.split(';').next().unwrap())
        .header("x-forwarded-for", address)
        .form(&[("username", name), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn fifty_wrong_passwords_from_one_address_do_not_lock_the_owner_out_from_another() {
    // The proxy on this machine is trusted; each request says which client it carries.
    let site = Site::start("[web]\nbehind_proxy = true\n").await;
    assert_eq!(
        sign_in_from(&site, "198.51.100.7", "aiko", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "the owner's usual address"
    );
    let mut refused = 0;
    for _ in 0..50 {
        let status = sign_in_from(&site, "203.0.113.66", "aiko", "wrong password 123").await;
        refused += usize::from(status == StatusCode::UNAUTHORIZED);
    }
    assert_eq!(refused, 5, "then the guesser waits");
    assert_eq!(
        sign_in_from(&site, "203.0.113.66", "aiko", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits at the guesser's address"
    );
    assert_eq!(
        sign_in_from(&site, "192.0.2.10", "aiko", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "another address signs in"
    );

    // Guesses spread over many addresses, a few each: past a day's limit the name waits at new addresses,
    // not at the one its owner signs in from.
    for i in 0..50 {
        let address = format!("10.1.{}.{}", i / 4, i % 4);
        sign_in_from(&site, &address, "aiko", "wrong password 123").await;
    }
    assert_eq!(
        sign_in_from(&site, "192.0.2.99", "aiko", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address"
    );
    assert_eq!(
        sign_in_from(&site, "198.51.100.7", "aiko", PASSWORD).await,
        StatusCode::SEE_OTHER,
        "the owner's usual address"
    );
}

#[tokio::test]
async fn x_forwarded_for_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    let site = Site::start("[web]\nbehind_proxy = true\ntrusted_proxies = [\"10.9.9.9\"]\n").await;
    // Rotating the header would escape the throttle if it were believed.
    for i in 0..5 {
        let status = sign_in_from(
            &site,
            &format!("203.0.113.{i}"),
            "aiko",
            "wrong password 123",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        sign_in_from(&site, "203.0.113.200", "aiko", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "every attempt came from the same peer"
    );
    let entries = refused_sign_ins(&site).await;
    assert_eq!(entries.len(), 5);
    assert!(
        entries
            .iter()
            .all(|e| e.address.as_deref() == Some("127.0.0.1")),
        "the audit log holds the real peer, never an invented address"
    );
}

#[tokio::test]
async fn the_audit_log_shows_the_owner_who_signed_in_opened_footage_and_exported_a_timeline() {
    let site = Site::start("").await;
    let browser = Browser::new(&site);
    browser.sign_in("ken", "wrong password 123", "/").await;
    browser.sign_in("ken", PASSWORD, "/").await;
    let (status, headers, _) = browser
        .get(&format!("/events/{}/footage/0", site.shibuya_seq))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location(&headers).starts_with("nx-vms://"),
        "{}",
        location(&headers)
    );
    let (status, _, csv) = browser
        .get("/timeline.csv?store=shibuya-01&register=r1&from=2026-11-21T00:00&to=2026-11-22T00:00")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.contains("T-SHIBUYA-1"));

    let (status, page) = site.get_as("aiko", "/audit").await;
    assert_eq!(status, StatusCode::OK);
    let page = page.replace("&#x2f;", "/");
    for text in [
        ">Sign-in refused<",
        ">Footage opened<",
        &format!("event {}: refund at shibuya-01/r1", site.shibuya_seq),
        ">Exported<",
        "timeline shibuya-01/r1 2026-11-21 00:00:00 to 2026-11-22 00:00:00 JST",
        "127.0.0.1",
    ] {
        assert!(page.contains(text), "the audit page lacks {text}: {page}");
    }
    let (_, only_ken) = site
        .get_as("aiko", "/audit?actor=ken&action=footage_opened")
        .await;
    let only_ken = only_ken.replace("&#x2f;", "/");
    assert!(
        only_ken.contains("refund at shibuya-01/r1")
            && !only_ken.contains("timeline shibuya-01/r1"),
        "{only_ken}"
    );
}

/// A daemon on its embedded broker whose index serves HTTPS with `cert` and `key`.
fn tls_config(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> Config {
    let text = format!(
        "[mqtt]\nembedded_listen = \"127.0.0.1:0\"\nclient_id = \"tls-test\"\n\n\
         [database]\nurl = \"sqlite://{}\"\n\n\
         [web]\nlisten = \"0.0.0.0:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{CONFIG}",
        dir.join("t.db").display(),
        cert.display(),
        key.display(),
    );
    Config::parse(&text, &|name| {
        (name == "NX_PW").then(|| "secret".to_string())
    })
    .unwrap_or_else(|e| panic!("test config is invalid: {e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_configured_certificate_the_index_serves_https_beyond_loopback_with_secure_cookies()
{
    let dir = tempfile::tempdir().unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    let daemon = tillmark::Daemon::start(tls_config(dir.path(), &cert, &key))
        .await
        .expect("the daemon starts with TLS");
    let port = daemon.web_addr().port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(issued.cert.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client
        .get(format!("https://localhost:{port}/login"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(form.status(), StatusCode::OK);
    let cookie = form.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(
        form.headers()["strict-transport-security"],
        "max-age=31536000",
        "browsers keep to HTTPS for a year"
    );
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/login")).await;
    assert!(plain.is_err(), "no plain HTTP on the TLS port");
    daemon.shutdown().await;

    // A key that is not one: start-up says which files and why, instead of serving without TLS.
    std::fs::write(&key, "not a key").unwrap();
    let err = match tillmark::Daemon::start(tls_config(dir.path(), &cert, &key)).await {
        Ok(_) => panic!("started with a broken key"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with(&format!(
            "cannot serve HTTPS with [web] tls_cert {}",
            cert.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_scripts_reads_are_in_the_audit_log_with_what_it_asked_and_how_many_rows_card_numbers_masked()
 {
    let site = Site::start("").await;
    for path in [
        "/api/events?store=shibuya-01&limit=50".to_string(),
        format!("/api/events/{}", site.shibuya_seq),
        "/api/events?q=4111%201111%201111%201111".to_string(),
    ] {
        let (status, body) = site.get_as("ken", &path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // Refused reads are not reads: Osaka's event is outside ken's stores.
    let (status, _) = site
        .get_as("ken", &format!("/api/events/{}", site.osaka_seq))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reads = audited(&site, "api_read").await;
    let got: Vec<(&str, &str, &str)> = reads
        .iter()
        .rev()
        .map(|e| {
            (
                e.actor.as_deref().unwrap(),
                e.target.as_deref().unwrap(),
                e.detail.as_deref().unwrap(),
            )
        })
        .collect();
    let one = format!("/api/events/{}", site.shibuya_seq);
    assert_eq!(
        got,
        [
            ("ken", "/api/events?store=shibuya-01&limit=50", "1 event"),
            ("ken", one.as_str(), "1 event"),
            ("ken", "/api/events?q=4111 11** **** 1111", "0 events"),
        ]
    );
}

#[tokio::test]
async fn the_owner_sees_everyones_tokens_with_their_last_use_and_a_revoked_one_stops_at_once() {
    let site = Site::start("").await;
    let (status, _) = site.get_as("ken", "/api/events").await;
    assert_eq!(status, StatusCode::OK);
    let owner = Browser::new(&site);
    owner.sign_in("aiko", PASSWORD, "/tokens").await;
    let (status, _, page) = owner.get("/tokens").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let row = |page: &str, user: &str| {
        page.split("<tr id=\"token-")
            .skip(1)
            .find(|r| r.contains(&format!(">{user}</td>")))
            .unwrap_or_else(|| panic!("no row for {user}: {page}"))
            .to_string()
    };
    assert!(row(&page, "ito").contains(">never</td>"), "{page}");
    assert!(
        !row(&page, "ken").contains(">never</td>"),
        "ken's script used it: {page}"
    );
    assert!(row(&page, "ken").contains(">tests</td>"), "{page}");
    for token in site.tokens.values() {
        assert!(
            !page.contains(token.as_str()),
            "a token's secret is on the page"
        );
    }

    let ken = site.store.tokens(Some("ken")).await.unwrap().remove(0);
    let csrf = hidden(&page, "csrf");
    // A form from elsewhere, without the session's token, revokes nothing.
    let (status, _, _) = owner
        .post(
            "/tokens/revoke",
            &[("csrf", "forged"), ("id", &ken.id.to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(site.get_as("ken", "/api/events").await.0, StatusCode::OK);

    let (status, headers, _) = owner
        .post(
            "/tokens/revoke",
            &[("csrf", &csrf), ("id", &ken.id.to_string())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/tokens");
    let (status, _) = site.get_as("ken", "/api/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(site.get_as("ito", "/integrations").await.0, StatusCode::OK);
    let (_, _, page) = owner.get("/tokens").await;
    assert!(!page.contains(">ken</td>"), "{page}");
    let revoked = audited(&site, "token_revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].actor.as_deref(), Some("aiko"));
    assert_eq!(revoked[0].target.as_deref(), Some("ken"));
    assert_eq!(revoked[0].detail.as_deref(), Some("tests"));
}

/// What a person's authenticator app computes from the key: the crate the daemon uses, but through its own
/// clock and step arithmetic, not the daemon's.
fn authenticator(key: &tillmark::totp::TotpSecret) -> totp_rs::TOTP {
    let bytes = totp_rs::Secret::Encoded(key.expose_base32())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, bytes).unwrap()
}

/// Six digits that are the code of no step within three of now: wrong however the clock moves during a test.
fn wrong_code(app: &totp_rs::TOTP) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let near: Vec<String> = (0..7).map(|i| app.generate(now + i * 30 - 90)).collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

impl Browser {
    /// Submits the code form of `page` (the answer to a right password) with `code`.
    async fn code(
        &self,
        page: &str,
        code: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        assert!(
            page.contains(r#"action="/login/code""#),
            "not the code form: {page}"
        );
        let (csrf, next) = (hidden(page, "csrf"), hidden(page, "next"));
        let next = next.replace("&#x2f;", "/");
        self.post(
            "/login/code",
            &[("code", code), ("csrf", &csrf), ("next", &next)],
        )
        .await
    }
}

fn session_cookie(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("tillmark_session="))
}

#[tokio::test]
async fn with_an_authenticator_code_the_password_alone_signs_nobody_in_and_each_code_signs_in_once()
{
    let site = Site::start("").await;
    let key = tillmark::totp::TotpSecret::generate();
    site.store.set_totp("ken", Some(&key), 0).await.unwrap();
    let app = authenticator(&key);
    let browser = Browser::new(&site);

    let (status, headers, page) = browser.sign_in("ken", PASSWORD, "/cashiers").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        !session_cookie(&headers),
        "no session for the password alone"
    );
    assert!(
        page.contains("Authenticator code (6 digits)")
            && page.contains("ken, your password is right"),
        "{page}"
    );
    let (status, headers, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "still signed out");
    assert!(location(&headers).starts_with("/login?next="));

    // A wrong code is refused, recorded as a refused sign-in, and the form asks again.
    let (status, headers, page) = browser.code(&page, &wrong_code(&app)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!session_cookie(&headers));
    assert!(
        page.contains("That code is not right, or it was already used"),
        "{page}"
    );
    let refused = refused_sign_ins(&site).await;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor.as_deref(), Some("ken"));
    assert_eq!(
        refused[0].detail.as_deref(),
        Some("wrong or already used authenticator code")
    );
    assert_eq!(browser.get("/").await.0, StatusCode::SEE_OTHER);

    // The code the app shows now signs in, and back to the page asked for.
    let code = app.generate_current().unwrap();
    let (status, headers, _) = browser.code(&page, &code).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/cashiers");
    assert!(session_cookie(&headers));
    let (status, _, home) = browser.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains(">ken<"), "{home}");
    let signed_in = audited(&site, "sign_in").await;
    assert_eq!(signed_in.len(), 1);
    assert_eq!(
        signed_in[0].detail.as_deref(),
        Some("with authenticator code")
    );

    // Signed out, the same password and the same code again: refused, even within its 30 seconds.
    let csrf = hidden(&home, "csrf");
    browser.post("/logout", &[("csrf", &csrf)]).await;
    let (status, _, page) = browser.sign_in("ken", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, page) = browser.code(&page, &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code signs in once");
    assert!(!session_cookie(&headers));
    assert!(page.contains("That code is not right, or it was already used"));
    assert_eq!(browser.get("/").await.0, StatusCode::SEE_OTHER);
    assert_eq!(refused_sign_ins(&site).await.len(), 2);

    // The app's next code, a step ahead (a phone's clock a little fast), is a new code and signs in.
    let ahead = app.generate(app.next_step_current().unwrap());
    let (status, _, _) = browser.code(&page, &ahead).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/").await.0, StatusCode::OK);

    // People without a code still sign in with the password alone.
    let (status, headers, _) = Browser::new(&site).sign_in("mika", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(session_cookie(&headers));
}

#[tokio::test]
async fn guesses_at_the_code_are_throttled_like_wrong_passwords() {
    let site = Site::start("").await;
    let key = tillmark::totp::TotpSecret::generate();
    site.store.set_totp("aiko", Some(&key), 0).await.unwrap();
    let app = authenticator(&key);
    let browser = Browser::new(&site);
    let (_, _, mut page) = browser.sign_in("aiko", PASSWORD, "/").await;
    for _ in 0..5 {
        let (status, _, next) = browser.code(&page, &wrong_code(&app)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        page = next;
    }
    // Even the right code now waits, and the challenge is gone: after the wait, the password again.
    let (status, headers, body) = browser.code(&page, &app.generate_current().unwrap()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "900");
    assert!(!session_cookie(&headers));
    assert!(body.contains("Too many refused sign-ins"), "{body}");
    assert_eq!(browser.get("/").await.0, StatusCode::SEE_OTHER);
    let (status, _, _) = browser.sign_in("aiko", PASSWORD, "/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused_sign_ins(&site).await.len(), 5);
}

#[tokio::test]
async fn a_code_without_a_live_challenge_asks_for_the_password_again() {
    let site = Site::start("").await;
    let key = tillmark::totp::TotpSecret::generate();
    site.store.set_totp("ken", Some(&key), 0).await.unwrap();
    let app = authenticator(&key);

    // The challenge has outlived its five minutes.
    let browser = Browser::new(&site);
    let (_, _, page) = browser.sign_in("ken", PASSWORD, "/").await;
    site.db
        .execute("UPDATE sign_in_challenges SET created_ms = created_ms - 301000")
        .await;
    let (status, headers, body) = browser.code(&page, &app.generate_current().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!session_cookie(&headers));
    assert!(
        body.contains("The code was not entered within 5 minutes"),
        "{body}"
    );
    assert!(
        body.contains(r#"action="/login""#),
        "the password form: {body}"
    );

    // No challenge cookie at all: a code alone signs nobody in.
    let stranger = Browser::new(&site);
    let (_, _, form) = stranger.get("/login").await;
    let csrf = hidden(&form, "csrf");
    let code = app.generate_current().unwrap();
    let (status, headers, _) = stranger
        .post("/login/code", &[("code", &code), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!session_cookie(&headers));
    assert_eq!(stranger.get("/").await.0, StatusCode::SEE_OTHER);

    // Nor without the sign-in form's token.
    let (status, _, _) = browser
        .post("/login/code", &[("code", &code), ("csrf", "forged")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// The password a people-page answer hands over.
fn handed_over(page: &str) -> String {
    let start = page
        .find(r#"<code class="password">"#)
        .unwrap_or_else(|| panic!("no password on the page: {page}"))
        + r#"<code class="password">"#.len();
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

#[tokio::test]
async fn the_owner_adds_a_person_widens_their_stores_resets_their_password_and_removes_them_all_audited()
 {
    let site = Site::start("").await;
    let owner = Browser::new(&site);
    owner.sign_in("aiko", PASSWORD, "/people").await;
    let (status, _, page) = owner.get("/people").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = hidden(&page, "csrf");
    let osaka = format!("/events/{}", site.osaka_seq);

    // A form from elsewhere adds nobody.
    let (status, _, _) = owner
        .post(
            "/people/add",
            &[("csrf", "forged"), ("name", "yui"), ("role", "owner")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An investigator needs stores: said on the page, nobody added.
    let (status, _, page) = owner
        .post(
            "/people/add",
            &[("csrf", &csrf), ("name", "yui"), ("role", "investigator")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("tick at least one"), "{page}");

    let (status, _, page) = owner
        .post(
            "/people/add",
            &[
                ("csrf", &csrf),
                ("name", "yui"),
                ("role", "investigator"),
                ("stores", "shibuya-01"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let first = handed_over(&page);
    let yui = Browser::new(&site);
    let (status, _, _) = yui.sign_in("yui", &first, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(yui.get(&osaka).await.0, StatusCode::NOT_FOUND);

    // Osaka too: at once, in the same session.
    let (status, headers, _) = owner
        .post(
            "/people/access",
            &[
                ("csrf", &csrf),
                ("name", "yui"),
                ("role", "investigator"),
                ("stores", "shibuya-01"),
                ("stores", "osaka-02"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/people?done=access_changed&who=yui");
    assert_eq!(yui.get(&osaka).await.0, StatusCode::OK);

    // A reset: the browser signed in with the old password is out, the old password is refused, the new one works.
    let (status, _, page) = owner
        .post("/people/password", &[("csrf", &csrf), ("name", "yui")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = handed_over(&page);
    assert_ne!(first, second);
    assert_eq!(yui.get("/").await.0, StatusCode::SEE_OTHER);
    let again = Browser::new(&site);
    assert_ne!(
        again.sign_in("yui", &first, "/").await.0,
        StatusCode::SEE_OTHER,
        "the old password is refused"
    );
    assert_eq!(
        again.sign_in("yui", &second, "/").await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(again.get("/").await.0, StatusCode::OK);

    // The last owner stays an owner.
    let (status, _, page) = owner
        .post(
            "/people/access",
            &[
                ("csrf", &csrf),
                ("name", "aiko"),
                ("role", "investigator"),
                ("stores", "shibuya-01"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("aiko is the last owner"), "{page}");

    let (status, _, _) = owner
        .post("/people/remove", &[("csrf", &csrf), ("name", "yui")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(again.get("/").await.0, StatusCode::SEE_OTHER, "signed out");

    let log = site
        .store
        .audit(&AuditQuery {
            actor: Some("aiko".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let changes: Vec<(&str, &str)> = log
        .iter()
        .rev()
        .filter(|e| e.target.as_deref() == Some("yui"))
        .map(|e| (e.action.as_str(), e.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        changes,
        [
            ("user_added", "investigator shibuya-01"),
            ("access_changed", "investigator shibuya-01,osaka-02"),
            (
                "password_set",
                "reset on the people page; 0 API tokens revoked"
            ),
            ("user_removed", ""),
        ]
    );
    for e in &log {
        let row = format!("{e:?}");
        assert!(
            !row.contains(&first) && !row.contains(&second),
            "a password in the audit log: {row}"
        );
    }
}

/// A sale (low) at Shibuya and a no-sale (high) at Osaka beside the two refunds the site starts with.
async fn with_more_severities(site: &Site) -> (i64, i64) {
    let now = tillmark::clock::now_ms();
    let outcomes = site
        .store
        .ingest(
            &[
                intake(
                    "s-sale",
                    "sale",
                    "shibuya-01",
                    "T-S2",
                    "c117",
                    "cam-shibuya",
                ),
                intake(
                    "o-nosale",
                    "no_sale",
                    "osaka-02",
                    "T-OSAKA-78",
                    "c-osaka-9",
                    "cam-osaka",
                ),
            ],
            now,
        )
        .await
        .unwrap();
    let seq = |i: usize| match outcomes[i] {
        tillmark::store::IntakeOutcome::Stored { seq, .. } => seq,
        other => panic!("not stored: {other:?}"),
    };
    (seq(0), seq(1))
}

#[tokio::test]
async fn severity_high_lists_only_high_events_and_keeps_the_readers_store_scope_in_the_api_and_the_list()
 {
    let site = Site::start("").await;
    let (sale, osaka_no_sale) = with_more_severities(&site).await;
    let seqs = |body: &str| -> Vec<i64> {
        let v: Value = serde_json::from_str(body).unwrap();
        let mut seqs: Vec<i64> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        seqs.sort();
        seqs
    };
    let (status, owner) = site.get_as("aiko", "/api/events?severity=high").await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    let mut all_high = vec![site.shibuya_seq, site.osaka_seq, osaka_no_sale];
    all_high.sort();
    assert_eq!(seqs(&owner), all_high, "the sale is low");
    let v: Value = serde_json::from_str(&owner).unwrap();
    assert!(
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["severity"] == "high")
    );

    let (_, ken) = site.get_as("ken", "/api/events?severity=high").await;
    assert_eq!(seqs(&ken), [site.shibuya_seq], "Shibuya's high events only");
    let (_, ken) = site
        .get_as("ken", "/api/events?severity=high&store=osaka-02")
        .await;
    assert_eq!(seqs(&ken), Vec::<i64>::new());
    let (_, ken_all) = site.get_as("ken", "/api/events").await;
    assert!(
        seqs(&ken_all).contains(&sale),
        "without the filter the sale is listed"
    );

    let (status, page) = site.get_as("ken", "/?severity=high").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("href=\"/events/{}\"", site.shibuya_seq)));
    assert!(
        !page.contains(&format!("href=\"/events/{sale}\"")),
        "the sale is not high"
    );
    for mark in OSAKA_MARKS {
        assert!(!page.contains(mark), "{mark} leaked into Shibuya's list");
    }
    // The box is ticked, and the high badge carries a mark besides its colour.
    assert!(
        page.contains(r#"name="severity" value="high" checked"#),
        "{page}"
    );
    assert!(page.contains(r#"class="type sev-high""#) && page.contains("▲"));

    let (status, bad) = site.get_as("aiko", "/api/events?severity=urgent").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("severity: unknown severity"), "{bad}");
}

#[tokio::test]
async fn the_list_offers_tonights_voids_refunds_and_no_sales_for_each_store_the_reader_sees() {
    let site = Site::start("").await;
    let (_, page) = site.get_as("ken", "/").await;
    for kind in ["void", "refund", "no_sale"] {
        assert!(
            page.contains(&format!("?store=shibuya-01&amp;type={kind}&amp;from=")),
            "{kind}: {page}"
        );
    }
    assert!(!page.contains("store=osaka-02"), "Osaka is not Ken's");
    let (_, owner) = site.get_as("aiko", "/").await;
    assert!(owner.contains("?store=osaka-02&amp;type=void&amp;from="));
}
