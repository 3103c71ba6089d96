//! What an old client of the Flask backend trips on, over real HTTP: `/stats` without a
//! token, the old brand key `dahu`, the old `type` field, `RTSP_TEMPLATES`, the old
//! backend's settings left in the environment.

mod support;

use serde_json::{json, Value};
use support::cams::GstCams;
use support::{assert_error, wait_until, Server};

/// `POST /api/cameras` with `body` is refused as a bad request; the error body.
async fn refused_camera(s: &Server, admin: &str, body: Value) -> Value {
    let (st, v) = s.call("POST", "/api/cameras", Some(admin), body).await;
    assert_error(st, &v, 400, "bad_request");
    v
}

#[tokio::test]
async fn stats_without_a_token_are_the_aggregate_only() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    s.add_camera(&admin, json!({"ip": "127.0.0.61", "name": "Back door"}))
        .await;
    s.add_camera(
        &admin,
        json!({"ip": "127.0.0.62", "name": "Till", "is_active": false}),
    )
    .await;
    let (st, v) = s.call("GET", "/stats", None, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["cameras"],
        json!({"total": 2, "active": 1, "recording": 0})
    );
    assert_eq!(v["streams"]["active"], 0);
    assert_eq!(v["recordings"]["running"], 0);
    assert!(v["uptime_sec"].as_u64().is_some(), "{v}");
    assert!(v["memory"]["rss_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["disk"]["data_dir"]["free_bytes"].as_u64().is_some(),
        "{v}"
    );
    let text = v.to_string();
    for secret in [
        "127.0.0.61",
        "127.0.0.62",
        "Back door",
        "Till",
        "detail",
        "users",
        "http",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // a bad token is still refused, and a good one sees the cameras
    let (st, v) = s.call("GET", "/stats", Some("garbage"), Value::Null).await;
    assert_error(st, &v, 401, "unauthorized");
    let (st, v) = s.call("GET", "/stats", Some(&admin), Value::Null).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["cameras"]["detail"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
}

#[tokio::test]
async fn the_old_brand_key_dahu_is_dahua() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    for (ip, brand) in [("127.0.0.63", "dahu"), ("127.0.0.64", "DAHU")] {
        let v = s
            .add_camera(&admin, json!({"ip": ip, "brand": brand, "channel": 2}))
            .await;
        assert_eq!(v["brand"], "dahua", "{v}");
        assert_eq!(
            v["rtsp_url"],
            format!("rtsp://{ip}:554/cam/realmonitor?channel=2&subtype=0")
        );
    }
    let (st, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.63-ch2",
            Some(&admin),
            json!({"brand": "hikvision"}),
        )
        .await;
    assert_eq!(
        (st.as_u16(), &v["brand"]),
        (200, &json!("hikvision")),
        "{v}"
    );
    refused_camera(&s, &admin, json!({"ip": "127.0.0.65", "brand": "dahu2"})).await;
}

/// The old backend's free-text `type`: kept as sent, changed by PUT, "dvr" for a DVR channel
/// past the first and "ip" otherwise when none is sent; bounded like every field.
#[tokio::test]
async fn cameras_carry_the_old_type_field() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.66", "type": " ptz "}))
        .await;
    assert_eq!(v["type"], "ptz", "{v}");
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.67", "channel": 4}))
        .await;
    assert_eq!(v["type"], "dvr", "{v}");
    let v = s.add_camera(&admin, json!({"ip": "127.0.0.68"})).await;
    assert_eq!(v["type"], "ip", "{v}");
    let (st, v) = s
        .call(
            "PUT",
            "/api/cameras/127.0.0.68",
            Some(&admin),
            json!({"type": "dome"}),
        )
        .await;
    assert_eq!((st.as_u16(), &v["type"]), (200, &json!("dome")), "{v}");
    let (_, list) = s
        .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
        .await;
    let kinds: Vec<&str> = list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ptz", "dvr", "dome"], "{list}");
    for bad in [json!("x".repeat(33)), json!("a\u{7}b"), json!(5)] {
        refused_camera(&s, &admin, json!({"ip": "127.0.0.69", "type": bad})).await;
    }
}

#[tokio::test]
async fn the_flask_backends_unused_settings_are_named_once_and_ignored() {
    let s = Server::start_with(&[
        ("FLASK_ENV", "production"),
        ("FFMPEG_PATH", "/usr/bin/ffmpeg"),
        ("HLS_OUTPUT_DIR", "/var/www/hls"),
        ("BASE_DIR", "/opt/nvr"),
    ]);
    let (st, _) = s.call("GET", "/health", None, Value::Null).await;
    assert_eq!(st, 200, "it starts");
    let line = wait_until("the warning", 10, async || {
        s.logs()
            .lines()
            .find(|l| l.contains("unused"))
            .map(str::to_string)
    })
    .await;
    assert!(
        line.contains("BASE_DIR, FFMPEG_PATH, FLASK_ENV, HLS_OUTPUT_DIR"),
        "{line}"
    );
    assert_eq!(s.logs().matches("are set but unused").count(), 1);
}

