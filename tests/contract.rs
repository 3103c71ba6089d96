//! The negative contract of every route in the route table, over real HTTP: no token, a
//! garbage token, an expired one, a revoked one, an `alg: none` one, one signed with another
//! key, a deleted user's one, an oversized body, malformed JSON, missing fields, the wrong
//! role, and an unknown id. Every answer must be the JSON error shape with the right status.
//! The test also fails when a route is added to the table without a row here.

mod support;

use serde_json::{json, Value};
use support::{alg_none, assert_error, expired, forge, Server, SECRET};

struct Case {
    method: &'static str,
    /// The route table's pattern this case covers.
    pattern: &'static str,
    /// A concrete path the caller may act on.
    path: String,
    /// "public", "optional" (registration), "aggregate" (anyone gets the aggregate, a token
    /// more), "token", "admin"
    access: &'static str,
    /// A valid body, or Null for routes that take none.
    body: Value,
    /// A path naming an unknown id (404 for an admin), if the route has ids.
    unknown: Option<String>,
}

fn cases(uid: i64, cam: &str) -> Vec<Case> {
    let c = |method, pattern, path: String, access, body, unknown: Option<String>| Case {
        method,
        pattern,
        path,
        access,
        body,
        unknown,
    };
    vec![
        c(
            "GET",
            "/health",
            "/health".into(),
            "public",
            Value::Null,
            None,
        ),
        c(
            "GET",
            "/stats",
            "/stats".into(),
            "aggregate",
            Value::Null,
            None,
        ),
        c(
            "GET",
            "/api/cameras/discover",
            "/api/cameras/discover?network_range=127.0.5.0/30".into(),
            "admin",
            Value::Null,
            None,
        ),
        c(
            "POST",
            "/api/cameras/discover",
            "/api/cameras/discover".into(),
            "admin",
            json!({"network_range": "127.0.5.0/30"}),
            None,
        ),
        c(
            "GET",
            "/api/nodes",
            "/api/nodes".into(),
            "admin",
            Value::Null,
            None,
        ),
        c("GET", "/", "/".into(), "public", Value::Null, None),
        c(
            "GET",
            "/ui/{}",
            "/ui/app.js".into(),
            "public",
            Value::Null,
            Some("/ui/nothing-here.js".into()),
        ),
        c(
            "GET",
            "/api/openapi.json",
            "/api/openapi.json".into(),
            "public",
            Value::Null,
            None,
        ),
        c(
            "GET",
            "/metrics",
            "/metrics".into(),
            "admin",
            Value::Null,
            None,
        ),
        c(
            "POST",
            "/api/auth/login",
            "/api/auth/login".into(),
            "public",
            json!({"username": "admin", "password": "whatever1"}),
            None,
        ),
        c(
            "POST",
            "/api/auth/logout",
            "/api/auth/logout".into(),
            "token",
            Value::Null,
            None,
        ),
        c(
            "POST",
            "/api/auth/register",
            "/api/auth/register".into(),
            "optional",
            json!({"username": "newbie", "password": "long-enough-1", "role": "user"}),
            None,
        ),
        c(
            "POST",
            "/api/auth/password",
            "/api/auth/password".into(),
            "token",
            json!({"old_password": "not-it-at-all", "new_password": "long-enough-2"}),
            None,
        ),
        c(
            "GET",
            "/api/users",
            "/api/users".into(),
            "admin",
            Value::Null,
            None,
        ),
        c(
            "POST",
            "/api/users/{}/logout-all",
            format!("/api/users/{uid}/logout-all"),
            "admin",
            Value::Null,
            Some("/api/users/99999/logout-all".into()),
        ),
        c(
            "GET",
            "/api/users/{}",
            format!("/api/users/{uid}"),
            "admin",
            Value::Null,
            Some("/api/users/99999".into()),
        ),
        c(
            "PUT",
            "/api/users/{}",
            format!("/api/users/{uid}"),
            "admin",
            json!({"role": "viewer"}),
            Some("/api/users/99999".into()),
        ),
        c(
            "DELETE",
            "/api/users/{}",
            format!("/api/users/{uid}"),
            "admin",
            Value::Null,
            Some("/api/users/99999".into()),
        ),
        c(
            "POST",
            "/api/users/{}/cameras",
            format!("/api/users/{uid}/cameras"),
            "admin",
            json!({"camera_ips": [cam]}),
            Some("/api/users/99999/cameras".into()),
        ),
        c(
            "DELETE",
            "/api/users/{}/cameras/{}",
            format!("/api/users/{uid}/cameras/{cam}"),
            "admin",
            Value::Null,
            Some(format!("/api/users/{uid}/cameras/10.99.99.99")),
        ),
        c(
            "GET",
            "/api/cameras/list",
            "/api/cameras/list".into(),
            "token",
            Value::Null,
            None,
        ),
        c(
            "POST",
            "/api/cameras",
            "/api/cameras".into(),
            "admin",
            json!({"ip": "127.0.0.99"}),
            None,
        ),
        c(
            "GET",
            "/api/cameras/{}",
            format!("/api/cameras/{cam}"),
            "token",
            Value::Null,
            Some("/api/cameras/10.99.99.99".into()),
        ),
        c(
            "PUT",
            "/api/cameras/{}",
            format!("/api/cameras/{cam}"),
            "admin",
            json!({"name": "x"}),
            Some("/api/cameras/10.99.99.99".into()),
        ),
        c(
            "DELETE",
            "/api/cameras/{}",
            format!("/api/cameras/{cam}"),
            "admin",
            Value::Null,
            Some("/api/cameras/10.99.99.99".into()),
        ),
        c(
            "GET",
            "/api/cameras/stream/{}",
            format!("/api/cameras/stream/{cam}"),
            "token",
            Value::Null,
            Some("/api/cameras/stream/10.99.99.99".into()),
        ),
        c(
            "DELETE",
            "/api/cameras/stream/{}",
            format!("/api/cameras/stream/{cam}"),
            "token",
            Value::Null,
            Some("/api/cameras/stream/10.99.99.99".into()),
        ),
        c(
            "POST",
            "/api/cameras/streams/batch",
            "/api/cameras/streams/batch".into(),
            "token",
            json!({"ips": [cam]}),
            None,
        ),
        c(
            "GET",
            "/api/cameras/streams/{}/{}",
            format!("/api/cameras/streams/{cam}/index.m3u8"),
            "token",
            Value::Null,
            Some("/api/cameras/streams/10.99.99.99/index.m3u8".into()),
        ),
        c(
            "POST",
            "/api/nvr/record/{}",
            format!("/api/nvr/record/{cam}"),
            "token",
            json!({"duration": 5}),
            Some("/api/nvr/record/10.99.99.99".into()),
        ),
        c(
            "DELETE",
            "/api/nvr/record/{}",
            format!("/api/nvr/record/{cam}"),
            "token",
            Value::Null,
            Some("/api/nvr/record/10.99.99.99".into()),
        ),
        c(
            "POST",
            "/api/nvr/records/batch",
            "/api/nvr/records/batch".into(),
            "token",
            json!({"ips": [cam], "duration": 5}),
            None,
        ),
        c(
            "GET",
            "/api/nvr/status/{}",
            format!("/api/nvr/status/{cam}"),
            "token",
            Value::Null,
            Some("/api/nvr/status/10.99.99.99".into()),
        ),
        c(
            "GET",
            "/api/nvr/recordings",
            "/api/nvr/recordings".into(),
            "token",
            Value::Null,
            None,
        ),
        c(
            "GET",
            "/api/nvr/recordings/{}/download",
            "/api/nvr/recordings/1/download".into(),
            "token",
            Value::Null,
            Some("/api/nvr/recordings/99999/download".into()),
        ),
        c(
            "DELETE",
            "/api/nvr/recordings/{}",
            "/api/nvr/recordings/1".into(),
            "token",
            Value::Null,
            Some("/api/nvr/recordings/99999".into()),
        ),
    ]
}

