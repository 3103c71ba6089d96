//! RTSP URL templates per brand: how a camera's stream URL is built from its address, port,
//! channel and credentials. Discovery probes the same templates.
//!
//! The built-in ones are paths (`{ch}` is the 1-based channel, `{user}`/`{password}` the
//! credentials for the brands that put them in the path). `RTSP_TEMPLATES` (the old Flask
//! backend's setting: a JSON object brand → whole URL with `{ip}`, `{port}`, `{user}`,
//! `{password}`, `{channel}`) replaces built-in ones and adds brands, once at start.

use std::sync::OnceLock;

use crate::store::Brand;

/// Whole-URL templates from `RTSP_TEMPLATES`, by brand, in the order given.
static CONFIGURED: OnceLock<Vec<(Brand, String)>> = OnceLock::new();

/// The placeholders a configured template may use.
const PLACEHOLDERS: [&str; 5] = ["{ip}", "{port}", "{user}", "{password}", "{channel}"];

/// Parses `RTSP_TEMPLATES`: a JSON object of brand name → `rtsp://` or `rtsps://` URL with
/// `{ip}` and only the known placeholders. `dahu` (the old key) is Dahua.
pub fn parse_configured(json: &str) -> Result<Vec<(Brand, String)>, String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| format!("must be a JSON object of brand → URL template: {e}"))?;
    let mut out = Vec::new();
    for (name, v) in map {
        let key = name.trim().to_ascii_lowercase();
        let brand = if key == "dahu" {
            Brand::Dahua
        } else {
            Brand::named(&key).ok_or_else(|| {
                format!("brand '{name}': use at most 32 lowercase letters, digits, '-' or '_'")
            })?
        };
        let t = v
            .as_str()
            .ok_or_else(|| format!("brand '{name}': the template must be a string"))?
            .trim()
            .to_string();
        if !(t.starts_with("rtsp://") || t.starts_with("rtsps://")) || !t.contains("{ip}") {
            return Err(format!(
                "brand '{name}': the template must be an rtsp:// URL with {{ip}}"
            ));
        }
        let mut rest = t.clone();
        for p in PLACEHOLDERS {
            rest = rest.replace(p, "");
        }
        if rest.contains('{') || rest.contains('}') || t.len() > 1024 {
            return Err(format!(
                "brand '{name}': a template knows only {}",
                PLACEHOLDERS.join(", ")
            ));
        }
        out.retain(|(b, _)| *b != brand);
        out.push((brand, t));
    }
    Ok(out)
}

/// Sets the configured templates (once, at start; later calls change nothing).
pub fn configure(templates: Vec<(Brand, String)>) {
    let _ = CONFIGURED.set(templates);
}

fn configured(brand: Brand) -> Option<&'static str> {
    CONFIGURED
        .get()?
        .iter()
        .find(|(b, _)| *b == brand)
        .map(|(_, t)| t.as_str())
}

/// Whether `name` is a brand `RTSP_TEMPLATES` added (for input checks).
pub fn is_configured(name: &str) -> bool {
    CONFIGURED
        .get()
        .is_some_and(|ts| ts.iter().any(|(b, _)| b.as_str() == name))
}

/// Every brand with a template, built-in first, then the added ones (discovery's order).
pub fn brands() -> Vec<Brand> {
    let mut all = Brand::ALL.to_vec();
    for (b, _) in CONFIGURED.get().into_iter().flatten() {
        if !all.contains(b) {
            all.push(*b);
        }
    }
    all
}

/// The built-in path template of a brand's main stream (an added brand without a template
/// any more gets the generic one).
fn path_template(brand: Brand) -> &'static str {
    match brand {
        Brand::Hikvision => "/Streaming/Channels/{ch}01",
        Brand::Dahua => "/cam/realmonitor?channel={ch}&subtype=0",
        Brand::Xmeye => "/user={user}&password={password}&channel={ch}&stream=0.sdp?",
        Brand::Onvif => "/onvif{ch}",
        Brand::Generic | Brand::Custom(_) => "/stream{ch}",
    }
}

/// Whether a brand's URL names a channel (discovery then looks for more than one).
pub fn has_channels(brand: Brand) -> bool {
    configured(brand)
        .map_or(path_template(brand), |t| t)
        .contains("{ch")
}

/// Whether a brand's URL carries the credentials in its path (the probe then puts them there).
pub fn credentials_in_path(brand: Brand) -> bool {
    match configured(brand) {
        Some(t) => {
            let after_host = t.split_once("://").map_or("", |(_, r)| r);
            after_host
                .split_once('/')
                .is_some_and(|(_, path)| path.contains("{user}") || path.contains("{password}"))
        }
        None => brand == Brand::Xmeye,
    }
}

