//! Build step: the OpenAPI document (`src/api/openapi.json`, written by hand and kept
//! readable) is checked to be JSON and embedded minified, so the binary carries ~half its size.
//! A document that is not JSON fails the build with the parser's sentence.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let src = "src/api/openapi.json";
    println!("cargo:rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).map_err(|e| format!("{src}: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{src} is not JSON: {e}"))?;
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    std::fs::write(out.join("openapi.json"), serde_json::to_string(&doc)?)?;
    Ok(())
}
