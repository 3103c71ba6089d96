//! Discovery on loopback only (127.0.3.0/27 here; never a private or public range): a
//! 2-channel Hikvision-style DVR (GStreamer's rtsp-server at /Streaming/Channels/101 and /201),
//! a Dahua-path camera behind Digest (the simulator), and an ONVIF camera (a test double from
//! the ONVIF message formats, streaming from GStreamer) are found with brand, channels and
//! auth status right, added, and streamed end to end; wrong credentials are tried once; bad
//! input gets the right errors; and a scan where nothing answers (a network namespace whose
//! packets go nowhere) stays within 3 s for a /24.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cams::{Camsim, GstCams};
use support::onvif::{OnvifDouble, Profile};
use support::{assert_error, Server};

const DVR: &str = "127.0.3.10";
const DAHUA: &str = "127.0.3.20";
const ONVIF: &str = "127.0.3.30";
const RANGE: &str = "127.0.3.0/27";
/// Odd characters a real password has: '@', ':', '/', '&', '=', '%', a quote, non-ASCII.
const PASSWORD: &str = "p@ss:w/rd&=%\"ö";

fn device<'a>(v: &'a Value, ip: &str) -> &'a Value {
    let all = v["devices"].as_array().expect("devices");
    let found: Vec<&Value> = all.iter().filter(|d| d["ip"] == ip).collect();
    assert_eq!(found.len(), 1, "{ip} once in {v}");
    found[0]
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dvr_a_camera_and_an_onvif_device_are_found_added_and_streamed() {
    let dvr = GstCams::start_args(&["--address", DVR, "--dvr", "2"]);
    let dahua = Camsim::start_args(&[
        "--listen",
        &format!("{DAHUA}:0"),
        "--only",
        "/cam/realmonitor?channel=1&subtype=0",
        "--auth",
        "--user",
        "admin",
        "--password",
        PASSWORD,
    ]);
    let onvif_cam = GstCams::start_args(&["--address", ONVIF]);
    let _double = OnvifDouble::start(
        ONVIF.parse().unwrap(),
        "ACME",
        "OD-2 Dome",
        "admin",
        PASSWORD,
        vec![
            Profile {
                token: "main",
                source: "vs0",
                uri: format!("rtsp://{ONVIF}:{}/h264", onvif_cam.port),
            },
            Profile {
                token: "sub",
                source: "vs0",
                uri: format!("rtsp://{ONVIF}:{}/h264?sub=1", onvif_cam.port),
            },
        ],
    )
    .await;
    let ports = format!("{},{}", dvr.port, dahua.port);
    let s = Server::start_with(&[
        ("SCAN_PORTS", &ports),
        ("ONVIF_TIMEOUT", "2"),
        ("DEFAULT_NETWORK_RANGE", RANGE),
    ]);
    let admin = s.bootstrap_admin().await;

    // without credentials (the default range): the DVR is open, the others need a login
    let (st, v) = s
        .call("GET", "/api/cameras/discover", Some(&admin), Value::Null)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["network_range"], RANGE);
    assert_eq!(
        v["devices"].as_array().unwrap().len(),
        3,
        "exactly them: {v}"
    );
    let d = device(&v, DVR);
    assert_eq!(
        (&d["port"], &d["brand"], &d["status"], &d["onvif"]),
        (
            &json!(dvr.port),
            &json!("hikvision"),
            &json!("ok"),
            &json!(false)
        )
    );
    assert_eq!(
        d["channels"],
        json!([
            {"channel": 1, "rtsp_path": "/Streaming/Channels/101"},
            {"channel": 2, "rtsp_path": "/Streaming/Channels/201"}
        ])
    );
    let d = device(&v, DAHUA);
    assert_eq!(
        (&d["status"], &d["channels"]),
        (&json!("needs_credentials"), &json!([]))
    );
    let d = device(&v, ONVIF);
    assert_eq!(
        (&d["status"], &d["onvif"]),
        (&json!("needs_credentials"), &json!(true))
    );
    assert_eq!(d["name"], "Yard Camera");
    assert_eq!(dahua.failed_logins(), 0);

    // wrong credentials: each device refuses them once, and nothing more is tried
    let (st, v) = s
        .call(
            "POST",
            "/api/cameras/discover",
            Some(&admin),
            json!({"network_range": RANGE, "credentials": {"username": "admin", "password": "Zq9-not-it"}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(device(&v, DAHUA)["status"], "wrong_credentials");
    assert_eq!(device(&v, ONVIF)["status"], "wrong_credentials");
    assert_eq!(
        dahua.failed_logins(),
        1,
        "one failed login, not one per template"
    );

    // the right ones, with odd characters, in the URL form (percent-encoded)
    let t = Instant::now();
    let (st, v) = s
        .call(
            "GET",
            &format!(
                "/api/cameras/discover?network_range={}&credentials={}",
                pct(RANGE),
                pct(&format!("admin:{PASSWORD}"))
            ),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    eprintln!("scan with credentials: {:?}", t.elapsed());
    let d = device(&v, DAHUA);
    assert_eq!(
        (&d["brand"], &d["status"], &d["port"]),
        (&json!("dahua"), &json!("ok"), &json!(dahua.port))
    );
    assert_eq!(
        d["channels"],
        json!([{"channel": 1, "rtsp_path": "/cam/realmonitor?channel=1&subtype=0"}])
    );
    let d = device(&v, ONVIF);
    assert_eq!(
        (&d["brand"], &d["model"], &d["status"], &d["port"]),
        (
            &json!("ACME"),
            &json!("OD-2 Dome"),
            &json!("ok"),
            &json!(onvif_cam.port)
        )
    );
    assert_eq!(
        d["channels"],
        json!([{"channel": 1, "rtsp_path": "/h264"}]),
        "main and sub profile of one source: one channel"
    );
    assert_eq!(device(&v, DVR)["channels"].as_array().unwrap().len(), 2);
    let text = v.to_string();
    assert!(
        !text.contains("p@ss") && !text.contains("Zq9"),
        "no credentials in {text}"
    );
    assert_eq!(dahua.failed_logins(), 1);

    // asked again within CACHE_TTL: the cached answer
    let (_, again) = s
        .call(
            "POST",
            "/api/cameras/discover",
            Some(&admin),
            json!({"credentials": {"username": "admin", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["devices"], v["devices"]);

    // added by address: brand, port, URL and sealed credentials come from the last scan
    // that found the device (retina sends them only if the device asks)
    let cam = s.add_camera(&admin, json!({"ip": DVR, "channel": 2})).await;
    assert_eq!(
        (&cam["brand"], &cam["rtsp_url"]),
        (
            &json!("hikvision"),
            &json!(format!(
                "rtsp://admin:***@{DVR}:{}/Streaming/Channels/201",
                dvr.port
            ))
        )
    );
    let onvif_added = s.add_camera(&admin, json!({"ip": ONVIF})).await;
    assert_eq!(
        onvif_added["rtsp_url"],
        format!("rtsp://admin:***@{ONVIF}:{}/h264", onvif_cam.port)
    );
    // or by assigning its address to a user, as the old backend did
    let (uid, user) = s.add_user(&admin, "guard", "user").await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/api/users/{uid}/cameras"),
            Some(&admin),
            json!({"camera_ips": [DAHUA]}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, cam) = s
        .call(
            "GET",
            &format!("/api/cameras/{DAHUA}"),
            Some(&user),
            Value::Null,
        )
        .await;
    assert_eq!(cam["brand"], "dahua");
    assert_eq!(
        cam["rtsp_url"],
        format!(
            "rtsp://admin:***@{DAHUA}:{}/cam/realmonitor?channel=1&subtype=0",
            dahua.port
        )
    );

    // and they stream end to end (the Dahua one through Digest with the sealed password)
    for (who, id) in [(&admin, format!("{DVR}-ch2")), (&user, DAHUA.to_string())] {
        s.streams_cleanly(who, &id).await;
    }
    assert_eq!(dahua.failed_logins(), 1);
    let logs = s.logs();
    for secret in ["p@ss", "Zq9-not-it"] {
        let hit = logs.lines().find(|l| l.contains(secret));
        assert!(hit.is_none(), "credentials in the log: {hit:?}");
    }
    assert!(logs.contains("discovery scan done"), "progress is logged");
}

/// A device on the LAN that reports its stream at another host must not get the scan's
/// credentials sent there: the camera added from it streams from the device's own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_only_to_the_device_itself() {
    const DEVICE: &str = "127.0.6.1";
    const ELSEWHERE: &str = "127.0.7.1";
    let cam = GstCams::start_args(&["--address", DEVICE]);
    // the foreign host listens on the same port, counting who comes
    let foreign = tokio::net::TcpListener::bind((ELSEWHERE, cam.port))
        .await
        .unwrap();
    let visits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let v2 = visits.clone();
    let watcher = tokio::spawn(async move {
        while let Ok((_sock, _)) = foreign.accept().await {
            v2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let _double = OnvifDouble::start(
        DEVICE.parse().unwrap(),
        "ACME",
        "Liar-1",
        "admin",
        PASSWORD,
        vec![Profile {
            token: "main",
            source: "vs0",
            uri: format!("rtsp://{ELSEWHERE}:{}/h264", cam.port),
        }],
    )
    .await;
    let s = Server::start_with(&[("SCAN_PORTS", "9"), ("ONVIF_TIMEOUT", "2")]);
    let admin = s.bootstrap_admin().await;
    let (st, v) = s
        .call(
            "POST",
            "/api/cameras/discover",
            Some(&admin),
            json!({"network_range": "127.0.6.0/30", "credentials": {"username": "admin", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let d = device(&v, DEVICE);
    assert_eq!(
        (&d["status"], &d["port"]),
        (&json!("ok"), &json!(cam.port)),
        "{d}"
    );
    let added = s.add_camera(&admin, json!({"ip": DEVICE})).await;
    assert_eq!(
        added["rtsp_url"],
        format!("rtsp://admin:***@{DEVICE}:{}/h264", cam.port)
    );
    s.streams_cleanly(&admin, DEVICE).await;
    assert_eq!(
        visits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing went to the host the device named"
    );
    assert!(
        s.logs().contains("reported a stream on another host"),
        "the lie is logged"
    );
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_errors() {
    let s = Server::start_with(&[
        ("DEFAULT_NETWORK_RANGE", "127.0.4.0/30"),
        ("SCAN_PORTS", "9"),
    ]);
    let admin = s.bootstrap_admin().await;
    let (_, viewer) = s.add_user(&admin, "vera", "viewer").await;
    for (q, needle) in [
        ("network_range=garbage", "not an IPv4 CIDR"),
        ("network_range=10.0.0.0/8", "/22"),
        ("network_range=127.0.0.0/21", "/22"),
        ("network_range=127.0.0.0/33", "not an IPv4 CIDR"),
        (
            "network_range=127.0.4.0/30&credentials=nocolon",
            "user:password",
        ),
        ("network_range=127.0.4.0/30&credentials=%3Apw", "user name"),
    ] {
        let (st, v) = s
            .call(
                "GET",
                &format!("/api/cameras/discover?{q}"),
                Some(&admin),
                Value::Null,
            )
            .await;
        assert_error(st, &v, 400, "bad_request");
        assert!(v["error"].as_str().unwrap().contains(needle), "{q}: {v}");
    }
    for body in [
        json!({"network_range": 5}),
        json!({"credentials": "admin:pw"}),
        json!({"credentials": {"username": "a"}}),
        json!({"surprise": true}),
        json!({"credentials": {"username": "a", "password": "x".repeat(200)}}),
    ] {
        let (st, v) = s
            .call("POST", "/api/cameras/discover", Some(&admin), body.clone())
            .await;
        assert_error(st, &v, 400, "bad_request");
    }
    let (st, v) = s
        .call_raw(
            "POST",
            "/api/cameras/discover",
            Some(&admin),
            b"{not json".to_vec(),
        )
        .await;
    assert_error(st, &v, 400, "bad_request");
    for method in ["GET", "POST"] {
        let (st, v) = s
            .call(method, "/api/cameras/discover", Some(&viewer), Value::Null)
            .await;
        assert_error(st, &v, 403, "forbidden");
        let (st, v) = s
            .call(method, "/api/cameras/discover", None, Value::Null)
            .await;
        assert_error(st, &v, 401, "unauthorized");
    }
    // a tiny silent range answers quickly with nothing
    let (st, v) = s
        .call("POST", "/api/cameras/discover", Some(&admin), Value::Null)
        .await;
    assert_error(st, &v, 400, "bad_request");
    let (st, v) = s
        .call("POST", "/api/cameras/discover", Some(&admin), json!({}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["devices"], json!([]));
    assert_eq!(v["hosts"], 2);
}

/// In a network namespace of its own, 127.77.0.0/24 is routed to a peer that drops every
/// packet (a veth with a made-up neighbour): every connection attempt meets silence, the
/// worst case for a scan.
#[test]
fn a_silent_slash_24_is_scanned_within_three_seconds() {
    let setup = r#"set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up
ip link set v1 up
sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.v0.route_localnet=1
ip route del local 127.0.0.0/8 dev lo table local
ip route add local 127.0.0.0/16 dev lo table local
ip route add 127.77.0.0/24 via 127.99.0.1 dev v0 onlink
ip neigh add 127.99.0.1 lladdr 02:00:00:00:00:01 dev v0 nud permanent
exec "$0" discover 127.77.0.0/24"#;
    let t = Instant::now();
    let out = Command::new("unshare")
        .args(["--net", "sh", "-c", setup, env!("CARGO_BIN_EXE_vigia")])
        .env("ONVIF_TIMEOUT", "1")
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap_or_else(|e| {
            panic!("unshare (util-linux) and ip (iproute2) are needed, as root: {e}")
        });
    let wall = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the namespace scan failed (needs root, unshare and iproute2): {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["devices"], json!([]), "{v}");
    assert_eq!(v["hosts"], 254);
    assert_eq!(
        v["ports"].as_array().unwrap().len(),
        7,
        "the default SCAN_PORTS"
    );
    let scan = Duration::from_millis(v["port_scan_ms"].as_u64().unwrap());
    let total = Duration::from_millis(v["elapsed_ms"].as_u64().unwrap());
    eprintln!("silent /24 x 7 ports: port scan {scan:?}, whole scan {total:?}, process {wall:?}");
    assert!(scan <= Duration::from_secs(3), "port scan took {scan:?}");
    assert!(total <= Duration::from_secs(3), "scan took {total:?}");
}
