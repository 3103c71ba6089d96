//! The camera registry's rules: camera ids, address validation, RTSP URLs built from brand
//! templates, and credentials sealed before they reach the store.
//!
//! A camera is one video channel. Channel 1 has the IP (or host name) itself as its id, so
//! clients of the old backend that address cameras by IP keep working; channel N > 1 of the
//! same device is `<ip>-ch<N>` (e.g. `192.168.1.50-ch4`), readable and unique.

pub mod seal;
pub mod templates;
pub mod url;

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::store::Brand;

/// Longest RTSP user name or password accepted (camera settings, discovery).
pub const MAX_CREDENTIAL: usize = 128;

/// The one length rule for a camera user name or password.
pub fn check_credential(field: &str, value: &str) -> Result<()> {
    if value.len() > MAX_CREDENTIAL {
        return Err(Error::bad_request(format!(
            "{field} must have at most {MAX_CREDENTIAL} bytes"
        )));
    }
    Ok(())
}

/// Highest channel number of a DVR/NVR we accept.
pub const MAX_CHANNEL: u32 = 256;

/// Path words that cannot be camera ids because routes use them.
const RESERVED: [&str; 3] = ["list", "discover", "batch"];

/// The id of channel `channel` of the device at `ip`.
pub fn camera_id(ip: &str, channel: u32) -> String {
    if channel == 1 {
        ip.to_string()
    } else {
        format!("{ip}-ch{channel}")
    }
}

/// The device address of camera id `id` (the inverse of [`camera_id`]).
pub fn address_of(id: &str) -> &str {
    id.rsplit_once("-ch")
        .filter(|(_, n)| n.parse::<u32>().is_ok())
        .map_or(id, |(ip, _)| ip)
}

/// Normalises and checks a device address: an IP address or a DNS host name.
pub fn normalize_address(ip: &str) -> Result<String> {
    let s = ip.trim();
    if let Ok(addr) = s.parse::<IpAddr>() {
        return Ok(addr.to_string());
    }
    let s = s.to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && !RESERVED.contains(&s.as_str());
    if ok {
        Ok(s)
    } else {
        Err(Error::bad_request(format!(
            "'ip' must be an IP address or host name, got '{}'",
            truncate(ip, 64)
        )))
    }
}

/// At most `n` characters of `s`, for echoing bad input in an error.
pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The RTSP URL a camera should use: the given one (with credentials put in when given
/// separately), or the brand template's.
pub fn resolve_rtsp_url(
    given: Option<&str>,
    brand: Brand,
    ip: &str,
    port: u16,
    channel: u32,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<String> {
    let user = username.unwrap_or("");
    let pass = password.unwrap_or("");
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(templates::build_url(brand, ip, port, channel, user, pass)),
        Some(u) => {
            if u.len() > 2048 {
                return Err(Error::bad_request("'rtsp_url' is longer than 2048 bytes"));
            }
            if url::parse(u).is_none() {
                return Err(Error::bad_request(
                    "'rtsp_url' must be an rtsp:// or rtsps:// URL",
                ));
            }
            if username.is_some() || password.is_some() {
                url::with_credentials(u, user, pass)
                    .ok_or_else(|| Error::bad_request("'rtsp_url' cannot take credentials"))
            } else {
                Ok(u.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_addresses() {
        assert_eq!(camera_id("192.168.1.10", 1), "192.168.1.10");
        assert_eq!(camera_id("192.168.1.10", 4), "192.168.1.10-ch4");
        assert_eq!(normalize_address(" 127.0.0.1 ").unwrap(), "127.0.0.1");
        assert_eq!(normalize_address("Cam-1.LAN").unwrap(), "cam-1.lan");
        assert_eq!(normalize_address("::1").unwrap(), "::1");
        for bad in ["", "a b", "-x", "list", "x/y", "../etc", "a..b"] {
            assert!(normalize_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let u = resolve_rtsp_url(
            None,
            Brand::Hikvision,
            "10.0.0.1",
            554,
            1,
            Some("admin"),
            Some("pw"),
        )
        .unwrap();
        assert_eq!(u, "rtsp://admin:pw@10.0.0.1:554/Streaming/Channels/101");
        let u = resolve_rtsp_url(
            Some("rtsp://10.0.0.1/live"),
            Brand::Generic,
            "10.0.0.1",
            554,
            1,
            Some("a"),
            Some("b"),
        )
        .unwrap();
        assert_eq!(u, "rtsp://a:b@10.0.0.1/live");
        assert!(
            resolve_rtsp_url(Some("http://x"), Brand::Generic, "x", 554, 1, None, None).is_err()
        );
    }
}
