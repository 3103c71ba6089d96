//! Service-level behaviour over real HTTP and real processes: health and stats, CORS,
//! request ids, configuration errors (exit 78), `.env` and flag precedence, the generated
//! secret key, restart persistence, and HTTPS with rustls.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::{json, Value};
use support::{assert_error, Server, ADMIN_PW};

#[tokio::test]
async fn health_tells_whether_the_service_can_work() {
    let s = Server::start();
    let (st, v) = s.call("GET", "/health", None, Value::Null).await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["checks"], json!({"store": "ok", "data_dir": "writable"}));
    assert!(v.get("cameras").is_none() && v.get("users").is_none());
    // a fresh box says it has no admin yet (the web page then offers to create one) …
    assert_eq!(v["needs_first_admin"], true);
    s.bootstrap_admin().await;
    let (_, v) = s.call("GET", "/health", None, Value::Null).await;
    // … and stops saying so once one exists
    assert_eq!(v["needs_first_admin"], false);
    // the data directory disappears under the running service
    let moved = s.data_dir.with_extension("moved");
    std::fs::rename(&s.data_dir, &moved).unwrap();
    let (st, v) = s.call("GET", "/health", None, Value::Null).await;
    std::fs::rename(&moved, &s.data_dir).unwrap();
    assert_error(st, &v, 503, "service_unavailable");
    assert!(
        v["error"].as_str().unwrap().contains("data directory"),
        "{v}"
    );
    let (st, _) = s.call("GET", "/health", None, Value::Null).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn stats_show_counts_and_only_visible_cameras() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.80"})).await;
    s.add_camera(&admin, json!({"ip": "127.0.0.81", "is_active": false}))
        .await;
    let (uid, user) = s.add_user(&admin, "ana", "user").await;
    s.call(
        "POST",
        &format!("/api/users/{uid}/cameras"),
        Some(&admin),
        json!({"camera_ips": ["127.0.0.81"]}),
    )
    .await;
    let (st, v) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(st, 200);
    assert_eq!(v["cameras"]["total"], 2);
    assert_eq!(v["cameras"]["active"], 1);
    assert_eq!(v["users"], 2);
    assert!(v["memory"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(v["disk"]["data_dir"]["free_bytes"].as_u64().unwrap() > 0);
    assert!(v["uptime_sec"].is_u64());
    let (_, v) = s.call("GET", "/stats", Some(&user), Value::Null).await;
    assert_eq!(v["cameras"]["total"], 1);
    assert_eq!(v["cameras"]["detail"][0]["id"], "127.0.0.81");
    assert!(v.get("users").is_none(), "user counts are for admins");
}

#[tokio::test]
async fn cors_follows_allowed_origins() {
    let s = Server::start_with(&[("ALLOWED_ORIGINS", "http://ui.lan:8080, http://other.lan")]);
    let pre = |origin: &str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/api/cameras/list"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = pre("http://ui.lan:8080").await.unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://ui.lan:8080");
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("Authorization"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("DELETE"));
    let r = pre("http://evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = s
        .client
        .get(s.url("/health"))
        .header("origin", "http://other.lan")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://other.lan"
    );
    assert_eq!(r.headers()["vary"], "Origin");
    let r = s
        .client
        .get(s.url("/health"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let s = Server::start();
    let r = s
        .client
        .get(s.url("/health"))
        .header("x-request-id", "abc-123_X")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123_X");
    let r = s
        .client
        .get(s.url("/health"))
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // the access line reaches the log through a pipe: wait for it rather than race it
    support::wait_until("the request id in the log", 5, async || {
        s.logs().contains("rid=abc-123_X").then_some(())
    })
    .await;
}

fn run_config(env: &[(&str, &str)], args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .args(args)
        .env_clear()
        .current_dir(dir)
        .env("DATA_DIR", dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_settings_stop_start_up_with_exit_78_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_ALGORITHM", "none"),
        ("MAX_STREAMS", "many"),
        ("JWT_TOKEN_EXPIRATION", "0"),
        ("LISTEN_ADDR", "localhost"),
        ("SECRET_KEY", "too-short"),
        ("ALLOWED_ORIGINS", "ui.lan"),
        ("LOW_LATENCY_HLS", "perhaps"),
        ("SCAN_PORTS", "554,0"),
        ("ONVIF_TIMEOUT", "-1"),
        ("DEFAULT_NETWORK_RANGE", "192.168.1.0"),
        ("TLS_CERT", "/nonexistent.pem"),
    ] {
        let mut env = vec![(var, value)];
        if var == "TLS_CERT" {
            env.push(("TLS_KEY", "/also-missing.pem"));
        }
        let (code, err) = run_config(&env, &[], dir.path());
        assert_eq!(code, 78, "{var}={value}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {err}");
        assert!(lines[0].contains(var), "{var}: {err}");
        if var == "TLS_CERT" {
            assert!(lines[0].contains("/nonexistent.pem"), "{err}");
        }
        if var == "SECRET_KEY" {
            assert!(!err.contains(value), "the bad secret is not echoed");
        }
    }
}

#[tokio::test]
async fn dotenv_is_read_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "JWT_ALGORITHM=HS999\n").unwrap();
    let (code, err) = run_config(&[], &[], dir.path());
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("JWT_ALGORITHM"), "{err}");
    std::fs::remove_file(dir.path().join(".env")).unwrap();
    let (code, err) = run_config(
        &[("MAX_STREAMS", "lots")],
        &["--max-streams", "oops"],
        dir.path(),
    );
    assert_eq!(code, 78);
    assert!(
        err.contains("'oops'"),
        "the flag's value is the one used: {err}"
    );

    let s = Server::start_with(&[("MAX_STREAMS", "9")]);
    let admin = s.bootstrap_admin().await;
    let (_, v) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(v["limits"]["max_streams"], 9);
}

