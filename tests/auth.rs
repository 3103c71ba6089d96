//! `/api/auth` over real HTTP: login, logout (persistent revocation), registration rules,
//! throttling, and tokens following role changes and deletions at once.

mod support;

use std::time::Instant;

use serde_json::{json, Value};
use support::{assert_error, Server, ADMIN_PW};

#[tokio::test]
async fn first_user_becomes_admin_and_later_ones_need_an_admin() {
    let s = Server::start();
    let (st, v) = s
        .call(
            "POST",
            "/api/auth/register",
            None,
            json!({"username": "boss", "password": "first-user-pw", "role": "viewer"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["user"]["role"], "admin", "the first user is always admin");
    assert_eq!(v["user"]["username"], "boss");
    assert!(v["user"]["id"].as_i64().unwrap() > 0);
    assert!(
        v["user"]["created_at"].as_str().unwrap().ends_with('Z'),
        "UTC: {v}"
    );
    assert!(v.to_string().find("argon2").is_none() && v["user"].get("password_hash").is_none());

    let (st, v) = s
        .call(
            "POST",
            "/api/auth/register",
            None,
            json!({"username": "sneaky", "password": "second-user-pw"}),
        )
        .await;
    assert_error(st, &v, 401, "unauthorized");

    let admin = s.login("boss", "first-user-pw").await;
    let (st, v) = s
        .call(
            "POST",
            "/api/auth/register",
            Some(&admin),
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(v["user"]["role"], "user", "default role");
    let (st, v) = s
        .call(
            "POST",
            "/api/auth/register",
            Some(&admin),
            json!({"username": "carol", "password": "carol-password"}),
        )
        .await;
    assert_error(st, &v, 409, "conflict");
    for (body, why) in [
        (
            json!({"username": "dave", "password": "short"}),
            "short password",
        ),
        (
            json!({"username": "dave", "password": ""}),
            "empty password",
        ),
        (
            json!({"username": "d", "password": "long-enough"}),
            "short username",
        ),
        (
            json!({"username": "da ve", "password": "long-enough"}),
            "space in username",
        ),
        (
            json!({"username": "x".repeat(40), "password": "long-enough"}),
            "long username",
        ),
        (
            json!({"username": "dave", "password": "long-enough", "role": "root"}),
            "bad role",
        ),
        (
            json!({"username": "dave", "password": "p".repeat(300)}),
            "long password",
        ),
    ] {
        let (st, v) = s
            .call("POST", "/api/auth/register", Some(&admin), body)
            .await;
        assert_eq!(st, 400, "{why}: {v}");
        assert_error(st, &v, 400, "bad_request");
    }
    let (st, v) = s
        .call(
            "POST",
            "/api/auth/register",
            Some(&admin),
            json!({"username": "vera", "password": "vera-password", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        (st.as_u16(), v["user"]["role"].as_str()),
        (201, Some("viewer"))
    );
}

#[tokio::test]
async fn login_answers_the_same_for_unknown_users_and_wrong_passwords() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let (st, v) = s
        .call(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": ADMIN_PW}),
        )
        .await;
    assert_eq!(st, 200);
    assert!(v["token"].as_str().unwrap().split('.').count() == 3);
    assert_eq!(v["user"]["username"], "admin");
    assert_eq!(v["user"]["role"], "admin");
    assert!(v["user"].get("password_hash").is_none());
    let (st, me) = s.call("GET", "/api/users", Some(&admin), Value::Null).await;
    assert_eq!(st, 200, "{me}");

    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..4 {
        let t = Instant::now();
        let (st, a) = s
            .call(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": "admin", "password": format!("nope{i}xxxx")}),
            )
            .await;
        wrong.push(t.elapsed().as_secs_f64());
        assert_error(st, &a, 401, "unauthorized");
        let t = Instant::now();
        let (st, b) = s
            .call(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": format!("ghost{i}"), "password": "whatever-pw"}),
            )
            .await;
        unknown.push(t.elapsed().as_secs_f64());
        assert_error(st, &b, 401, "unauthorized");
        assert_eq!(a, b, "same answer for unknown user and wrong password");
    }
    wrong.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let ratio = wrong[2] / unknown[2];
    // both run one argon2 verification; without the dummy hash an unknown user answers ~100x faster
    assert!(
        (0.25..4.0).contains(&ratio),
        "median wrong {:?} vs unknown {:?}",
        wrong,
        unknown
    );
}

#[tokio::test]
async fn repeated_failures_from_one_address_get_429_with_retry_after() {
    let s = Server::start();
    s.bootstrap_admin().await;
    for _ in 0..10 {
        let (st, _) = s
            .call(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": "admin", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(st, 401);
    }
    let resp = s
        .client
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "even the right password waits");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    let v: Value = resp.json().await.unwrap();
    assert_error(
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        &v,
        429,
        "too_many_requests",
    );
}

/// A client whose connections come from `ip` (a 127.0.0.0/8 address).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_status(client: &reqwest::Client, s: &Server, user: &str, pw: &str) -> u16 {
    client
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Counts of each status among `statuses`.
fn tally(statuses: &[u16]) -> std::collections::BTreeMap<u16, usize> {
    let mut m = std::collections::BTreeMap::new();
    for s in statuses {
        *m.entry(*s).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_get_at_most_ten_answers() {
    let s = Server::start();
    s.bootstrap_admin().await;
    let c = client_from("127.0.0.21");
    let mut all = Vec::new();
    for _ in 0..2 {
        let batch = (0..100).map(|_| login_status(&c, &s, "admin", "wrong-password"));
        all.extend(futures_util::future::join_all(batch).await);
    }
    let t = tally(&all);
    assert!(t.get(&401).copied().unwrap_or(0) <= 10, "{t:?}");
    assert_eq!(
        t.get(&401).copied().unwrap_or(0) + t.get(&429).copied().unwrap_or(0),
        200,
        "{t:?}"
    );
}

#[tokio::test]
async fn logging_into_another_account_does_not_clear_the_guesses() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_user(&admin, "bob", "user").await;
    let c = client_from("127.0.0.22");
    let mut seen = Vec::new();
    for _ in 0..5 {
        for _ in 0..9 {
            seen.push(login_status(&c, &s, "admin", "wrong-password").await);
        }
        seen.push(login_status(&c, &s, "bob", "bob-password").await);
    }
    let failures = seen.iter().filter(|s| **s == 401).count();
    assert_eq!(failures, 10, "{seen:?}");
    let tenth = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == 401)
        .nth(9)
        .unwrap()
        .0;
    assert!(seen[tenth + 1..].iter().all(|s| *s == 429), "{seen:?}");
}

#[tokio::test]
async fn a_distributed_guess_is_slowed_and_the_owner_still_gets_in() {
    let s = Server::start();
    s.bootstrap_admin().await; // logs in from 127.0.0.1
    for i in 0..10 {
        let c = client_from(&format!("127.0.1.{}", i + 1));
        assert_eq!(login_status(&c, &s, "admin", "wrong-password").await, 401);
    }
    let c = client_from("127.0.2.1");
    assert_eq!(login_status(&c, &s, "admin", "wrong-password").await, 401);
    let resp = client_from("127.0.2.2")
        .post(s.url("/api/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        429,
        "a new address waits its turn at this account"
    );
    assert!(resp.headers().contains_key("retry-after"));
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("for this account"),
        "{v}"
    );
    // the address the admin logged in from before is not slowed
    assert_eq!(login_status(&s.client, &s, "admin", ADMIN_PW).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_is_shed_and_health_stays_quick() {
    let s = Server::start();
    s.bootstrap_admin().await;
    let health = s.url("/health");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        let client = s.client.clone();
        tokio::spawn(async move {
            let mut worst = std::time::Duration::ZERO;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(client.get(&health).send().await.unwrap().status(), 200);
                worst = worst.max(t.elapsed());
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            (worst, n)
        })
    };
    // 1 000 logins at once, 10 from each of 100 addresses (under the per-address limit), for
    // unknown users (each hashed against the dummy, as a real one would be)
    let began = Instant::now();
    let clients: Vec<_> = (0..100)
        .map(|i| client_from(&format!("127.0.3.{}", i + 1)))
        .collect();
    let all = futures_util::future::join_all((0..1000).map(|i| {
        let (c, s) = (&clients[i % 100], &s);
        async move {
            let r = c
                .post(s.url("/api/auth/login"))
                .json(&json!({"username": format!("nobody{i}"), "password": "guess-guess"}))
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry)
        }
    }))
    .await;
    let took = began.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (worst, polls) = poller.await.unwrap();
    let t = tally(&all.iter().map(|(s, _)| *s).collect::<Vec<_>>());
    eprintln!("1 000 logins in {took:?}: {t:?}; slowest /health {worst:?} of {polls}");
    assert_eq!(
        t.keys().copied().collect::<Vec<_>>(),
        vec![401, 503],
        "{t:?}"
    );
    assert!(
        all.iter().filter(|(s, _)| *s == 503).all(|(_, r)| *r),
        "503s carry Retry-After"
    );
    assert!(polls >= 3, "{polls} polls in {took:?}");
    // one runtime thread parses every request of the flood; /health waits behind what is
    // queued, never behind the whole flood: 22-57 ms measured in a release build (2026-12-01);
    // in the debug build test.sh runs, 145-257 ms then, and on 2026-12-02 (a slower VM: the
    // live-view floor took 35 % more CPU) 130-450 ms in 20 runs on redb and PostgreSQL —
    // 13-40 % of the flood's own duration. The debug bound is that share: at most 60 %.
    if cfg!(debug_assertions) {
        assert!(
            worst.as_secs_f64() < took.as_secs_f64() * 0.6,
            "/health took {worst:?} during a flood of {took:?} (bound 60 % of it)"
        );
    } else {
        assert!(
            worst < std::time::Duration::from_millis(200),
            "/health took {worst:?} during the flood (bound 200 ms)"
        );
    }
}

#[tokio::test]
async fn logout_revokes_persistently_and_other_tokens_live_on() {
    let mut s = Server::start();
    let admin = s.bootstrap_admin().await;
    let other = s.login("admin", ADMIN_PW).await;
    let (st, v) = s
        .call("POST", "/api/auth/logout", Some(&admin), Value::Null)
        .await;
    assert_eq!((st.as_u16(), v), (200, json!({"message": "Logged out"})));
    let (st, v) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_error(st, &v, 401, "unauthorized");
    let (st, v) = s
        .call("POST", "/api/auth/logout", Some(&admin), Value::Null)
        .await;
    assert_error(st, &v, 401, "unauthorized");
    s.restart();
    let (st, _) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(st, 401, "revocation survives a restart");
    let (st, _) = s.call("GET", "/stats", Some(&other), Value::Null).await;
    assert_eq!(st, 200, "another token of the same user still works");
}

#[tokio::test]
async fn role_changes_and_deletion_apply_to_existing_tokens_at_once() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let (id, second) = s.add_user(&admin, "second", "admin").await;
    let (st, _) = s
        .call("GET", "/api/users", Some(&second), Value::Null)
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            "PUT",
            &format!("/api/users/{id}"),
            Some(&admin),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .call("GET", "/api/users", Some(&second), Value::Null)
        .await;
    assert_error(st, &v, 403, "forbidden");
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/users/{id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .call("GET", "/api/cameras/list", Some(&second), Value::Null)
        .await;
    assert_error(st, &v, 401, "unauthorized");
    let (st, _) = s
        .call(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "second", "password": "second-password"}),
        )
        .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.20", "username": "camuser", "password": "cam-secret-pw"}),
    )
    .await;
    let _ = s
        .call(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": "wrong-pw-123"}),
        )
        .await;
    let _ = s
        .client
        .get(s.url("/api/cameras/list?token=query-secret"))
        .bearer_auth(&admin)
        .send()
        .await;
    // the log line is written as the answer goes out; the harness reads stderr in a thread
    let log = support::wait_until("the request lines reach the log", 10, async || {
        let log = s.logs();
        log.contains("path=/api/cameras/list").then_some(log)
    })
    .await;
    for secret in [
        ADMIN_PW,
        "cam-secret-pw",
        "wrong-pw-123",
        admin.as_str(),
        "query-secret",
        support::SECRET,
    ] {
        assert!(
            !log.contains(secret),
            "log contains a secret: {secret}\n{log}"
        );
    }
}

#[tokio::test]
async fn passwords_change_and_every_older_token_stops() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let cams = support::cams::Camsim::start();
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.7", "rtsp_url": cams.url("cam1")}),
    )
    .await;
    let (uid, t1) = s.add_user(&admin, "ana", "user").await;
    s.call(
        "POST",
        &format!("/api/users/{uid}/cameras"),
        Some(&admin),
        json!({"camera_ips": ["127.0.0.7"]}),
    )
    .await;
    let t2 = s.login("ana", "ana-password").await;
    let player = s.start_stream(&t1, "127.0.0.7").await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    let works = async |t: &str| {
        s.call("GET", "/api/cameras/list", Some(t), Value::Null)
            .await
            .0
            == 200
    };
    assert!(works(&t1).await && works(&t2).await);

    // her own change: the old password is required, and a short new one is refused
    let change = async |t: &str, old: &str, new: &str| {
        s.call(
            "POST",
            "/api/auth/password",
            Some(t),
            json!({"old_password": old, "new_password": new}),
        )
        .await
    };
    let (st, v) = change(&t1, "not-her-password", "ana-new-password").await;
    assert_error(st, &v, 401, "unauthorized");
    let (st, v) = change(&t1, "ana-password", "short").await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = change(&t1, "ana-password", "ana-new-password").await;
    assert_eq!(st, 200, "{v}");
    let t3 = v["token"].as_str().unwrap().to_string();
    assert!(
        !works(&t1).await,
        "the token used for the change is replaced"
    );
    assert!(!works(&t2).await, "her other session has ended");
    assert_eq!(
        reqwest::get(&player).await.unwrap().status(),
        401,
        "and its player URLs"
    );
    assert!(works(&t3).await, "the token the change returned works");
    let c = client_from("127.0.0.23");
    assert_eq!(login_status(&c, &s, "ana", "ana-password").await, 401);
    assert_eq!(login_status(&c, &s, "ana", "ana-new-password").await, 200);

    // an admin resets it: all her sessions end
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/users/{uid}"),
            Some(&admin),
            json!({"password": "reset-by-admin"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["user"]["role"], "user", "role unchanged");
    assert!(!works(&t3).await);
    let t4 = s.login("ana", "reset-by-admin").await;
    assert!(works(&t4).await);
    // she may not reset anyone's, nor end anyone's sessions
    let (st, v) = s
        .call(
            "PUT",
            &format!("/api/users/{uid}"),
            Some(&t4),
            json!({"password": "self-reset-pw"}),
        )
        .await;
    assert_error(st, &v, 403, "forbidden");
    let (st, v) = s
        .call("POST", "/api/users/1/logout-all", Some(&t4), Value::Null)
        .await;
    assert_error(st, &v, 403, "forbidden");
    // an admin ends her sessions
    let (st, _) = s
        .call(
            "POST",
            &format!("/api/users/{uid}/logout-all"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    assert!(!works(&t4).await);
    assert!(works(&admin).await, "the admin's own session is untouched");
    let (st, v) = s
        .call("PUT", &format!("/api/users/{uid}"), Some(&admin), json!({}))
        .await;
    assert_error(st, &v, 400, "bad_request");
}

/// DNS rebinding: a page on the LAN that points its own name at the box reaches it with that
/// name as `Host`; a fresh box must not let it register the first admin.
#[tokio::test]
async fn a_name_the_box_does_not_answer_to_gets_421() {
    let s = Server::start_with(&[("ALLOWED_HOSTS", "cams.example.lan")]);
    let register = |host: &'static str| {
        s.client
            .post(s.url("/api/auth/register"))
            .header("host", host)
            .json(&json!({"username": "boss", "password": "first-user-pw"}))
            .send()
    };
    let r = register("rebind.attacker.example").await.unwrap();
    assert_eq!(r.status(), 421);
    let v: Value = r.json().await.unwrap();
    assert_error(
        reqwest::StatusCode::MISDIRECTED_REQUEST,
        &v,
        421,
        "misdirected_request",
    );
    assert!(
        v["error"].as_str().unwrap().contains("ALLOWED_HOSTS"),
        "{v}"
    );
    let r = s
        .client
        .get(s.url("/health"))
        .header("host", "rebind.attacker.example:5000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421, "every path");
    // nobody was registered: the first user is still to come, by a known name
    let r = register("cams.example.lan").await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    for host in ["localhost:5000", "127.0.0.1", "[::1]:5000"] {
        let r = s
            .client
            .get(s.url("/health"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
}
