//! `LOG_FORMAT=json`: every line vigia writes is one JSON object, with the request id on
//! what a request logs (the access line's `rid`, a handler's lines under `span.rid`), and the
//! camera and recording ids as fields of what a session and a recording log. A format vigia
//! does not know stops the start, naming the setting.

mod support;

use serde_json::{json, Value};
use support::cams::GstCams;
use support::{wait_until, Server};

/// Every line of the log as JSON (a line that is not JSON fails the test, quoting it).
fn lines(s: &Server) -> Vec<Value> {
    s.logs()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The first line whose `message` is `message` and whose fields include `fields`.
fn find(s: &Server, message: &str, fields: Value) -> Option<Value> {
    lines(s).into_iter().find(|l| {
        l["message"] == message
            && fields
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| k.split('.').try_fold(l, |at, key| at.get(key)) == Some(v))
    })
}

#[tokio::test]
async fn json_lines_carry_request_camera_and_recording_ids() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("LOG_FORMAT", "json")]);
    let admin = s.bootstrap_admin().await;
    let login = |rid: &'static str, pw: &'static str| {
        s.client
            .post(s.url("/api/auth/login"))
            .header("x-request-id", rid)
            .json(&json!({"username": "admin", "password": pw}))
            .send()
    };
    assert_eq!(
        login("rid-wrong-1", "wrong-password")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        login("rid-login-1", support::ADMIN_PW)
            .await
            .unwrap()
            .status(),
        200
    );

    let cam = "127.0.0.81";
    s.add_camera(&admin, json!({"ip": cam, "rtsp_url": cams.url("h264")}))
        .await;
    s.start_recording(&admin, cam, json!({"duration": 1})).await;
    let ended = wait_until("the recording's last line", 20, async || {
        find(&s, "recording ended", json!({"camera": cam}))
    })
    .await;

    // the format of every line
    for l in lines(&s) {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(
                l.get(key).is_some_and(|v| v.is_string()),
                "{key} missing: {l}"
            );
        }
    }
    // a request: its access line, and what its handler logged, under its id
    let access = find(&s, "request", json!({"rid": "rid-login-1"})).expect("the access line");
    assert_eq!(access["path"], "/api/auth/login");
    assert_eq!(access["status"], 200);
    let handler = find(&s, "login", json!({"span.rid": "rid-login-1"})).expect("the login line");
    assert_eq!(handler["span"]["name"], "request");
    assert!(handler["user_id"].is_number(), "{handler}");
    let refused = lines(&s)
        .into_iter()
        .find(|l| l["span"]["rid"] == "rid-wrong-1" && l["level"] == "WARN")
        .expect("the failed login's warning");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("failed login"),
        "{refused}"
    );
    // a camera's session and a recording
    find(&s, "live", json!({"camera": cam})).expect("the session's live line");
    assert!(ended["recording"].is_number(), "{ended}");
    assert_eq!(ended["status"], "completed");
    // no password in any line
    assert!(!s.logs().contains(support::ADMIN_PW) && !s.logs().contains("wrong-password"));
}

#[test]
fn an_unknown_log_format_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .env("DATA_DIR", dir.path())
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LOG_FORMAT") && err.contains("'xml'"), "{err}");
}
