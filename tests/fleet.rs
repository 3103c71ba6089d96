//! Several vigia boxes on one PostgreSQL, as real processes on loopback with GStreamer cameras:
//! each camera is pulled and recorded by its node only; a media request reaching another box is
//! sent to the owner with 307 (the player follows it), or answered 503 naming the owner once it
//! is down; an admin moves cameras between nodes and the recording follows; and the recording
//! rows and files show that no camera was ever recorded by two nodes at once.
#![cfg(feature = "postgres")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use support::cams::{ffmpeg_decode, GstCams};
use support::pg::cluster;
use support::{decodes_silently, wait_until, walk, Server, ADMIN_PW};

fn node(url: &str, name: &str) -> Server {
    Server::start_with(&[
        ("DATABASE_URL", url),
        ("NODE_NAME", name),
        ("NODE_STALE_SECONDS", "3"),
        ("MIN_FREE_DISK_MB", "0"),
    ])
}

/// A client that does not follow redirects, to see them.
fn no_follow() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends a request without following redirects (`token` "": none): (status, Location, body).
async fn hop(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut req = no_follow().request(method.parse().unwrap(), format!("{base}{path}"));
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let loc = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, loc, v)
}

/// A request sent to `via` that must be redirected to `owner`: checks the 307 and its Location,
/// then repeats the request there (with the token again, as API clients do across origins).
async fn through(
    via: &Server,
    owner: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let (st, loc, v) = hop(&via.base, method, path, token, body.clone()).await;
    assert_eq!(st, 307, "{method} {path} on the wrong node: {v}");
    assert_eq!(loc.as_deref(), Some(owner.url(path).as_str()), "{v}");
    assert_eq!(v["code"], "redirect");
    let (st, loc, v) = hop(&owner.base, method, path, token, body).await;
    assert!(loc.is_none(), "the owner serves it itself");
    (st, v)
}

/// An admin's `PUT /api/cameras/<cam> {"node": …}` through `via`.
async fn move_camera(
    via: &Server,
    admin: &str,
    cam: &str,
    node: &str,
) -> (reqwest::StatusCode, Value) {
    via.call(
        "PUT",
        &format!("/api/cameras/{cam}"),
        Some(admin),
        json!({ "node": node }),
    )
    .await
}

/// Every recording row of the database, oldest first.
async fn rows(s: &Server, admin: &str, cam: &str) -> Vec<Value> {
    let (st, v) = s
        .call(
            "GET",
            &format!("/api/nvr/recordings?camera_ip={cam}&limit=1000"),
            Some(admin),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let mut list = v["recordings"].as_array().unwrap().clone();
    list.reverse();
    list
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|s| s.parse().unwrap())
}

/// No two recordings of one camera overlap in time, and at most one is open.
fn never_twice(rows: &[Value]) {
    let open = rows.iter().filter(|r| r["status"] == "recording").count();
    assert!(open <= 1, "{open} open recordings: {rows:?}");
    for w in rows.windows(2) {
        let end = time(&w[0]["end_time"]).expect("an earlier recording is closed");
        let next = time(&w[1]["start_time"]).unwrap();
        assert!(
            end <= next,
            "recording {} (node {}) ends at {end}, after {} (node {}) starts at {next}",
            w[0]["id"],
            w[0]["node"],
            w[1]["id"],
            w[1]["node"]
        );
    }
}

