//! RTSP URLs: parsing the parts we need, putting credentials in, and taking them out again
//! for display (`rtsp://user:***@host/…`) and for logs (`rtsp://host/…`).
//!
//! Credentials live in the userinfo (RFC 3986 §3.2.1) and, for XMEye devices, in the path
//! (`/user=admin&password=secret&channel=1…`); both are masked.

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
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
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

fn mask_path_password(rest: &str) -> String {
    // XMEye style: ".../user=admin&password=secret&channel=1..."
    let lower = rest.to_ascii_lowercase();
    match lower.find("password=") {
        Some(i) => {
            let start = i + "password=".len();
            let end = rest[start..]
                .find(['&', ';', '?', '/'])
                .map_or(rest.len(), |j| start + j);
            format!("{}***{}", &rest[..start], &rest[end..])
        }
        None => rest.to_string(),
    }
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
        mask_path_password(u.rest)
    )
}

/// For logs and errors: no credentials at all.
pub fn redacted(url: &str) -> String {
    match parse(url) {
        Some(u) => format!(
            "{}://{}{}",
            u.scheme,
            u.hostport,
            mask_path_password(u.rest)
        ),
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

    #[test]
    fn credentials_are_encoded() {
        let u = with_credentials("rtsp://cam.lan/x?y=1", "ad min", "p@ss:w/rd").unwrap();
        assert_eq!(u, "rtsp://ad%20min:p%40ss%3Aw%2Frd@cam.lan/x?y=1");
        assert_eq!(masked(&u), "rtsp://ad%20min:***@cam.lan/x?y=1");
        let u = with_credentials("rtsp://old:pw@cam.lan/x", "", "").unwrap();
        assert_eq!(u, "rtsp://cam.lan/x");
    }
}
