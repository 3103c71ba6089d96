//! `/metrics` over real HTTP, read by an independent parser (Python's `prometheus_client`,
//! installed by `scripts/test-deps.sh` into `target/pyenv`): who may read it, that it parses
//! (histograms cumulative, every family described), and that its figures move as frames flow
//! from a GStreamer camera, as players fetch, as a recording is written and as logins fail.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::cams::GstCams;
use support::{assert_error, wait_until, Server};

const TOKEN: &str = "scraper-token-0123456789";

/// One sample as the reference parser read it.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Value,
    value: f64,
}

/// The exposition through `tests/api/parse_metrics.py`.
fn parse(text: &str) -> Vec<Sample> {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/target/pyenv/bin/python");
    let mut child = Command::new(&python)
        .arg(format!("{root}/tests/api/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}; run ./scripts/test-deps.sh"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_string(),
                labels: v["labels"].clone(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// The value of sample `name` whose labels include `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: Value) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map_or(0.0, |s| s.value)
}

async fn scrape(s: &Server, bearer: &str) -> Vec<Sample> {
    let resp = s
        .client
        .get(s.url("/metrics"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&resp.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_move_as_frames_flow() {
    let cams = GstCams::start();
    let s = Server::start_with(&[("METRICS_TOKEN", TOKEN), ("RECORDING_SYNC_SECONDS", "1")]);
    let admin = s.bootstrap_admin().await;
    let (_, viewer) = s.add_user(&admin, "viewer1", "viewer").await;
    let cam = "127.0.0.71";
    s.add_camera(&admin, json!({"ip": cam, "rtsp_url": cams.url("h264")}))
        .await;

    // who may read it
    for (who, bearer, status, code) in [
        ("a viewer", viewer.as_str(), 403, "forbidden"),
        (
            "a wrong scraper token",
            "scraper-token-9876543210",
            401,
            "unauthorized",
        ),
    ] {
        let (st, v) = s.call("GET", "/metrics", Some(bearer), Value::Null).await;
        assert_error(st, &v, status, code);
        assert_eq!(st, status, "{who}");
    }
    let (st, v) = s.call("GET", "/metrics", None, Value::Null).await;
    assert_error(st, &v, 401, "unauthorized");
    let before = scrape(&s, &admin).await;
    assert_eq!(
        value(
            &before,
            "vigia_camera_state",
            json!({"camera": cam, "state": "idle"})
        ),
        1.0
    );
    assert_eq!(value(&before, "vigia_build_info", json!({})), 1.0);
    assert!(value(&before, "process_open_fds", json!({})) > 3.0);
    assert!(value(&before, "process_resident_memory_bytes", json!({})) > 1e6);
    assert!(value(&before, "vigia_disk_free_bytes", json!({"dir": "data"})) > 0.0);

    // frames flow: a player fetches the live window
    let hls = s.start_stream(&admin, cam).await["hls_url"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the camera is live", 20, async || {
        (s.stream_state(&admin, cam).await["state"] == "live").then_some(())
    })
    .await;
    let playlist = s.client.get(&hls).send().await.unwrap();
    assert_eq!(playlist.status(), 200);
    let first = scrape(&s, TOKEN).await;
    let live = json!({"camera": cam, "state": "live"});
    assert_eq!(value(&first, "vigia_camera_state", live.clone()), 1.0);
    assert_eq!(
        value(&first, "vigia_camera_viewers", json!({"camera": cam})),
        1.0
    );
    assert_eq!(value(&first, "vigia_streams_active", json!({})), 1.0);
    let frames = |m: &[Sample]| value(m, "vigia_camera_frames_total", json!({"camera": cam}));
    let bytes = |m: &[Sample]| {
        value(
            m,
            "vigia_camera_received_bytes_total",
            json!({"camera": cam}),
        )
    };
    let parts = |m: &[Sample]| value(m, "vigia_part_publish_seconds_count", json!({}));
    let route = json!({"route": "GET /api/cameras/streams/{}/{}"});
    let files = |m: &[Sample]| {
        value(
            m,
            "vigia_http_request_duration_seconds_count",
            route.clone(),
        )
    };
    assert!(
        files(&first) >= 1.0,
        "the playlist request is counted by its route pattern"
    );
    let later = wait_until("frames, bytes and parts to move", 10, async || {
        let m = scrape(&s, TOKEN).await;
        (frames(&m) >= frames(&first) + 25.0
            && bytes(&m) > bytes(&first)
            && parts(&m) > parts(&first))
        .then_some(m)
    })
    .await;
    assert_eq!(
        value(
            &later,
            "vigia_camera_sessions_opened_total",
            json!({"camera": cam})
        ),
        1.0
    );
    assert_eq!(
        value(
            &later,
            "vigia_camera_reconnects_total",
            json!({"camera": cam})
        ),
        0.0
    );
    // raw paths never become labels
    assert!(
        !later
            .iter()
            .any(|m| m.labels.to_string().contains(cam) && m.name.starts_with("vigia_http")),
        "a camera id leaked into an HTTP label"
    );

    // a recording of 2 s: fragments, bytes and fsyncs counted
    s.start_recording(&admin, cam, json!({"duration": 2})).await;
    let recorded = wait_until("the recording to be written and synced", 20, async || {
        let m = scrape(&s, TOKEN).await;
        (value(&m, "vigia_recording_fragments_total", json!({})) >= 1.0
            && value(&m, "vigia_recording_fsync_seconds_count", json!({})) >= 1.0
            && value(&m, "vigia_recordings_running", json!({})) == 0.0)
            .then_some(m)
    })
    .await;
    assert!(value(&recorded, "vigia_recording_bytes_written_total", json!({})) > 10_000.0);

    // logins: a failure is counted, and the store's calls are timed
    let (st, _) = s
        .call(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "admin", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(st, 401);
    let last = scrape(&s, TOKEN).await;
    assert_eq!(
        value(&last, "vigia_login_failures_total", json!({})),
        value(&recorded, "vigia_login_failures_total", json!({})) + 1.0
    );
    assert!(
        value(
            &last,
            "vigia_store_operation_seconds_count",
            json!({"op": "read"})
        ) > 0.0
    );
    let login = json!({"route": "POST /api/auth/login", "code": "4xx"});
    assert!(value(&last, "vigia_http_responses_total", login) >= 1.0);

    // every series the Grafana dashboard queries is one vigia serves
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("vigia_") || word.starts_with("process_") {
                    queried.push(word.to_string());
                }
            }
        }
    }
    assert!(queried.len() > 20, "{queried:?}");
    for name in &queried {
        assert!(
            last.iter().any(|m| &m.name == name),
            "the dashboard queries {name}, which /metrics does not serve"
        );
    }
}