fn mp4s(dir: &Path) -> Vec<std::path::PathBuf> {
    walk(&dir.join("recordings"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_to_the_owner_and_a_dead_owner_is_named_then_replaced() {
    let url = cluster().new_database();
    let cams = GstCams::start();
    let mut a = node(&url, "node-a");
    let b = node(&url, "node-b");
    let admin = a.bootstrap_admin().await;

    // a box with a name already running is refused (it would record the same cameras)
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATA_DIR", tempfile::tempdir().unwrap().path())
        .env("SECRET_KEY", support::SECRET)
        .env("DATABASE_URL", &url)
        .env("NODE_NAME", "node-a")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("NODE_NAME 'node-a'"), "{err}");

    // a camera added through A belongs to A; one added through B with "node" names A too
    let cam = "127.0.0.61";
    let v = a
        .add_camera(&admin, json!({"ip": cam, "rtsp_url": cams.url("h264")}))
        .await;
    assert_eq!(v["node"], "node-a");
    let v = b
        .add_camera(
            &admin,
            json!({"ip": "127.0.0.62", "rtsp_url": cams.url("h264"), "node": "node-b"}),
        )
        .await;
    assert_eq!(v["node"], "node-b");
    let (st, v) = b
        .call(
            "POST",
            "/api/cameras",
            Some(&admin),
            json!({"ip": "127.0.0.63", "rtsp_url": cams.url("h264"), "node": "node-zz"}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("node-zz"), "{v}");

    // every box lists every node, and the cameras with their owner
    let (st, v) = b.call("GET", "/api/nodes", Some(&admin), Value::Null).await;
    assert_eq!(st, 200, "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{v}");
    for (n, want_url) in nodes.iter().zip([&a.base, &b.base]) {
        assert_eq!(n["online"], true, "{v}");
        assert_eq!(n["cameras"], 1, "{v}");
        assert_eq!(&n["url"], want_url.as_str(), "{v}");
    }
    let (_, v) = b
        .call(
            "GET",
            &format!("/api/cameras/{cam}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    assert_eq!(v["node"], "node-a");
    let (_, user) = a.add_user(&admin, "olga", "viewer").await;
    let (st, v) = b.call("GET", "/api/nodes", Some(&user), Value::Null).await;
    assert_eq!(st, 403, "admins only: {v}");

    // a batch asked of B answers 200 and names, per camera, where to go
    let (st, v) = b
        .call(
            "POST",
            "/api/cameras/streams/batch",
            Some(&admin),
            json!({ "ips": [cam] }),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let entry = &v["results"][0];
    assert_eq!(
        (&entry["status"], &entry["code"]),
        (&json!("error"), &json!("redirect")),
        "{v}"
    );
    assert!(
        entry["location"]
            .as_str()
            .is_some_and(|l| l.starts_with(&a.base)),
        "{v}"
    );

    // live view asked of B: 307 to A; the player is given B's URL and plays through it
    let path = format!("/api/cameras/stream/{cam}");
    let (st, v) = through(&b, &a, "GET", &path, &admin, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    let hls = v["hls_url"].as_str().unwrap().to_string();
    assert!(hls.starts_with(&a.base), "{hls}");
    let via_b = hls.replace(&a.base, &b.base);
    let (st, loc, _) = hop(&b.base, "GET", &via_b[b.base.len()..], "", Value::Null).await;
    assert_eq!(
        (st, loc.as_deref()),
        (307, Some(hls.as_str())),
        "query kept"
    );
    let errors = tokio::task::spawn_blocking(move || ffmpeg_decode(&via_b, 3))
        .await
        .unwrap();
    assert!(errors.is_empty(), "{errors}");
    assert_eq!(cams.connections(), 1, "one RTSP session, on A");

    // a recording started through B runs on A and its file is on A's disk
    let rec_path = format!("/api/nvr/record/{cam}");
    let (st, v) = through(&b, &a, "POST", &rec_path, &admin, json!({})).await;
    assert_eq!(st, 201, "{v}");
    let rid = v["recording_id"].as_i64().unwrap();
    let status = format!("/api/nvr/status/{cam}");
    wait_until("the recording runs on A", 20, async || {
        let (st, v) = through(&b, &a, "GET", &status, &admin, Value::Null).await;
        (st == 200 && v["elapsed_sec"].as_f64().unwrap_or(0.0) > 2.5).then_some(())
    })
    .await;
    let list = rows(&b, &admin, cam).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (&list[0]["id"], &list[0]["node"]),
        (&json!(rid), &json!("node-a"))
    );
    assert_eq!(mp4s(&a.data_dir).len(), 1);
    assert!(mp4s(&b.data_dir).is_empty(), "B records nothing of A's");

    // kill A: B names it in a 503 for A's cameras and recordings
    a.kill9();
    let killed = std::time::Instant::now();
    let (st, v) = wait_until("B notices A is down", 15, async || {
        let (st, _, v) = hop(&b.base, "GET", &path, &admin, Value::Null).await;
        (st == 503).then_some((st, v))
    })
    .await;
    eprintln!(
        "503 for the dead node's camera {:?} after kill -9",
        killed.elapsed()
    );
    assert_eq!(st, 503);
    assert_eq!(v["code"], "service_unavailable");
    assert!(v["error"].as_str().unwrap().contains("node-a"), "{v}");
    let (st, _, v) = hop(&b.base, "POST", &rec_path, &admin, json!({})).await;
    assert_eq!(st, 503, "{v}");
    let (_, v) = b.call("GET", "/api/nodes", Some(&admin), Value::Null).await;
    assert_eq!(v["nodes"][0]["online"], false, "{v}");
    // a camera cannot be given to a node that is down
    let (st, v) = move_camera(&b, &admin, "127.0.0.62", "node-a").await;
    assert_eq!(st, 409, "{v}");

    // the admin moves A's camera to B: B closes A's row, saying so, and records it itself
    let (st, v) = move_camera(&b, &admin, cam, "node-b").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["node"], "node-b");
    let list = wait_until("B records the camera", 20, async || {
        let list = rows(&b, &admin, cam).await;
        let on_b = list
            .iter()
            .any(|r| r["node"] == "node-b" && r["status"] == "recording");
        (on_b && list.len() == 2).then_some(list)
    })
    .await;
    assert_eq!(list[0]["status"], "stopped");
    let note = list[0]["note"].as_str().unwrap();
    assert!(
        note.contains("node node-a stopped answering") && note.contains("node-b"),
        "{note}"
    );
    never_twice(&list);
    let (st, v) = b.call("GET", &path, Some(&admin), Value::Null).await;
    assert_eq!(st, 200, "B serves the camera now: {v}");
    wait_until("B's file grows", 20, async || {
        (!mp4s(&b.data_dir).is_empty()).then_some(())
    })
    .await;

    // A comes back: it does not touch the camera (no second recording), B keeps it
    a.start_again();
    let a_token = a.login("admin", ADMIN_PW).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, v) = through(&a, &b, "GET", &status, &a_token, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["is_recording"], true);
    let (st, v) = through(&a, &b, "DELETE", &rec_path, &a_token, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    let list = rows(&a, &admin, cam).await;
    never_twice(&list);
    assert_eq!(list.len(), 2, "{list:?}");
    for f in mp4s(&b.data_dir) {
        decodes_silently(&f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_recorded_camera_hands_the_recording_over_within_seconds() {
    let url = cluster().new_database();
    let cams = GstCams::start();
    let a = node(&url, "node-a");
    let b = node(&url, "node-b");
    let admin = a.bootstrap_admin().await;
    let cam = "127.0.0.71";
    a.add_camera(&admin, json!({"ip": cam, "rtsp_url": cams.url("h264aac")}))
        .await;
    let (st, v) = a
        .call(
            "POST",
            &format!("/api/nvr/record/{cam}"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    wait_until("A writes the file", 20, async || {
        let list = rows(&a, &admin, cam).await;
        let path = mp4s(&a.data_dir);
        (!path.is_empty() && std::fs::metadata(&path[0]).ok()?.len() > 50_000 && list.len() == 1)
            .then_some(())
    })
    .await;

    // moved through B, the camera is B's within seconds
    let (st, v) = move_camera(&b, &admin, cam, "node-b").await;
    assert_eq!(st, 200, "{v}");
    let moved = std::time::Instant::now();
    let list = wait_until("the recording moves to B", 20, async || {
        let list = rows(&b, &admin, cam).await;
        let done = list.len() == 2
            && list[0]["status"] == "stopped"
            && list[1]["status"] == "recording"
            && list[1]["node"] == "node-b";
        done.then_some(list)
    })
    .await;
    let took = moved.elapsed();
    eprintln!("hand-over: recording on node-b {took:?} after the move");
    assert!(took < Duration::from_secs(10), "hand-over took {took:?}");
    assert_eq!(list[0]["node"], "node-a");
    assert_eq!(list[0]["note"], "the camera moved to node node-b");
    never_twice(&list);
    wait_until("A closes its session", 5, async || {
        let (_, v) = a
            .call(
                "GET",
                &format!("/api/cameras/{cam}"),
                Some(&admin),
                Value::Null,
            )
            .await;
        (v["stream"]["state"] == "idle").then_some(())
    })
    .await;
    wait_until("B writes the file", 20, async || {
        let p = mp4s(&b.data_dir);
        (!p.is_empty() && std::fs::metadata(&p[0]).ok()?.len() > 50_000).then_some(())
    })
    .await;

    // stop through A: sent to B
    let path = format!("/api/nvr/record/{cam}");
    let (st, v) = through(&a, &b, "DELETE", &path, &admin, Value::Null).await;
    assert_eq!(st, 200, "{v}");
    let list = rows(&a, &admin, cam).await;
    never_twice(&list);
    assert!(list.iter().all(|r| r["status"] != "recording"), "{list:?}");

    // each file is on its node's disk, plays, and downloads through the other node
    let (fa, fb) = (mp4s(&a.data_dir), mp4s(&b.data_dir));
    assert_eq!((fa.len(), fb.len()), (1, 1));
    decodes_silently(&fa[0]);
    decodes_silently(&fb[0]);
    let (_, v) = b
        .call(
            "GET",
            &format!("/api/nvr/recordings?camera_ip={cam}"),
            Some(&admin),
            Value::Null,
        )
        .await;
    let first = v["recordings"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(first["node"], "node-a");
    let dl = first["download_url"].as_str().unwrap();
    let (st, loc, _) = hop(&b.base, "GET", dl, "", Value::Null).await;
    assert_eq!((st, loc), (307, Some(a.url(dl))), "the file is A's");
    let bytes = reqwest::get(b.url(dl))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len() as u64, std::fs::metadata(&fa[0]).unwrap().len());
}

/// A client of an https box would follow a redirect to a plain-http box with its player token
/// in clear: the https box answers 503 naming the fix instead. The other way is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_box_does_not_send_clients_to_a_plain_http_one() {
    let url = cluster().new_database();
    // A announces itself as https (as behind a TLS proxy); B is plain http
    let a = Server::start_with(&[
        ("DATABASE_URL", &url),
        ("NODE_NAME", "node-tls"),
        ("NODE_STALE_SECONDS", "3"),
        ("NODE_URL", "https://127.0.0.1:1"),
    ]);
    let b = node(&url, "node-plain");
    let admin = a.bootstrap_admin().await;
    for (ip, owner) in [("127.0.0.64", "node-plain"), ("127.0.0.65", "node-tls")] {
        a.add_camera(
            &admin,
            json!({"ip": ip, "rtsp_url": "rtsp://127.0.0.1:9/x", "node": owner}),
        )
        .await;
    }
    let (st, loc, v) = hop(
        &a.base,
        "GET",
        "/api/cameras/stream/127.0.0.64",
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!((st, loc), (503, None), "{v}");
    assert!(v["error"].as_str().unwrap().contains("plain http"), "{v}");
    let (st, loc, v) = hop(
        &b.base,
        "GET",
        "/api/cameras/stream/127.0.0.65",
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(st, 307, "{v}");
    assert!(loc.unwrap().starts_with("https://127.0.0.1:1/"));
}
