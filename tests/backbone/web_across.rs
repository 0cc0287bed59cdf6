//! The web index behind a load balancer: any daemon of a deployment answers any request. A session begun on
//! one daemon is good on another, a form's CSRF token from one page is accepted by another daemon, signing
//! out on one ends the session on all, and refused sign-ins are counted across daemons, since all of it lives
//! in the database they share.

use crate::support::*;

/// A browser: keeps cookies (for every port of 127.0.0.1, as browsers do) and does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

async fn sign_in(browser: &reqwest::Client, base: &str, password: &str) -> (u16, String) {
    let form = browser.get(format!("{base}/login")).send().await.unwrap();
    let form = form.text().await.unwrap();
    let answer = browser
        .post(format!("{base}/login"))
        .form(&[
            ("username", "aiko"),
            ("password", password),
            ("csrf", &field(&form, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

#[tokio::test]
async fn a_session_from_one_daemon_works_on_another_and_refused_sign_ins_count_across_them() {
    let site = Site::new();
    let (a, _) = start_daemon(site.config(None, "http://127.0.0.1:9/", "")).await;
    let (b, _) = start_daemon(site.config(None, "http://127.0.0.1:9/", "")).await;
    {
        use tillmark::accounts::{NewUser, Role, hash_password};
        let store = tillmark::store::open(&site.db_url()).await.unwrap();
        let aiko = NewUser {
            name: "aiko".into(),
            role: Role::Investigator,
            stores: vec!["shibuya-01".into()],
            password_hash: hash_password("correct horse battery").unwrap(),
        };
        store.add_user(&aiko, 0).await.unwrap();
        store.close().await;
    }
    let (base_a, base_b) = (web_base(&a), web_base(&b));

    // Signed in on A, the session and its CSRF token work on B.
    let tab = browser();
    let (status, _) = sign_in(&tab, &base_a, "correct horse battery").await;
    assert_eq!(status, 303, "signed in on A");
    let home = tab.get(format!("{base_b}/")).send().await.unwrap();
    assert_eq!(home.status().as_u16(), 200, "B knows A's session");
    let page = home.text().await.unwrap();
    assert!(page.contains("aiko"), "{page}");
    let csrf = field(&page, "csrf");
    // Sign out on A with the token B's page carried: the session ends everywhere.
    let out = tab
        .post(format!("{base_a}/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303, "A accepts the form B served");
    let home = tab.get(format!("{base_b}/")).send().await.unwrap();
    assert_eq!(home.status().as_u16(), 303, "signed out on B too");

    // Three wrong passwords on A and two on B: the limit of five is reached across them, and even the right
    // password is refused for now, on either daemon.
    let guesser = browser();
    for (base, n) in [(&base_a, 3), (&base_b, 2)] {
        for _ in 0..n {
            let (status, _) = sign_in(&guesser, base, "wrong").await;
            assert_eq!(status, 401, "a wrong password");
        }
    }
    for base in [&base_a, &base_b] {
        let (status, page) = sign_in(&tab, base, "correct horse battery").await;
        assert_eq!(status, 429, "throttled across daemons: {page}");
        assert!(page.contains("Too many refused sign-ins"), "{page}");
    }
    a.shutdown().await;
    b.shutdown().await;
}
