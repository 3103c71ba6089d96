//! The box's own web page in a real browser: headless Chromium (Debian's) driven by
//! playwright-core through `tests/browser/page.mjs`, against a server with a camsim DVR of
//! nine channels on its own loopback address. From a fresh box: the first admin, a discovery
//! scan that lists the DVR's channels and adds them, the 4- and 9-tile grids playing, a 5 s recording
//! made and played in the page, tiles off screen and a hidden tab fetching nothing, a viewer
//! with one camera, a password change, Spanish.
//! Screenshots are saved in `target/tmp/web-shots/` (the README's come from there).
//! Also, without a browser: the page's files, their headers and their strings.

mod support;

use std::process::Command;

use serde_json::Value;
use support::cams::Camsim;
use support::Server;

const DVR: &str = "127.0.0.77";
const CHANNELS: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_does_what_its_users_do_in_chromium() {
    let dir = support::browser_dir("playwright-core");
    // a Hikvision-style DVR: nine channels at /Streaming/Channels/<ch>01, nothing else
    let paths: Vec<String> = (1..=CHANNELS)
        .map(|ch| format!("/Streaming/Channels/{ch}01"))
        .collect();
    let mut args = vec!["--listen".to_string(), format!("{DVR}:0")];
    for p in &paths {
        args.extend(["--only".to_string(), p.clone()]);
    }
    let dvr = Camsim::start_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let s = Server::start_with(&[
        ("SCAN_PORTS", &dvr.port.to_string()),
        ("ONVIF_TIMEOUT", "1"),
    ]);
    let shots = concat!(env!("CARGO_TARGET_TMPDIR"), "/web-shots");
    let out = Command::new("node")
        .current_dir(dir)
        .args([
            "page.mjs",
            &s.url(""),
            shots,
            &format!("{DVR}/32"),
            &CHANNELS.to_string(),
        ])
        .output()
        .unwrap_or_else(|e| panic!("node: {e}; install: {}", support::BROWSER_INSTALL));
    let text = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
        panic!(
            "page.mjs printed no result: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let record = concat!(env!("CARGO_TARGET_TMPDIR"), "/web-last.json");
    std::fs::write(record, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    for st in r["steps"].as_array().unwrap() {
        eprintln!(
            "web: {} {} ms: {}",
            if st["ok"] == true { "ok  " } else { "FAIL" },
            st["ms"],
            st["name"].as_str().unwrap_or("")
        );
    }
    assert!(
        r["ok"] == true,
        "a step failed (every step in {record}, screenshots in {shots}): {:#}\nserver log:\n{}",
        r["steps"].as_array().unwrap().last().unwrap(),
        s.logs()
    );
    assert_eq!(r["steps"].as_array().unwrap().len(), 11, "{r:#}");
    assert_eq!(r["csp"], serde_json::json!([]), "CSP violations: {r:#}");
    // a failed fetch the page shows to the user (a wrong old password is one) logs no error of
    // its own; anything else in the console is a defect
    let errors: Vec<&str> = r["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|e| !e.contains("401 (Unauthorized)"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    for name in ["grid", "recordings", "cameras", "viewer"] {
        let p = format!("{shots}/{name}.png");
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "no screenshot {p}"
        );
    }
}

/// The page's files as a browser gets them: gzip, ETag (304), the cache policy by kind, the
/// security headers; every file `index.html` and the modules import exists; a client that
/// refuses gzip gets 406.
#[tokio::test]
async fn the_page_files_are_served_compressed_cached_and_locked_down() {
    let s = Server::start();
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let get =
        |path: &str, enc: &'static str| raw.get(s.url(path)).header("accept-encoding", enc).send();
    let r = get("/", "gzip, deflate").await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap();
    for d in [
        "default-src 'none'",
        "script-src 'self';",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(d), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let etag = h["etag"].to_str().unwrap().to_string();
    let zipped = r.bytes().await.unwrap();
    let html = gunzip(&zipped);
    // no inline script: every <script> loads a file
    for tag in html.split("<script").skip(1) {
        assert!(
            tag.contains(" src=\"/ui/"),
            "an inline script in index.html: {tag}"
        );
    }
    let r = raw
        .get(s.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());

    let r = get("/ui/app.js", "identity").await.unwrap();
    assert_eq!(r.status(), 406);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_acceptable", "{v}");
    assert!(v["error"].as_str().unwrap().contains("gzip"), "{v}");

    // the OpenAPI document goes plain to API tools that refuse gzip (Python's urllib does)
    let r = get("/api/openapi.json", "identity").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // every module the page imports, and what index.html names, is served
    let mut todo = vec!["app.js".to_string(), "app.css".into(), "icon.svg".into()];
    let mut seen = Vec::new();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let r = get(&format!("/ui/{name}"), "gzip").await.unwrap();
        assert_eq!(r.status(), 200, "/ui/{name}");
        let h = r.headers().clone();
        let kind = h["content-type"].to_str().unwrap().to_string();
        let text = gunzip(&r.bytes().await.unwrap());
        if name.starts_with("hls-") {
            assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
        } else {
            assert_eq!(h["cache-control"], "no-cache", "{name}");
        }
        if name.ends_with(".js") || name.ends_with(".mjs") {
            assert_eq!(kind, "text/javascript; charset=utf-8");
            for part in text.split(" from './").skip(1) {
                todo.push(part.split('\'').next().unwrap().to_string());
            }
        }
        seen.push(name);
    }
    assert!(
        seen.iter().any(|n| n == "hls-1.7.4.light.min.mjs") && seen.len() >= 12,
        "{seen:?}"
    );
    let r = get("/ui/hls-1.7.4.LICENSE.txt", "gzip").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(gunzip(&r.bytes().await.unwrap()).contains("Apache License"));
}

/// Every string the page uses exists in English and in Spanish, and the two files have the
/// same keys.
#[test]
fn every_string_is_in_both_languages() {
    let web = concat!(env!("CARGO_MANIFEST_DIR"), "/web");
    let script = r#"
const fs = require('fs');
const dir = process.argv[1];
const load = (f) => import('data:text/javascript,' + encodeURIComponent(fs.readFileSync(`${dir}/${f}`, 'utf8'))).then((m) => m.default);
(async () => {
  const en = await load('en.js'), es = await load('es.js');
  const used = new Set();
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    for (const m of fs.readFileSync(`${dir}/${f}`, 'utf8').matchAll(/\bt\('([a-z_.]+)'/g)) used.add(m[1]);
  }
  console.log(JSON.stringify({ en: Object.keys(en).sort(), es: Object.keys(es).sort(), used: [...used].sort() }));
})();
"#;
    let out = Command::new("node")
        .args(["-e", script, web])
        .output()
        .unwrap_or_else(|e| panic!("node: {e}; install: {}", support::BROWSER_INSTALL));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["en"], v["es"], "en.js and es.js have different keys");
    let en: Vec<&str> = v["en"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let used: Vec<&str> = v["used"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(used.len() > 80, "{used:?}");
    let missing: Vec<&&str> = used.iter().filter(|k| !en.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "strings used but not written: {missing:?}"
    );
}

fn gunzip(b: &[u8]) -> String {
    use std::io::Read;
    let mut s = String::new();
    flate2::read::GzDecoder::new(b)
        .read_to_string(&mut s)
        .expect("gzip");
    s
}