/// Default RTSP port of a brand.
pub fn default_port(_brand: Brand) -> u16 {
    554
}

fn fill(template: &str, channel: u32, user: &str, password: &str) -> String {
    template
        .replace("{ch}", &channel.to_string())
        .replace("{user}", user)
        .replace("{password}", password)
}

/// The full URL for a camera, credentials in the userinfo (or the path, for XMEye and for
/// configured templates that put them there).
pub fn build_url(
    brand: Brand,
    host: &str,
    port: u16,
    channel: u32,
    user: &str,
    password: &str,
) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if let Some(t) = configured(brand) {
        return fill_url(t, &host, port, channel, user, password);
    }
    let path = fill(path_template(brand), channel, user, password);
    let base = format!("rtsp://{host}:{port}{path}");
    if brand == Brand::Xmeye || user.is_empty() {
        return base;
    }
    super::url::with_credentials(&base, user, password).unwrap_or(base)
}

/// A whole-URL template filled in (credentials percent-encoded; put in the userinfo when the
/// template has no place for them).
fn fill_url(t: &str, host: &str, port: u16, channel: u32, user: &str, password: &str) -> String {
    let enc = super::url::encode_userinfo;
    let url = t
        .replace("{ip}", host)
        .replace("{port}", &port.to_string())
        .replace("{channel}", &channel.to_string())
        .replace("{user}", &enc(user))
        .replace("{password}", &enc(password));
    // no credentials given: no empty `:@` before the host
    let url = url.replacen("://:@", "://", 1);
    if t.contains("{user}") || user.is_empty() {
        return url;
    }
    super::url::with_credentials(&url, user, password).unwrap_or(url)
}

/// A channel's path as discovery reports it: the template's, without credentials.
pub fn report_path(brand: Brand, channel: u32) -> String {
    let url = build_url(brand, "h", 1, channel, "", "");
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    after_scheme
        .find('/')
        .map_or_else(|| "/".to_string(), |i| after_scheme[i..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands() {
        assert_eq!(
            build_url(Brand::Hikvision, "10.1.1.1", 554, 2, "admin", "pw"),
            "rtsp://admin:pw@10.1.1.1:554/Streaming/Channels/201"
        );
        assert_eq!(
            build_url(Brand::Dahua, "10.1.1.1", 554, 3, "", ""),
            "rtsp://10.1.1.1:554/cam/realmonitor?channel=3&subtype=0"
        );
        assert_eq!(
            build_url(Brand::Xmeye, "10.1.1.1", 554, 1, "admin", "x"),
            "rtsp://10.1.1.1:554/user=admin&password=x&channel=1&stream=0.sdp?"
        );
        assert_eq!(
            build_url(Brand::Generic, "::1", 8554, 1, "", ""),
            "rtsp://[::1]:8554/stream1"
        );
        assert_eq!(
            report_path(Brand::Xmeye, 3),
            "/user=&password=&channel=3&stream=0.sdp?"
        );
    }

    /// `RTSP_TEMPLATES` as the old backend read it: whole URLs, keys any case, `dahu` for
    /// Dahua; bad ones say which brand and why.
    #[test]
    fn configured_templates_parse_and_fill() {
        let t = parse_configured(
            r#"{"Axis": "rtsp://{user}:{password}@{ip}:{port}/axis-media/media.amp?camera={channel}",
                "dahu": "rtsp://{ip}:{port}/cam/realmonitor?channel={channel}&subtype=1"}"#,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].0.as_str(), "axis");
        assert_eq!(t[1].0, Brand::Dahua);
        assert_eq!(
            fill_url(&t[0].1, "10.0.0.9", 554, 2, "ad min", "p@ss"),
            "rtsp://ad%20min:p%40ss@10.0.0.9:554/axis-media/media.amp?camera=2"
        );
        assert_eq!(
            fill_url(&t[0].1, "10.0.0.9", 554, 1, "", ""),
            "rtsp://10.0.0.9:554/axis-media/media.amp?camera=1"
        );
        assert_eq!(
            fill_url(&t[1].1, "[::1]", 8554, 3, "u", "p"),
            "rtsp://u:p@[::1]:8554/cam/realmonitor?channel=3&subtype=1"
        );
        for bad in [
            "[]",
            r#"{"x y": "rtsp://{ip}/"}"#,
            r#"{"a": "http://{ip}/"}"#,
            r#"{"a": "rtsp://host/"}"#,
            r#"{"a": "rtsp://{ip}/{chan}"}"#,
            r#"{"a": 5}"#,
        ] {
            assert!(parse_configured(bad).is_err(), "{bad}");
        }
    }
}