#[tokio::test]
async fn the_recordings_list_says_how_many_there_are_and_where_the_next_page_starts() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    // cameras that never answer: a recording's row exists from the request on
    let closed = support::free_port();
    for n in 1..=3 {
        let ip = format!("127.0.0.7{n}");
        s.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": format!("rtsp://127.0.0.1:{closed}/cam{n}")}),
        )
        .await;
        s.start_recording(&admin, &ip, json!({"duration": 60}))
            .await;
        let (st, v) = s
            .call(
                "DELETE",
                &format!("/api/nvr/record/{ip}"),
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let page = |q: &'static str| {
        let (s, admin) = (&s, &admin);
        async move {
            let (st, v) = s
                .call(
                    "GET",
                    &format!("/api/nvr/recordings{q}"),
                    Some(admin),
                    Value::Null,
                )
                .await;
            assert_eq!(st, 200, "{v}");
            let n = v["recordings"].as_array().map(Vec::len);
            (n, v["total"].clone(), v["next_offset"].clone())
        }
    };
    assert_eq!(page("").await, (Some(3), json!(3), Value::Null));
    assert_eq!(page("?limit=2").await, (Some(2), json!(3), json!(2)));
    assert_eq!(
        page("?limit=2&offset=2").await,
        (Some(1), json!(3), Value::Null)
    );
    assert_eq!(
        page("?camera_ip=127.0.0.72").await,
        (Some(1), json!(1), Value::Null)
    );
    assert_eq!(page("?offset=5").await, (Some(0), json!(3), Value::Null));
}

#[tokio::test]
async fn a_camera_carries_its_hls_url_while_it_streams() {
    let s = Server::start();
    let admin = s.bootstrap_admin().await;
    let closed = support::free_port();
    for ip in ["127.0.0.81", "127.0.0.82"] {
        s.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": format!("rtsp://127.0.0.1:{closed}/x")}),
        )
        .await;
    }
    let hls_urls = async || {
        let (st, v) = s
            .call("GET", "/api/cameras/list", Some(&admin), Value::Null)
            .await;
        assert_eq!(st, 200, "{v}");
        v["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["id"].as_str().unwrap().to_string(), c["hls_url"].clone()))
            .collect::<Vec<_>>()
    };
    let idle = hls_urls().await;
    assert!(idle.iter().all(|(_, u)| u.is_null()), "{idle:?}");
    let started = s.start_stream(&admin, "127.0.0.81").await;
    let urls = hls_urls().await;
    let (_, one) = urls.iter().find(|(id, _)| id == "127.0.0.81").unwrap();
    assert_eq!(
        one, &started["hls_url"],
        "the same playable URL as the stream call's"
    );
    assert!(one
        .as_str()
        .unwrap()
        .contains("/api/cameras/streams/127.0.0.81/index.m3u8?t="));
    let (_, other) = urls.iter().find(|(id, _)| id == "127.0.0.82").unwrap();
    assert!(other.is_null(), "not streaming: {other}");
    let (_, v) = s
        .call("GET", "/api/cameras/127.0.0.81", Some(&admin), Value::Null)
        .await;
    assert_eq!(v["hls_url"], started["hls_url"]);
    let (st, _) = s
        .call(
            "DELETE",
            "/api/cameras/stream/127.0.0.81",
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200);
    let stopped = hls_urls().await;
    assert!(stopped.iter().all(|(_, u)| u.is_null()), "{stopped:?}");
}

