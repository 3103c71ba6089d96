//! RTSP URLs: parsing the parts we need, putting credentials in, and taking them out again
//! for display (`rtsp://user:***@host/…`) and for logs (`rtsp://host/…`).
//!
//! Credentials live in the userinfo (RFC 3986 §3.2.1) and in path or query parameters
//! (XMEye's `/user=admin&password=secret&channel=1…`, `?user=a&pwd=…`, `token=`); every one is
//! masked. People type passwords with `?`, `/` or `#` into the userinfo unencoded, so the
//! authority is found by the `@` that is followed by a valid host, not by the first `/`.

/// The pieces of an `rtsp://` or `rtsps://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspUrl<'a> {
    pub scheme: &'a str,
    pub userinfo: Option<&'a str>,
    pub hostport: &'a str,
    pub rest: &'a str,
}

pub fn parse(url: &str) -> Option<RtspUrl<'_>> {
    let (scheme, after) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("rtsp") && !scheme.eq_ignore_ascii_case("rtsps") {
        return None;
    }
    let (userinfo, hostport, rest) = split_authority(after);
    if hostport.is_empty()
        || hostport
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(RtspUrl {
        scheme,
        userinfo,
        hostport,
        rest,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn valid_hostport(s: &str) -> bool {
    // (whether the host is well formed, the port if one is given)
    let split = || -> Option<(bool, Option<&str>)> {
        if let Some(v6) = s.strip_prefix('[') {
            let (h, rest) = v6.split_once(']')?;
            let ok = !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            let port = match rest {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            return Some((ok, port));
        }
        let (h, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let ok = !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        Some((ok, port))
    };
    split().is_some_and(|(host_ok, port)| {
        host_ok
            && port
                .is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// (userinfo, host[:port], the rest from the path on) of what follows `scheme://`.
fn split_authority(after: &str) -> (Option<&str>, &str, &str) {
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if let Some(i) = authority.rfind('@') {
        return (Some(&authority[..i]), &authority[i + 1..], rest);
    }
    // an unencoded `/`, `?` or `#` in the userinfo: the first `@` followed by a host
    let standard_ok = valid_hostport(authority);
    for (i, _) in after.match_indices('@') {
        let tail = &after[i + 1..];
        let host_end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
        if valid_hostport(&tail[..host_end]) && (!standard_ok || !after[..i].contains('/')) {
            return (Some(&after[..i]), &tail[..host_end], &tail[host_end..]);
        }
    }
    (None, authority, rest)
}

/// Percent-encodes a userinfo component (RFC 3986 unreserved characters pass).
pub fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with its userinfo replaced by `user:password` (or removed when `user` is empty).
pub fn with_credentials(url: &str, user: &str, password: &str) -> Option<String> {
    let u = parse(url)?;
    let creds = match (user.is_empty(), password.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!("{}@", encode_userinfo(user)),
        (false, false) => format!("{}:{}@", encode_userinfo(user), encode_userinfo(password)),
    };
    Some(format!("{}://{}{}{}", u.scheme, creds, u.hostport, u.rest))
}

/// Whether a parameter called `name` holds a secret (`password`, `pwd`, `passwd`, `token`,
/// `api_key`, `secret`, ...).
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["pass", "pwd", "psw", "token", "secret", "auth"]
        .iter()
        .any(|w| n.contains(w))
        || n == "pw"
        || n.ends_with("key")
}

/// Where the value starting at `from` ends: at `/ ? & ; #`, or at a `_` that starts another
/// `name=` (XMEye's underscore form), so a password with `_` in a query stays whole.
fn value_end(rest: &str, from: usize) -> usize {
    for (k, c) in rest[from..].char_indices() {
        let at = from + k;
        match c {
            '/' | '?' | '&' | ';' | '#' => return at,
            '_' => {
                let next = &rest[at + 1..];
                let name_len = next
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(next.len());
                if name_len > 0 && next[name_len..].starts_with('=') {
                    return at;
                }
            }
            _ => {}
        }
    }
    rest.len()
}

/// `rest` (path and query) with the value of every secret-named `name=value` replaced by
/// `***`. Parameters start after `/`, `?`, `&`, `;` or `_` (XMEye writes
/// `user=admin_password=x_channel=1`) and end where [`value_end`] says.
fn mask_secrets(rest: &str) -> String {
    const STARTS: &[char] = &['/', '?', '&', ';', '_'];
    let mut out = String::with_capacity(rest.len());
    let mut i = 0;
    while let Some(eq) = rest[i..].find('=').map(|j| i + j) {
        let name_start = rest[..eq].rfind(STARTS).map_or(0, |k| k + 1);
        let value_end = value_end(rest, eq + 1);
        out.push_str(&rest[i..=eq]);
        if name_start >= i && secret_name(&rest[name_start..eq]) {
            out.push_str("***");
        } else {
            out.push_str(&rest[eq + 1..value_end]);
        }
        i = value_end;
    }
    out.push_str(&rest[i..]);
    out
}

/// For API responses: the user name stays, the password becomes `***`.
pub fn masked(url: &str) -> String {
    let Some(u) = parse(url) else {
        return "(invalid URL)".to_string();
    };
    let creds = match u.userinfo {
        None => String::new(),
        Some(ui) => match ui.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None => format!("{ui}@"),
        },
    };
    format!(
        "{}://{}{}{}",
        u.scheme,
        creds,
        u.hostport,
        mask_secrets(u.rest)
    )
}

/// For logs and errors: no credentials at all.
pub fn redacted(url: &str) -> String {
    match parse(url) {
        Some(u) => format!("{}://{}{}", u.scheme, u.hostport, mask_secrets(u.rest)),
        None => "(invalid URL)".to_string(),
    }
}

/// `url` carrying the raw userinfo of `from` (credentials kept across a path change).
pub fn with_userinfo_of(url: &str, from: &str) -> Option<String> {
    let u = parse(url)?;
    let creds = parse(from)?
        .userinfo
        .map(|ui| format!("{ui}@"))
        .unwrap_or_default();
    Some(format!("{}://{}{}{}", u.scheme, creds, u.hostport, u.rest))
}

/// The user name in a URL's userinfo, percent-decoding left as it is.
pub fn username(url: &str) -> Option<&str> {
    let ui = parse(url)?.userinfo?;
    Some(ui.split_once(':').map_or(ui, |(u, _)| u))
}

/// Decodes `%XX` escapes; `None` on a bad escape or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a URL into the URL without userinfo and the decoded (user, password).
pub fn split_credentials(url: &str) -> Option<(String, Option<(String, String)>)> {
    let u = parse(url)?;
    let bare = format!("{}://{}{}", u.scheme, u.hostport, u.rest);
    let creds = u.userinfo.map(|ui| {
        let (user, pass) = ui.split_once(':').unwrap_or((ui, ""));
        (
            percent_decode(user).unwrap_or_else(|| user.to_string()),
            percent_decode(pass).unwrap_or_else(|| pass.to_string()),
        )
    });
    Some((bare, creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_redacts() {
        let url = "rtsp://admin:s3cr%40t@192.168.1.64:554/Streaming/Channels/101";
        assert_eq!(
            masked(url),
            "rtsp://admin:***@192.168.1.64:554/Streaming/Channels/101"
        );
        assert_eq!(
            redacted(url),
            "rtsp://192.168.1.64:554/Streaming/Channels/101"
        );
        let xm = "rtsp://10.0.0.2:554/user=admin&password=hunter2&channel=1&stream=0.sdp?";
        assert_eq!(
            masked(xm),
            "rtsp://10.0.0.2:554/user=admin&password=***&channel=1&stream=0.sdp?"
        );
        assert!(!redacted(xm).contains("hunter2"));
        assert_eq!(masked("http://x/"), "(invalid URL)");
        assert!(parse("rtsp://a b/").is_none());
        assert!(parse("rtsp:///x").is_none());
    }

    /// URL forms from camera makers' documentation, with the secrets each holds: none may
    /// show in what the API returns (`masked`) or what goes to logs (`redacted`).
    #[test]
    fn no_secret_survives_masking_in_real_camera_urls() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("rtsp://admin:Hik12345@192.168.1.64:554/Streaming/Channels/101", &["Hik12345"], "/Streaming/Channels/101"),
            ("rtsp://admin:12345x@192.168.1.64:554/h264/ch1/main/av_stream", &["12345x"], "/h264/ch1/main/av_stream"),
            ("rtsp://admin:Dahua_pw1@192.168.1.108:554/cam/realmonitor?channel=1&subtype=0", &["Dahua_pw1"], "channel=1&subtype=0"),
            ("rtsp://192.168.1.10:554/user=admin&password=xm3ye&channel=1&stream=0.sdp?", &["xm3ye"], "user=admin&password=***&channel=1"),
            ("rtsp://192.168.1.10:554/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp?real_stream", &["tlJwpbo6"], "_channel=1_stream=0.sdp?real_stream"),
            ("rtsp://root:AxisPw9@192.168.0.90/axis-media/media.amp?videocodec=h264&resolution=640x480", &["AxisPw9"], "resolution=640x480"),
            ("rtsp://user:fosc4m@192.168.1.20:88/videoMain", &["fosc4m"], ":88/videoMain"),
            ("rtsp://admin:reo-link@192.168.1.40:554/h264Preview_01_main", &["reo-link"], "/h264Preview_01_main"),
            ("rtsp://192.168.1.40/bcs/channel0_main.bcs?channel=0&stream=0&user=admin&password=reoQ", &["reoQ"], "user=admin&password=***"),
            ("rtsp://admin:unv1ew@192.168.1.50:554/unicast/c1/s0/live", &["unv1ew"], "/unicast/c1/s0/live"),
            ("rtsp://root:vivo7ek@192.168.1.60:554/live.sdp", &["vivo7ek"], "/live.sdp"),
            ("rtsp://admin:hanwh4@192.168.1.70:554/profile2/media.smp", &["hanwh4"], "/profile2/media.smp"),
            ("rtsp://tapouser:t4po_pw@192.168.1.80:554/stream1", &["t4po_pw"], "tapouser:***@"),
            ("rtsp://service:b0sch@192.168.1.90/rtsp_tunnel?h26x=4&line=1", &["b0sch"], "h26x=4&line=1"),
            ("rtsp://admin:meinsm@192.168.1.100:554/stream0/mobotix.mjpeg", &["meinsm"], "/stream0/mobotix.mjpeg"),
            ("rtsp://192.168.1.11/live?user=admin&pwd=yi_secret_1", &["yi_secret_1", "secret_1"], "user=admin&pwd=***"),
            ("rtsp://cam.lan/live?token=abc123def&channel=1", &["abc123def"], "channel=1"),
            ("rtsp://192.168.1.12/live/ch0?api_key=K3Y99&access_token=T0K3N", &["K3Y99", "T0K3N"], "/live/ch0"),
            ("rtsp://admin:sw4nn@192.168.1.12:554/ch01/0", &["sw4nn"], "/ch01/0"),
            ("rtsp://admin:geo%40v1s@192.168.1.13:8554/CH001.sdp", &["geo%40v1s", "geo@v1s"], "/CH001.sdp"),
            ("rtsp://admin:milesight1@192.168.1.14:554/main", &["milesight1"], ":554/main"),
            ("rtsp://admin:pa?ss@10.5.0.1/x?user=a&pwd=SECRET1&password=a&password=SECRET2&passwd=SECRET3", &["pa?ss", "SECRET1", "SECRET2", "SECRET3"], "10.5.0.1/x?user=a&pwd=***"),
            ("rtsp://admin:pa/ss#1@10.5.0.2:554/live", &["pa/ss", "ss#1"], "10.5.0.2:554/live"),
            ("rtsp://ad:p@ss:w@[fe80::1]:554/x?Password=Up&PASSWD=Up2", &["p@ss:w", "Up"], "[fe80::1]:554/x"),
        ];
        assert!(cases.len() >= 20);
        for (url, secrets, kept) in cases {
            let (m, r) = (masked(url), redacted(url));
            for secret in *secrets {
                assert!(!m.contains(secret), "{url}: masked {m} shows {secret}");
                assert!(!r.contains(secret), "{url}: redacted {r} shows {secret}");
            }
            assert!(m.contains(kept), "{url}: masked {m} lost {kept}");
            assert!(parse(url).is_some(), "{url}");
        }
        // the userinfo with `?` is the camera's, the host is the one after it
        let (bare, creds) = split_credentials("rtsp://admin:pa?ss@10.5.0.1/x").unwrap();
        assert_eq!(bare, "rtsp://10.5.0.1/x");
        assert_eq!(creds, Some(("admin".into(), "pa?ss".into())));
        // an `@` in a path is not a userinfo
        assert_eq!(
            parse("rtsp://10.0.0.1/a@b.c/x").unwrap().hostport,
            "10.0.0.1"
        );
    }

    #[test]
    fn credentials_are_encoded() {
        let u = with_credentials("rtsp://cam.lan/x?y=1", "ad min", "p@ss:w/rd").unwrap();
        assert_eq!(u, "rtsp://ad%20min:p%40ss%3Aw%2Frd@cam.lan/x?y=1");
        assert_eq!(masked(&u), "rtsp://ad%20min:***@cam.lan/x?y=1");
        let u = with_credentials("rtsp://old:pw@cam.lan/x", "", "").unwrap();
        assert_eq!(u, "rtsp://cam.lan/x");
    }
}
