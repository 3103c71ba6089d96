//! Build step: the OpenAPI document (`src/api/openapi.json`, written by hand and kept
//! readable) is checked to be JSON and embedded minified, so the binary carries ~half its size.

use std::path::PathBuf;

fn main() {
    let src = "src/api/openapi.json";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    let doc: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{src} is not JSON: {e}"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let min = serde_json::to_string(&doc).expect("a JSON value serializes");
    std::fs::write(out.join("openapi.json"), min).expect("OUT_DIR is writable");
}
