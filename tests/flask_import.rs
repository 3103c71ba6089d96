//! `vigia store import-flask` against an independent writer: SQLAlchemy models of the old
//! Flask backend's tables, Python's bcrypt and pyca's Fernet write the old database
//! (tests/flask/fixture.py), ffmpeg writes its recordings. After the import the old users log
//! in with their old passwords, their cameras stream, the recordings download (with Range)
//! and decode; a second run adds nothing. Both Fernet key forms and `--fernet-key` open URLs.
#![cfg(feature = "postgres")]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::cams::{ffmpeg_decode, GstCams};
use support::pg::cluster;
use support::{decodes_silently, Server, SECRET};

const INSTALL: &str = "apt-get install -y python3-sqlalchemy python3-psycopg2 python3-bcrypt python3-cryptography (./scripts/test-deps.sh does this)";

/// Writes the old database from `spec`; returns the fixture's answer (the keys it used).
fn old_database(url: &str, spec: &Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flask/fixture.py");
    let mut child = Command::new("/usr/bin/python3")
        .args([script, url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fixture failed ({INSTALL}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `vigia store import-flask` with vigia's store in `data_dir`; returns (exit code,
/// stdout, stderr).
fn import(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    import_with(data_dir, args, &[])
}

/// [`import`] with more of vigia's environment (`DATABASE_URL`: into PostgreSQL).
fn import_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .args(["store", "import-flask"])
        .args(args)
        .env_clear()
        .env("DATA_DIR", data_dir)
        .env("RECORDINGS_DIR", data_dir.join("recordings"))
        .env("SECRET_KEY", SECRET)
        .env("NODE_NAME", "flask-box")
        .envs(env.iter().copied())
        .current_dir(data_dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An MP4 as the old backend's ffmpeg wrote it (H.264 + AAC, `faststart` off: a plain,
/// non-fragmented file), `secs` long.
fn ffmpeg_mp4(path: &Path, secs: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=320x240:rate=25:duration={secs}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={secs}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not write {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_backends_data_moves_in_and_works() {
    let cams = GstCams::start();
    let old_url = cluster().new_database();
    let work = tempfile::tempdir().unwrap();
    // the old files, moved to another disk (a tmpfs: another file system, so they are copied,
    // not linked): their rows name the old machine's paths
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let moved = shm.path().join("moved");
    ffmpeg_mp4(&moved.join("127.0.0.20/20261130_100000.mp4"), 3);
    ffmpeg_mp4(&moved.join("127.0.0.20/20261130_110000.mp4"), 2);
    let old_dir = "/var/lib/flask-nvr/recordings";
    let camera_url = cams
        .url("h264gop2")
        .replace("rtsp://", "rtsp://cam:cam-secret@");
    let secret = "the-old-flask-secret-key";
    let keys = old_database(
        &old_url,
        &json!({
            "secret_key": secret,
            "users": [
                {"username": "olga", "password": "olga-old-pw", "role": "admin", "prefix": "2b"},
                {"username": "uli", "password": "uli-old-pw", "role": "user", "prefix": "2y"},
                {"username": "vera", "password": "vera-old-pw", "role": "viewer", "prefix": "2a"},
            ],
            "cameras": [
                {"ip": "127.0.0.20", "name": "Entrance", "type": "bullet", "brand": "generic",
                 "url": camera_url, "user": "uli"},
                {"ip": "127.0.0.21", "name": "Yard (DVR 3)", "type": "dvr", "brand": "dahu",
                 "channel": 3, "url": "rtsp://admin:dvr-pw@127.0.0.21:554/cam/realmonitor?channel=3&subtype=0",
                 "user": "uli"},
                {"ip": "127.0.0.22", "name": "Garage", "type": "ip", "brand": "hikvision",
                 "token": "gAAAAABnot-a-token-this-key-made", "user": "vera"},
            ],
            "recordings": [
                {"camera_ip": "127.0.0.20", "user": "olga", "start": "2026-11-30T10:00:00",
                 "end": "2026-11-30T10:00:03", "duration_sec": 3.0,
                 "file_path": format!("{old_dir}/127.0.0.20/20261130_100000.mp4")},
                {"camera_ip": "127.0.0.20", "user": "uli", "start": "2026-11-30T11:00:00",
                 "end": "2026-11-30T11:00:02", "duration_sec": 2.0,
                 "file_path": format!("{old_dir}/127.0.0.20/20261130_110000.mp4")},
                {"camera_ip": "127.0.0.20", "user": "olga", "start": "2026-11-30T12:00:00",
                 "file_path": format!("{old_dir}/127.0.0.20/20261130_120000.mp4")},
            ],
        }),
    );
    assert_eq!(keys["secret_key"], secret);
    let data = work.path().join("vigia");
    std::fs::create_dir_all(&data).unwrap();
    let moved_arg = moved.to_str().unwrap().to_string();
    let args = [
        "--from",
        &old_url,
        "--old-secret-key",
        secret,
        "--recordings-from",
        &moved_arg,
    ];

    // a dry run says what it would do and writes nothing
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let (code, out, err) = import(&data, &dry);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(out.contains("users             3 to import"), "{out}");
    assert!(!data.join("recordings").exists(), "{out}");

    let (code, out, err) = import(&data, &args);
    assert_eq!(code, 0, "{out}{err}");
    eprintln!("{out}");
    for line in [
        "3 users, 3 cameras, 3 recordings read",
        "users             3 imported,      0 already there",
        "cameras           3 imported,      0 already there",
        "assignments       3 imported",
        "recordings        2 imported,      0 already there",
        "camera URLs opened with url-safe base64 of SHA-256(old SECRET_KEY): 2",
        "camera 127.0.0.22: its rtsp_url_encrypted does not open",
        "20261130_120000.mp4): file not found under",
    ] {
        assert!(out.contains(line), "missing '{line}' in:\n{out}");
    }
    assert!(
        !out.contains("cam-secret") && !out.contains("dvr-pw"),
        "{out}"
    );
    use std::os::unix::fs::MetadataExt;
    let placed = data.join("recordings/127.0.0.20/2026/11/30/100000-flask1.mp4");
    let m = std::fs::metadata(&placed).unwrap();
    assert_eq!(m.nlink(), 1, "copied across file systems");
    assert_eq!(
        std::fs::read(&placed).unwrap(),
        std::fs::read(moved.join("127.0.0.20/20261130_100000.mp4")).unwrap()
    );
    // again: everything is there already
    let (code, again, err) = import(&data, &args);
    assert_eq!(code, 0, "{again}{err}");
    for line in [
        "users             0 imported,      3 already there",
        "cameras           0 imported,      3 already there",
        "recordings        0 imported,      2 already there",
    ] {
        assert!(
            again.contains(line),
            "not idempotent: '{line}' missing in:\n{again}"
        );
    }

    let s = Server::start_in(
        data.clone(),
        None,
        &[
            ("RECORDINGS_DIR", data.join("recordings").to_str().unwrap()),
            ("NODE_NAME", "flask-box"),
        ],
    );
    // old passwords work; a bcrypt hash becomes argon2id at the first login
    let olga = s.login("olga", "olga-old-pw").await;
    assert!(
        s.logs()
            .contains("password hash upgraded from bcrypt to argon2id"),
        "{}",
        s.logs()
    );
    let olga_again = s.login("olga", "olga-old-pw").await;
    let uli = s.login("uli", "uli-old-pw").await; // $2y$
    s.login("vera", "vera-old-pw").await; // $2a$
    let (st, _) = s
        .call(
            "POST",
            "/api/auth/login",
            None,
            json!({"username": "uli", "password": "uli-wrong"}),
        )
        .await;
    assert_eq!(st, 401);
    let (st, users) = s
        .call("GET", "/api/users", Some(&olga_again), Value::Null)
        .await;
    assert_eq!(st, 200, "olga is still an admin: {users}");

    // uli sees the two cameras he was given, with their old names, brand and channel
    let (st, list) = s
        .call("GET", "/api/cameras/list", Some(&uli), Value::Null)
        .await;
    assert_eq!(st, 200, "{list}");
    let mut ids: Vec<&str> = list["cameras"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["127.0.0.20", "127.0.0.21-ch3"], "{list}");
    assert!(list.to_string().contains(r#""type":"bullet""#), "{list}");
    let (_, dvr) = s
        .call(
            "GET",
            "/api/cameras/127.0.0.21-ch3",
            Some(&olga),
            Value::Null,
        )
        .await;
    assert_eq!(dvr["name"], "Yard (DVR 3)", "{dvr}");
    assert_eq!(dvr["brand"], "dahua", "{dvr}");
    assert_eq!(dvr["channel"], 3, "{dvr}");
    assert_eq!(dvr["type"], "dvr", "the old type: {dvr}");
    let shown = dvr.to_string();
    assert!(
        shown.contains("admin") && !shown.contains("dvr-pw"),
        "{dvr}"
    );
    let (_, garage) = s
        .call("GET", "/api/cameras/127.0.0.22", Some(&olga), Value::Null)
        .await;
    assert_eq!(garage["brand"], "hikvision", "{garage}");
    assert_eq!(garage["type"], "ip", "{garage}");
    assert!(
        !garage.to_string().contains('@'),
        "no credentials: {garage}"
    );

    // the camera whose URL came out of the Fernet token streams
    let (st, v) = s
        .call(
            "GET",
            "/api/cameras/stream/127.0.0.20",
            Some(&uli),
            Value::Null,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let hls = v["hls_url"].as_str().unwrap().to_string();
    assert_eq!(ffmpeg_decode(&hls, 2), "", "the imported camera plays");

    // the recordings list, download in ranges and decode
    let (st, recs) = s
        .call("GET", "/api/nvr/recordings", Some(&olga), Value::Null)
        .await;
    assert_eq!(st, 200, "{recs}");
    assert_eq!(recs["total"], 2, "{recs}");
    let rows = recs["recordings"].as_array().unwrap();
    for r in rows {
        assert_eq!(r["status"], "imported", "{r}");
        assert_eq!(r["camera_ip"], "127.0.0.20", "{r}");
    }
    let first = rows
        .iter()
        .find(|r| r["duration_sec"] == 3.0)
        .unwrap_or_else(|| panic!("{recs}"));
    let original = std::fs::read(moved.join("127.0.0.20/20261130_100000.mp4")).unwrap();
    assert_eq!(first["file_size"], original.len(), "{first}");
    let url = s.url(&format!("/api/nvr/recordings/{}/download", first["id"]));
    let body = s
        .client
        .get(&url)
        .bearer_auth(&olga)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        body.as_ref(),
        original.as_slice(),
        "the file as ffmpeg wrote it"
    );
    let part = s
        .client
        .get(&url)
        .bearer_auth(&olga)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &original[100..200]);
    let copy = work.path().join("downloaded.mp4");
    std::fs::write(&copy, &body).unwrap();
    decodes_silently(&copy);
    // uli's own recording is his; vera (a viewer of another camera) sees none of them
    let vera = s.login("vera", "vera-old-pw").await;
    let (_, theirs) = s
        .call("GET", "/api/nvr/recordings", Some(&vera), Value::Null)
        .await;
    assert_eq!(theirs["total"], 0, "{theirs}");
}

/// The other key forms: a SECRET_KEY that is itself a Fernet key, and `--fernet-key` when
/// SECRET_KEY is not what the URLs were made with. A wrong key leaves the URL out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fernet_key_as_secret_key_and_an_explicit_fernet_key_open_the_urls() {
    let old_url = cluster().new_database();
    let keys = old_database(
        &old_url,
        &json!({
            "secret_key": null,
            "users": [{"username": "ana", "password": "ana-old-pw", "role": "admin"}],
            "cameras": [{"ip": "127.0.0.30", "url": "rtsp://u:p4ss@127.0.0.30:554/stream1"}],
        }),
    );
    let secret = keys["secret_key"].as_str().unwrap();
    assert_eq!(
        keys["fernet_key"], secret,
        "the SECRET_KEY is the Fernet key"
    );
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec!["--from", &old_url];
        all.extend_from_slice(args);
        let (code, out, err) = import(dir.path(), &all);
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    // `=`: a Fernet key may begin with '-' (url-safe base64), which a separate word would not
    // survive (the README suggests OLD_SECRET_KEY for that reason too)
    let with_secret = format!("--old-secret-key={secret}");
    let out = run(&[&with_secret]);
    assert!(
        out.contains("camera URLs opened with the old SECRET_KEY as a Fernet key: 1"),
        "{out}"
    );
    let with_key = format!("--fernet-key={secret}");
    let out = run(&["--old-secret-key", "another key", &with_key]);
    assert!(
        out.contains("camera URLs opened with --fernet-key: 1"),
        "{out}"
    );
    let out = run(&["--old-secret-key", "another key"]);
    assert!(
        out.contains("camera 127.0.0.30: its rtsp_url_encrypted does not open"),
        "{out}"
    );
    assert!(out.contains("cameras           1 imported"), "{out}");
    // a malformed override is a setting to fix, and nothing is written
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = import(
        dir.path(),
        &[
            "--from",
            &old_url,
            "--old-secret-key",
            "x",
            "--fernet-key",
            "short",
        ],
    );
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("--fernet-key is not a Fernet key"), "{err}");
    // vigia pointed at the old database as its own store refuses to start and changes nothing
    let out = Command::new(env!("CARGO_BIN_EXE_vigia"))
        .arg("serve")
        .env_clear()
        .env("DATA_DIR", dir.path())
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("SECRET_KEY", SECRET)
        .env("DATABASE_URL", &old_url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("already exists"), "{err}");
    let name = old_url.rsplit('/').next().unwrap();
    assert_eq!(
        cluster().psql(
            name,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        "3",
        "only the old backend's tables"
    );
    // not the old backend's database
    let empty = cluster().new_database();
    let (code, _, err) = import(dir.path(), &["--from", &empty, "--old-secret-key", "x"]);
    assert_ne!(code, 0);
    assert!(err.contains("has no table 'users'"), "{err}");
}

/// Into vigia's PostgreSQL store: the same transaction there (status `imported` is one the
/// schema accepts), ids that continue after the imported ones, a download that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn into_a_postgres_store() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("old/127.0.0.40/a.mp4");
    ffmpeg_mp4(&file, 1);
    let old_url = cluster().new_database();
    old_database(
        &old_url,
        &json!({
            "secret_key": "pg-test-secret",
            "users": [{"username": "pat", "password": "pat-old-pw", "role": "admin"}],
            "cameras": [{"ip": "127.0.0.40", "url": "rtsp://127.0.0.40:554/stream1", "user": "pat"}],
            "recordings": [{"camera_ip": "127.0.0.40", "user": "pat", "start": "2026-11-29T08:00:00",
                            "duration_sec": 1.0, "file_path": file.to_str().unwrap()}],
        }),
    );
    let vigia_db = cluster().new_database();
    let data = work.path().join("vigia");
    std::fs::create_dir_all(&data).unwrap();
    let env = [("DATABASE_URL", vigia_db.as_str())];
    let args = ["--from", &old_url, "--old-secret-key", "pg-test-secret"];
    let (code, out, err) = import_with(&data, &args, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("recordings        1 imported"), "{out}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().nlink(),
        2,
        "hard-linked on the same file system"
    );
    let (code, again, err) = import_with(&data, &args, &env);
    assert_eq!(code, 0, "{again}{err}");
    assert!(
        again.contains("users             0 imported,      1 already there"),
        "{again}"
    );
    assert!(
        again.contains("recordings        0 imported,      1 already there"),
        "{again}"
    );

    let s = Server::start_in(
        data.clone(),
        None,
        &[
            ("DATABASE_URL", &vigia_db),
            ("RECORDINGS_DIR", data.join("recordings").to_str().unwrap()),
            ("NODE_NAME", "flask-box"),
        ],
    );
    let pat = s.login("pat", "pat-old-pw").await;
    let (_, recs) = s
        .call("GET", "/api/nvr/recordings", Some(&pat), Value::Null)
        .await;
    assert_eq!(recs["total"], 1, "{recs}");
    let id = &recs["recordings"][0]["id"];
    let resp = s
        .client
        .get(s.url(&format!("/api/nvr/recordings/{id}/download")))
        .bearer_auth(&pat)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        std::fs::read(&file).unwrap().as_slice()
    );
    let (st, u) = s
        .call(
            "POST",
            "/api/auth/register",
            Some(&pat),
            json!({"username": "newer", "password": "newer-password"}),
        )
        .await;
    assert_eq!(st, 201, "{u}");
    assert!(u["user"]["id"].as_i64().unwrap() > 1, "{u}");
}