#[tokio::test]
async fn a_missing_secret_is_generated_once_with_mode_0600_and_reused() {
    let mut s = Server::start_embedded_with(&[("SECRET_KEY", "")]);
    let path = s.data_dir.join("secret_key");
    let meta = std::fs::metadata(&path).expect("secret_key created");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    assert_eq!(key.len(), 64, "256 bits, hex");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let admin = s.bootstrap_admin().await;
    s.restart();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        key,
        "reused, not regenerated"
    );
    let (st, _) = s.call("GET", "/api/users", Some(&admin), Value::Null).await;
    assert_eq!(st, 200, "tokens survive a restart with the generated key");
    // the forged-with-test-secret token must not work against a generated key
    let now = chrono::Utc::now().timestamp();
    let forged = support::forge(
        json!({"sub": "1", "role": "admin", "iat": now, "exp": now + 600, "jti": "f"}),
        jsonwebtoken::Algorithm::HS256,
        support::SECRET.as_bytes(),
    );
    let (st, _) = s
        .call("GET", "/api/users", Some(&forged), Value::Null)
        .await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn users_cameras_and_assignments_survive_a_restart() {
    let mut s = Server::start();
    let admin = s.bootstrap_admin().await;
    let (uid, _) = s.add_user(&admin, "ana", "viewer").await;
    s.add_camera(&admin, json!({"ip": "127.0.0.90", "channel": 2, "brand": "dahua", "username": "u", "password": "pw-keep"})).await;
    s.call(
        "POST",
        &format!("/api/users/{uid}/cameras"),
        Some(&admin),
        json!({"camera_ips": ["127.0.0.90-ch2"]}),
    )
    .await;
    let (_, before) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(s.stop().code(), Some(0), "SIGTERM exits 0");
    s.restart();
    let (_, after) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    assert_eq!(before, after);
    let (_, u) = s
        .call(
            "GET",
            &format!("/api/users/{uid}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(u["role"], "viewer");
    assert_eq!(u["camera_ips"], json!(["127.0.0.90-ch2"]));
    let token = s.login("ana", "ana-password").await;
    let (st, _) = s
        .call(
            "GET",
            "/api/cameras/127.0.0.90-ch2",
            Some(&token),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    s.login("admin", ADMIN_PW).await;
}

#[tokio::test]
async fn https_with_rustls_when_cert_and_key_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let s = Server::start_with(&[
        ("TLS_CERT", cert_path.to_str().unwrap()),
        ("TLS_KEY", key_path.to_str().unwrap()),
    ]);
    assert!(s.base.starts_with("https://"), "{}", s.base);
    let (st, v) = s.call("GET", "/health", None, Value::Null).await;
    assert_eq!((st.as_u16(), v["status"].as_str()), (200, Some("ok")));
    let plain = s.base.replace("https://", "http://");
    let r = reqwest::get(format!("{plain}/health")).await;
    assert!(
        r.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP is not served"
    );
    let admin = s.bootstrap_admin().await;
    assert!(!admin.is_empty());
}
