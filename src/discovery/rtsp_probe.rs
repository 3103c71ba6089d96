//! RTSP probing: is an open port RTSP (an `OPTIONS` answered with `RTSP/1.0`, RFC 2326 §10.1,
//! whatever the port number), and which brand template it serves (a `DESCRIBE` through retina,
//! which handles Basic and Digest authentication), then how many channels a DVR/NVR has.
//!
//! Cameras lock accounts after a few failed logins, so credentials are tried at most once per
//! template, and the first answer that rejects them (401 with credentials) ends the probing of
//! that device: it is reported `wrong_credentials` and nothing else is tried with them.

use std::net::Ipv4Addr;
use std::time::Duration;

use retina::client::{Credentials, Session, SessionOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Status;
use crate::camera::templates;
use crate::store::Brand;

/// Time for one OPTIONS or DESCRIBE exchange.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Highest channel probed on a DVR/NVR.
pub const MAX_CHANNELS: u32 = 128;

/// The status line and headers of an RTSP answer (RFC 2326 §7). `None` unless it is one.
pub fn parse_response_head(bytes: &[u8]) -> Option<(u16, Vec<(String, String)>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    let mut parts = status.splitn(3, ' ');
    if parts.next()? != "RTSP/1.0" {
        return None;
    }
    let code: u16 = parts.next()?.parse().ok()?;
    if !(100..=999).contains(&code) {
        return None;
    }
    let headers = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Some((code, headers))
}

/// Whether `ip:port` answers an RTSP OPTIONS (any status: a 401 is RTSP too).
pub async fn answers_rtsp(ip: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    let work = async {
        let mut s = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
        let req = format!(
            "OPTIONS rtsp://{ip}:{port}/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: vigia/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while buf.len() < 8192 && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        parse_response_head(&buf).map(|_| ())
    };
    matches!(tokio::time::timeout(timeout, work).await, Ok(Some(())))
}

/// What one DESCRIBE said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A stream is there.
    Stream,
    /// 401: credentials needed (or, when some were sent, wrong).
    Unauthorized,
    /// Anything else: not this path.
    Miss,
}

/// DESCRIBEs `url` (credentials in `creds`, never in the URL).
pub async fn describe(url: &str, creds: Option<(&str, &str)>, timeout: Duration) -> Answer {
    let Ok(url) = url::Url::parse(url) else {
        return Answer::Miss;
    };
    let opts = SessionOptions::default()
        .creds(creds.map(|(u, p)| Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }))
        .user_agent(format!("vigia/{}", env!("CARGO_PKG_VERSION")));
    match tokio::time::timeout(timeout, Session::describe(url, opts)).await {
        Ok(Ok(_)) => Answer::Stream,
        Ok(Err(e)) if e.status_code() == Some(401) => Answer::Unauthorized,
        _ => Answer::Miss,
    }
}

/// The URL of a template's channel (credentials only where the brand puts them in the path).
pub fn template_url(
    brand: Brand,
    ip: Ipv4Addr,
    port: u16,
    channel: u32,
    creds: Option<(&str, &str)>,
) -> String {
    let (u, p) = match creds {
        Some((u, p)) if templates::credentials_in_path(brand) => (u, p),
        _ => ("", ""),
    };
    templates::build_url(brand, &ip.to_string(), port, channel, u, p)
}

/// A channel's path as reported: the template's, without credentials.
pub fn template_path(brand: Brand, channel: u32) -> String {
    templates::report_path(brand, channel)
}

/// What probing one RTSP port found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub brand: Option<Brand>,
    pub channels: Vec<u32>,
    pub status: Status,
}

/// Tries the templates ([`templates::brands`]) on `ip:port`, then expands the channels of the first that
/// answers: channel 2, 3, … until two misses in a row (at most [`MAX_CHANNELS`]).
pub async fn probe(
    ip: Ipv4Addr,
    port: u16,
    creds: Option<(&str, &str)>,
    timeout: Duration,
) -> Found {
    // built-in templates first, then those RTSP_TEMPLATES added
    for brand in templates::brands() {
        let url = template_url(brand, ip, port, 1, creds);
        match describe(&url, creds, timeout).await {
            Answer::Stream => {
                let mut channels = vec![1];
                if templates::has_channels(brand) {
                    let mut misses = 0;
                    for ch in 2..=MAX_CHANNELS {
                        let url = template_url(brand, ip, port, ch, creds);
                        match describe(&url, creds, timeout).await {
                            Answer::Stream => {
                                channels.push(ch);
                                misses = 0;
                            }
                            // a channel refused with credentials that worked on channel 1:
                            // stop rather than risk a lock-out
                            Answer::Unauthorized => break,
                            Answer::Miss => {
                                misses += 1;
                                if misses == 2 {
                                    break;
                                }
                            }
                        }
                    }
                }
                return Found {
                    brand: Some(brand),
                    channels,
                    status: Status::Ok,
                };
            }
            Answer::Unauthorized => {
                return Found {
                    brand: None,
                    channels: Vec::new(),
                    status: Status::refused(creds.is_some()),
                }
            }
            Answer::Miss => {}
        }
    }
    Found {
        brand: None,
        channels: Vec::new(),
        status: Status::NoStreamFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads() {
        let (code, h) = parse_response_head(
            b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP\r\n\r\n",
        )
        .unwrap();
        assert_eq!(code, 200);
        assert_eq!(h[1], ("public".into(), "OPTIONS, DESCRIBE, SETUP".into()));
        assert_eq!(
            parse_response_head(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n").map(|r| r.0),
            Some(401)
        );
        for junk in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"",
            b"RTSP/1.0",
            b"RTSP/1.0 abc OK\r\n",
            b"RTSP/1.0 99999 X\r\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_response_head(junk), None);
        }
    }

    #[test]
    fn template_paths_carry_no_credentials() {
        assert_eq!(
            template_path(Brand::Hikvision, 2),
            "/Streaming/Channels/201"
        );
        assert_eq!(
            template_path(Brand::Xmeye, 3),
            "/user=&password=&channel=3&stream=0.sdp?"
        );
        let u = template_url(
            Brand::Xmeye,
            Ipv4Addr::new(127, 0, 0, 9),
            554,
            1,
            Some(("admin", "pw")),
        );
        assert!(u.contains("user=admin&password=pw"));
        let u = template_url(
            Brand::Dahua,
            Ipv4Addr::new(127, 0, 0, 9),
            554,
            1,
            Some(("admin", "pw")),
        );
        assert!(!u.contains("pw"), "{u}");
    }
}