/// Fields whose absence must be a 400 for the JSON routes.
fn required(pattern: &str, method: &str) -> &'static [&'static str] {
    match (method, pattern) {
        ("POST", "/api/auth/login") => &["username", "password"],
        ("POST", "/api/auth/register") => &["username", "password"],
        ("PUT", "/api/users/{}") => &["role"],
        ("POST", "/api/users/{}/cameras") => &["camera_ips"],
        ("POST", "/api/cameras") => &["ip"],
        ("POST", "/api/cameras/streams/batch") => &["ips"],
        ("POST", "/api/nvr/records/batch") => &["ips"],
        _ => &[],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_rejects_bad_requests_with_the_json_error_shape() {
    contract(Server::start()).await;
}

async fn contract(s: Server) {
    let admin = s.bootstrap_admin().await;
    let cam = "127.0.0.10";
    s.add_camera(&admin, json!({"ip": cam})).await;
    let (uid, _) = s.add_user(&admin, "target", "user").await;
    let (_, viewer) = s.add_user(&admin, "viewer1", "viewer").await;
    s.call(
        "POST",
        &format!("/api/users/{uid}/cameras"),
        Some(&admin),
        json!({"camera_ips": [cam]}),
    )
    .await;

    // tokens that must all be refused (each used once before, so a remembered check would
    // let it through)
    let revoked = s.login("admin", support::ADMIN_PW).await;
    let (st, _) = s
        .call("GET", "/api/users", Some(&revoked), Value::Null)
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call("POST", "/api/auth/logout", Some(&revoked), Value::Null)
        .await;
    assert_eq!(st, 200);
    let (gone_id, gone) = s.add_user(&admin, "gone", "admin").await;
    let (st, _) = s.call("GET", "/api/users", Some(&gone), Value::Null).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/api/users/{gone_id}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    let now = chrono::Utc::now().timestamp();
    let bad_tokens: Vec<(&str, String)> = vec![
        ("garbage", "not-a-jwt".into()),
        ("expired", expired(1)),
        ("revoked", revoked),
        ("alg none", alg_none(1)),
        (
            "other key",
            forge(
                json!({"sub": "1", "role": "admin", "iat": now, "exp": now + 600, "jti": "k"}),
                jsonwebtoken::Algorithm::HS256,
                b"another-secret-another-secret-another",
            ),
        ),
        (
            "other alg",
            forge(
                json!({"sub": "1", "role": "admin", "iat": now, "exp": now + 600, "jti": "k"}),
                jsonwebtoken::Algorithm::HS512,
                SECRET.as_bytes(),
            ),
        ),
        (
            "no jti",
            forge(
                json!({"sub": "1", "role": "admin", "iat": now, "exp": now + 600}),
                jsonwebtoken::Algorithm::HS256,
                SECRET.as_bytes(),
            ),
        ),
        ("deleted user", gone),
    ];

    let cases = cases(uid, cam);
    for r in &vigia::api::ROUTES {
        assert!(
            cases
                .iter()
                .any(|c| c.method == r.method.as_str() && c.pattern == r.path),
            "route {} {} has no contract case",
            r.method,
            r.path
        );
    }

    let big = vec![b' '; 70 * 1024];
    for c in &cases {
        let what = format!("{} {}", c.method, c.path);
        let needs_token = c.access == "token" || c.access == "admin";
        if c.access == "aggregate" {
            let (st, v) = s.call(c.method, &c.path, None, c.body.clone()).await;
            assert_eq!(st, 200, "{what} without a token: {v}");
        }
        if needs_token || c.access == "optional" || c.access == "aggregate" {
            if needs_token {
                let (st, v) = s.call(c.method, &c.path, None, c.body.clone()).await;
                assert_error(st, &v, 401, "unauthorized");
            }
            for (name, t) in &bad_tokens {
                let (st, v) = s.call(c.method, &c.path, Some(t), c.body.clone()).await;
                assert_eq!(st, 401, "{what} with a {name} token: {v}");
                assert_error(st, &v, 401, "unauthorized");
            }
        }
        if c.method == "POST" && c.access == "optional" {
            // users exist: registering without a token is refused
            let (st, v) = s.call(c.method, &c.path, None, c.body.clone()).await;
            assert_error(st, &v, 401, "unauthorized");
        }
        if c.access == "admin" || c.access == "optional" {
            let (st, v) = s
                .call(c.method, &c.path, Some(&viewer), c.body.clone())
                .await;
            assert_eq!(st, 403, "{what} as viewer: {v}");
            assert_error(st, &v, 403, "forbidden");
            if !c.body.is_null() {
                // who may is answered before what the body says
                let (st, v) = s
                    .call_raw(c.method, &c.path, Some(&viewer), b"{not json".to_vec())
                    .await;
                assert_eq!(st, 403, "{what} as viewer with a malformed body: {v}");
            }
        }
        if c.pattern == "/api/nvr/record/{}" && c.method == "POST" {
            let (st, v) = s
                .call_raw(c.method, &c.path, Some(&viewer), b"{not json".to_vec())
                .await;
            assert_eq!(st, 403, "{what} as viewer with a malformed body: {v}");
        }
        // oversized body, from a caller who would otherwise be allowed
        let (st, v) = s
            .call_raw(c.method, &c.path, Some(&admin), big.clone())
            .await;
        assert_eq!(st, 413, "{what} oversized: {v}");
        assert_error(st, &v, 413, "payload_too_large");
        if !c.body.is_null() {
            for raw in [
                &b"{not json"[..],
                b"[1,2",
                b"\"str\"",
                b"",
                b"{\"username\": 5}",
            ] {
                // starting a recording takes an optional body: empty means continuous
                if raw.is_empty() && c.pattern == "/api/nvr/record/{}" {
                    continue;
                }
                let (st, v) = s
                    .call_raw(c.method, &c.path, Some(&admin), raw.to_vec())
                    .await;
                assert_eq!(
                    st,
                    400,
                    "{what} with body {:?}: {v}",
                    String::from_utf8_lossy(raw)
                );
                assert_error(st, &v, 400, "bad_request");
            }
            for field in required(c.pattern, c.method) {
                let mut body = c.body.clone();
                body.as_object_mut().unwrap().remove(*field);
                let (st, v) = s.call(c.method, &c.path, Some(&admin), body).await;
                assert_eq!(st, 400, "{what} without {field}: {v}");
                assert_error(st, &v, 400, "bad_request");
            }
        }
        if let Some(unknown) = &c.unknown {
            let (st, v) = s
                .call(c.method, unknown, Some(&admin), c.body.clone())
                .await;
            assert_eq!(st, 404, "{} {unknown}: {v}", c.method);
            assert_error(st, &v, 404, "not_found");
        }
    }
    // a batch with an impossible duration is refused whole, not camera by camera
    let (st, v) = s
        .call(
            "POST",
            "/api/nvr/records/batch",
            Some(&admin),
            json!({"ips": [cam], "duration": 0}),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");

    // nothing above changed anything
    let (_, users) = s.call("GET", "/api/users", Some(&admin), Value::Null).await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["admin", "target", "viewer1"]);
    let (_, u) = s
        .call(
            "GET",
            &format!("/api/users/{uid}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(u["role"], "user");
    assert_eq!(u["camera_ips"], json!([cam]));
    let (_, cams) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(cams["cameras"].as_array().unwrap().len(), 1);
    assert_eq!(cams["cameras"][0]["name"], "Camera 127.0.0.10");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let s = Server::start();
    let (st, v) = s.call("GET", "/api/nothing/here", None, Value::Null).await;
    assert_error(st, &v, 404, "not_found");
    let (st, v) = s.call("GET", "/favicon.ico", None, Value::Null).await;
    assert_error(st, &v, 404, "not_found");
    let (st, v) = s.call("GET", "/ui/", None, Value::Null).await;
    assert_error(st, &v, 404, "not_found");
    // the page is read-only
    let resp = s.client.post(s.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, OPTIONS");
    let resp = s
        .client
        .patch(s.url("/api/cameras/127.0.0.5"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert!(
        allow.contains("GET") && allow.contains("PUT") && allow.contains("DELETE"),
        "{allow}"
    );
    // a literal path is its own resource: PUT /api/cameras/list is no camera named "list"
    let resp = s
        .client
        .put(s.url("/api/cameras/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD, OPTIONS");
    let resp = s
        .client
        .patch(s.url("/api/cameras/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_error(
        reqwest::StatusCode::METHOD_NOT_ALLOWED,
        &v,
        405,
        "method_not_allowed",
    );
    let (st, v) = s.call("DELETE", "/api/auth/login", None, Value::Null).await;
    assert_error(st, &v, 405, "method_not_allowed");
}

#[tokio::test]
async fn a_huge_body_is_refused_before_it_is_sent_and_the_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sock.read_to_end(&mut buf),
    )
    .await
    .expect("the server answers and closes without waiting for 50 MB")
    .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(text.contains("\"code\":\"payload_too_large\""), "{text}");
}