/// The old flow: discover, then ask for the stream of an address the scan found. An admin's
/// request adds it (as assigning it does); anyone else's is refused and adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_then_stream_adds_what_the_scan_found() {
    const CAM: &str = "127.0.5.10";
    const OTHER: &str = "127.0.5.11";
    let cams: Vec<_> = [CAM, OTHER]
        .iter()
        .map(|ip| {
            support::cams::Camsim::start_args(&[
                "--listen",
                &format!("{ip}:0"),
                "--only",
                "/stream1",
            ])
        })
        .collect();
    let ports = format!("{},{}", cams[0].port, cams[1].port);
    let s = Server::start_with(&[("SCAN_PORTS", &ports), ("ONVIF_TIMEOUT", "1")]);
    let admin = s.bootstrap_admin().await;
    let (_, user) = s.add_user(&admin, "guard", "user").await;
    let (st, v) = s
        .call(
            "POST",
            "/api/cameras/discover",
            Some(&admin),
            json!({"network_range": "127.0.5.8/29"}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["devices"].as_array().map(Vec::len), Some(2), "{v}");
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/cameras/{CAM}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 404, "found, not added yet");

    let started = s.start_stream(&admin, CAM).await;
    assert!(started["hls_url"].as_str().is_some(), "{started}");
    let (st, cam) = s
        .call(
            "GET",
            &format!("/api/cameras/{CAM}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "added from the scan: {cam}");
    assert_eq!(
        cam["rtsp_url"],
        format!("rtsp://{CAM}:{}/stream1", cams[0].port)
    );
    wait_until("live", 20, async || {
        let v = s.stream_state(&admin, CAM).await;
        (v["state"] == "live").then_some(())
    })
    .await;

    // a user cannot add cameras: refused (403 before 404 for non-admins), nothing added
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/cameras/stream/{OTHER}"),
            Some(&user),
            Value::Null,
        )
        .await;
    assert_error(st, &v, 403, "forbidden");
    let (st, _) = s
        .call(
            "GET",
            &format!("/api/cameras/{OTHER}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 404);
}

/// `RTSP_TEMPLATES` as the old backend's `.env` had it: a whole-URL template replaces a built-in
/// brand's (hikvision here points at sub-streams the test DVR does not have) and adds a brand
/// (acme, at the DVR's paths). A scan probes the added brand after the built-in ones and finds
/// the DVR as acme with both channels; discover-then-stream adds and plays it; a camera added
/// by hand gets its URL from the template; an unknown brand is refused naming the known ones;
/// a malformed setting stops the start with a sentence naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_templates_replace_and_add_brands_and_discovery_probes_them() {
    const DVR: &str = "127.0.3.40";
    let dvr = GstCams::start_args(&["--address", DVR, "--dvr", "2"]);
    let templates = json!({
        "hikvision": "rtsp://{user}:{password}@{ip}:{port}/Streaming/Channels/{channel}02",
        "ACME": "rtsp://{user}:{password}@{ip}:{port}/Streaming/Channels/{channel}01",
    })
    .to_string();
    let port = dvr.port.to_string();
    let s = Server::start_with(&[
        ("RTSP_TEMPLATES", &templates),
        ("SCAN_PORTS", &port),
        ("ONVIF_TIMEOUT", "1"),
    ]);
    let admin = s.bootstrap_admin().await;
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/cameras/discover?network_range={DVR}/32"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let d = &v["devices"][0];
    assert_eq!(d["brand"], "acme", "{v}");
    assert_eq!(
        d["channels"],
        json!([
            {"channel": 1, "rtsp_path": "/Streaming/Channels/101"},
            {"channel": 2, "rtsp_path": "/Streaming/Channels/201"}
        ]),
        "{v}"
    );
    // discover, then stream channel 2: added from the scan with the added brand's URL
    s.streams_cleanly(&admin, &format!("{DVR}-ch2")).await;
    let (_, cam) = s
        .call(
            "GET",
            &format!("/api/cameras/{DVR}-ch2"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(cam["brand"], "acme", "{cam}");
    assert_eq!(cam["type"], "dvr", "{cam}");
    // by hand: the replaced template builds the URL, credentials in it masked
    let v = s
        .add_camera(
            &admin,
            json!({"ip": "127.0.0.70", "brand": "hikvision", "channel": 3, "username": "u", "password": "p"}),
        )
        .await;
    assert_eq!(
        v["rtsp_url"], "rtsp://u:***@127.0.0.70:554/Streaming/Channels/302",
        "{v}"
    );
    let v = s
        .add_camera(&admin, json!({"ip": "127.0.0.71", "brand": "Acme"}))
        .await;
    assert_eq!(v["brand"], "acme", "{v}");
    assert_eq!(
        v["rtsp_url"], "rtsp://127.0.0.71:554/Streaming/Channels/101",
        "{v}"
    );
    let v = refused_camera(&s, &admin, json!({"ip": "127.0.0.72", "brand": "axis"})).await;
    assert!(v["error"].as_str().unwrap().contains("acme"), "{v}");

    // a setting that cannot be read stops the start, naming it
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .env("DATA_DIR", dir.path())
        .env("RTSP_TEMPLATES", r#"{"axis": "http://{ip}/x"}"#)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RTSP_TEMPLATES") && err.contains("'axis'"),
        "{err}"
    );
}
