//! Test harness: runs the real `vigia` binary on a loopback port with a temporary data
//! directory, and talks to it over HTTP with reqwest.
#![allow(dead_code)]

pub mod cams;
pub mod onvif;
#[cfg(feature = "postgres")]
pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The secret every test server signs with, so tests can forge tokens (expired, alg none…).
pub const SECRET: &str = "test-secret-key-0123456789abcdef-0123456789";
pub const ADMIN_PW: &str = "admin-password-1";

pub struct Server {
    pub base: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    child: Child,
    pub log: Arc<Mutex<String>>,
    env: Vec<(String, String)>,
    pub client: reqwest::Client,
}

fn spawn(data_dir: &Path, env: &[(String, String)]) -> (Child, String, Arc<Mutex<String>>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigia"));
    cmd.arg("serve")
        .env_clear()
        .current_dir(data_dir)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DATA_DIR", data_dir)
        .env("SECRET_KEY", SECRET)
        .env("LOG_LEVEL", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("spawn vigia");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("listening on ") {
                // a text line ends the URL with a space, a JSON one (LOG_FORMAT=json) with `"`
                let url = line[i + 13..]
                    .split(|c: char| c.is_whitespace() || c == '"')
                    .next()
                    .unwrap()
                    .to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url);
                }
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("vigia did not start; log:\n{}", log.lock().unwrap()));
    (child, base, log)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

impl Server {
    /// Starts camera `id`'s live view as `who` and has ffmpeg decode 2 s of it without an
    /// error.
    pub async fn streams_cleanly(&self, who: &str, id: &str) {
        let (st, v) = self
            .call(
                "GET",
                &format!("/api/cameras/stream/{id}"),
                Some(who),
                serde_json::Value::Null,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        let url = v["hls_url"].as_str().unwrap().to_string();
        let errors = tokio::task::spawn_blocking(move || cams::ffmpeg_decode(&url, 2))
            .await
            .unwrap();
        assert!(errors.is_empty(), "{id}: {errors}");
    }

    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts with extra environment (an empty value removes the variable), on the store
    /// `VIGIA_TEST_STORE` names: `redb` (default) or `postgres` (a new database of this
    /// binary's throwaway cluster). `./scripts/test.sh` runs the HTTP suites both ways.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let names_db = env
            .iter()
            .any(|(k, _)| *k == "DATABASE_URL" || *k == "DB_HOST");
        if !names_db && test_store() == "postgres" {
            #[cfg(feature = "postgres")]
            {
                let url = pg::cluster().new_database();
                let mut all = vec![("DATABASE_URL", url.as_str())];
                all.extend_from_slice(env);
                return Self::start_embedded_with(&all);
            }
            #[cfg(not(feature = "postgres"))]
            panic!("VIGIA_TEST_STORE=postgres needs `cargo test --features postgres`");
        }
        Self::start_embedded_with(env)
    }

    /// Starts exactly as told, whatever `VIGIA_TEST_STORE` says (tests of redb itself).
    pub fn start_embedded_with(env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        Self::start_in(dir, Some(tmp), env)
    }

    /// Which store this server uses.
    pub fn database_url(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.as_str())
    }

    /// Whether `needle` appears anywhere in what the store keeps on disk: the redb file, or
    /// every row of the database rendered as text.
    pub fn store_contains(&self, needle: &str) -> bool {
        match self.database_url() {
            None => {
                let raw = std::fs::read(self.data_dir.join("vigia.redb")).unwrap();
                raw.windows(needle.len()).any(|w| w == needle.as_bytes())
            }
            #[cfg(feature = "postgres")]
            Some(url) => {
                let db = url.rsplit('/').next().unwrap();
                let mut all = String::new();
                for t in [
                    "users",
                    "cameras",
                    "user_cameras",
                    "revoked_tokens",
                    "settings",
                ] {
                    all.push_str(&pg::cluster().psql(
                        db,
                        &format!(
                            "SELECT coalesce(string_agg(row_to_json(t)::text, ''), '') FROM {t} t"
                        ),
                    ));
                }
                assert!(all.contains("rtsp"), "the dump holds the camera rows");
                all.contains(needle)
            }
            #[cfg(not(feature = "postgres"))]
            Some(_) => unreachable!("Postgres mode without the feature"),
        }
    }

    pub fn start_in(dir: PathBuf, tmp: Option<tempfile::TempDir>, env: &[(&str, &str)]) -> Server {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !env.iter().any(|(k, _)| k == "NODE_NAME") {
            // boxes sharing a database need names of their own; a restart keeps its name
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            env.push((
                "NODE_NAME".into(),
                format!("box-{}-{n}", std::process::id()),
            ));
        }
        let (child, base, log) = spawn(&dir, &env);
        Server {
            base,
            data_dir: dir,
            _tmp: tmp,
            child,
            log,
            env,
            client: client(),
        }
    }

    /// Stops with SIGTERM and starts again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        let (child, base, log) = spawn(&self.data_dir, &self.env);
        self.child = child;
        self.base = base;
        self.log = log;
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A line of the server's `/proc/<pid>/status` in KiB (e.g. `VmHWM`, its peak RSS).
    pub fn status_kib(&self, field: &str) -> u64 {
        let st = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        st.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// SIGKILL, as a power cut or an OOM kill would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts again on the same data directory after [`Server::kill9`] or [`Server::stop`].
    pub fn start_again(&mut self) {
        let (child, base, log) = spawn(&self.data_dir, &self.env);
        self.child = child;
        self.base = base;
        self.log = log;
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "vigia did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request; `body` of `Value::Null` sends none.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.url(path),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{method} {path}: not JSON ({status}): {text}"))
        };
        (status, v)
    }

    /// Sends raw bytes as the body with a JSON content type.
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                self.url(path),
            )
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn login(&self, user: &str, pw: &str) -> String {
        let (st, v) = self
            .call(
                "POST",
                "/api/auth/login",
                None,
                json!({"username": user, "password": pw}),
            )
            .await;
        assert_eq!(st, 200, "login {user}: {v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Registers the first user (`admin`) and returns its token.
    pub async fn bootstrap_admin(&self) -> String {
        let (st, v) = self
            .call(
                "POST",
                "/api/auth/register",
                None,
                json!({"username": "admin", "password": ADMIN_PW}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        self.login("admin", ADMIN_PW).await
    }

    /// Registers a user with `role` (as admin) and returns (id, token).
    pub async fn add_user(&self, admin: &str, name: &str, role: &str) -> (i64, String) {
        let pw = format!("{name}-password");
        let (st, v) = self
            .call(
                "POST",
                "/api/auth/register",
                Some(admin),
                json!({"username": name, "password": pw, "role": role}),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        (
            v["user"]["id"].as_i64().unwrap(),
            self.login(name, &pw).await,
        )
    }

    /// `GET /api/nvr/recordings<query>`: the rows.
    pub async fn recordings(&self, token: &str, query: &str) -> Vec<Value> {
        let (st, v) = self
            .call(
                "GET",
                &format!("/api/nvr/recordings{query}"),
                Some(token),
                Value::Null,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v["recordings"].as_array().unwrap().clone()
    }

    /// `POST /api/nvr/record/<ip>` with `body` (`{}`: continuous), which must answer 201.
    pub async fn start_recording(&self, token: &str, ip: &str, body: Value) -> Value {
        let (st, v) = self
            .call("POST", &format!("/api/nvr/record/{ip}"), Some(token), body)
            .await;
        assert_eq!(st, 201, "{v}");
        v
    }

    /// `GET /api/cameras/stream/<ip>` (starts live view): the answer.
    pub async fn start_stream(&self, token: &str, ip: &str) -> Value {
        let (st, v) = self
            .call(
                "GET",
                &format!("/api/cameras/stream/{ip}"),
                Some(token),
                Value::Null,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v
    }

    /// The camera's session state (`stream` of `GET /api/cameras/<ip>`).
    pub async fn stream_state(&self, token: &str, ip: &str) -> Value {
        let (_, v) = self
            .call(
                "GET",
                &format!("/api/cameras/{ip}"),
                Some(token),
                Value::Null,
            )
            .await;
        v["stream"].clone()
    }

    pub async fn add_camera(&self, admin: &str, body: Value) -> Value {
        let (st, v) = self.call("POST", "/api/cameras", Some(admin), body).await;
        assert_eq!(st, 201, "{v}");
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 250 ms until it gives a value, or panics after `secs`.
pub async fn wait_until<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `ffmpeg -v error -i <file> -f null -` must succeed and print nothing.
pub fn decodes_silently(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}; install: {}", cams::INSTALL));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store the HTTP suites run on: `VIGIA_TEST_STORE` (`redb` or `postgres`).
pub fn test_store() -> String {
    std::env::var("VIGIA_TEST_STORE").unwrap_or_else(|_| "redb".into())
}

/// Asserts the error shape: the status and `{"error": sentence, "code": snake_case}`.
pub fn assert_error(status: StatusCode, v: &Value, want: u16, code: &str) {
    assert_eq!(status.as_u16(), want, "body: {v}");
    assert_eq!(v["code"], code, "body: {v}");
    assert!(
        v["error"].as_str().is_some_and(|s| !s.is_empty()),
        "error sentence missing: {v}"
    );
}

/// A token signed with the test secret carrying arbitrary claims.
pub fn forge(claims: Value, alg: jsonwebtoken::Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn b64url(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned `alg: none` token for `sub`.
pub fn alg_none(sub: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64url(
        json!({"sub": sub.to_string(), "role": "admin", "iat": now, "exp": now + 3600, "jti": "x"})
            .to_string()
            .as_bytes(),
    );
    format!("{header}.{claims}.")
}

/// A correctly signed token for `sub` that expired a minute ago.
pub fn expired(sub: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    forge(
        json!({"sub": sub.to_string(), "role": "admin", "iat": now - 3600, "exp": now - 60, "jti": "e"}),
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
    )
}

/// How to install what the browser tests need (`tests/browser.rs`, `tests/web.rs`).
pub const BROWSER_INSTALL: &str = "apt-get install -y --no-install-recommends chromium nodejs npm && (cd tests/browser && npm ci) \
(./scripts/test.sh does this)";

/// `tests/browser/`, once Chromium and the npm `package` there are installed; else the test
/// fails with the command that installs them.
pub fn browser_dir(package: &str) -> &'static str {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && Path::new(dir).join("node_modules").join(package).exists(),
        "Chromium or {package} missing; install: {BROWSER_INSTALL}"
    );
    dir
}
