//! ONVIF over SOAP 1.2: `GetDeviceInformation` (maker, model) and `GetCapabilities` from the
//! device service (ONVIF Device Management Service Specification §8.3.1, §8.1.2), then
//! `GetProfiles` and `GetStreamUri` from the media service (ONVIF Media Service Specification
//! §5.2.1, §5.15.1), with a WS-Security UsernameToken using `PasswordDigest` (OASIS WSS
//! UsernameToken Profile 1.0 §3.1: Base64(SHA-1(nonce + created + password))) when
//! credentials are given. The password itself never travels.
//!
//! Each profile's video source is one channel (an NVR's ONVIF interface lists a profile or two
//! per input); the first profile of each source is its main stream.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};

use super::xml;

/// What went wrong talking to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnvifError {
    /// A SOAP fault saying the credentials are missing or wrong (`ter:NotAuthorized`), or
    /// HTTP 401.
    NotAuthorized,
    /// No answer, not HTTP, not SOAP, or a fault of another kind.
    Failed(String),
}

type Res<T> = std::result::Result<T, OnvifError>;

fn failed(e: impl std::fmt::Display) -> OnvifError {
    OnvifError::Failed(e.to_string())
}

/// `GetDeviceInformation`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
}

/// One media profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    /// The video source it encodes (the channel).
    pub source: String,
}

/// The WS-Security header for `user`/`password` at `created` with `nonce`.
pub fn security_header(user: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        concat!(
            r#"<s:Header><Security s:mustUnderstand="1" xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">"#,
            r#"<UsernameToken><Username>{}</Username>"#,
            r#"<Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{}</Password>"#,
            r#"<Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{}</Nonce>"#,
            r#"<Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">{}</Created>"#,
            r#"</UsernameToken></Security></s:Header>"#
        ),
        xml::escape(user),
        b64.encode(h.finalize()),
        b64.encode(nonce),
        created
    )
}

/// A SOAP 1.2 envelope around `body`, signed with `creds` when given.
pub fn envelope(body: &str, creds: Option<(&str, &str)>) -> String {
    let header = creds
        .map(|(u, p)| {
            let nonce: [u8; 16] = rand::random();
            let created = chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            security_header(u, p, &nonce, &created)
        })
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">{header}<s:Body>{body}</s:Body></s:Envelope>"#
    )
}

const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";
const SCHEMA_NS: &str = "http://www.onvif.org/ver10/schema";

/// Largest SOAP answer read.
const MAX_ANSWER: usize = xml::MAX_XML;

/// (host, port, path) of an `http://` URL.
fn split_http(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || authority.is_empty() {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 80,
        };
        (format!("[{h}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (authority.to_string(), 80),
        }
    };
    Some((host, port, path.to_string()))
}

/// POSTs a SOAP request and returns the answer's text.
pub async fn call(
    url: &str,
    body: &str,
    creds: Option<(&str, &str)>,
    timeout: Duration,
) -> Res<String> {
    let (host, port, path) =
        split_http(url).ok_or_else(|| failed(format!("not an http:// service address: {url}")))?;
    let work = async {
        let addr = format!(
            "{}:{port}",
            host.trim_start_matches('[').trim_end_matches(']')
        );
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(failed)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(failed)?;
        tokio::spawn(conn);
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(
                hyper::header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8",
            )
            .body(Full::new(Bytes::from(envelope(body, creds))))
            .map_err(failed)?;
        let resp = send.send_request(req).await.map_err(failed)?;
        let status = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| failed(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok::<_, OnvifError>((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    let (status, text) = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| failed("no answer in time"))??;
    if let Some(fault) = fault(&text) {
        return Err(fault);
    }
    match status {
        200 => Ok(text),
        401 => Err(OnvifError::NotAuthorized),
        s => Err(failed(format!("HTTP {s}"))),
    }
}

/// The SOAP fault in `text`, if it is one.
pub fn fault(text: &str) -> Option<OnvifError> {
    let doc = xml::parse(text)?;
    let f = xml::find(&doc, "Fault")?;
    let codes: Vec<String> = f
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Value")
        .map(|n| xml::text(&n))
        .collect();
    let reason = xml::child_text(&f, "Text");
    let auth = codes
        .iter()
        .any(|c| c.ends_with("NotAuthorized") || c.ends_with("FailedAuthentication"))
        || reason.to_ascii_lowercase().contains("not authorized");
    Some(if auth {
        OnvifError::NotAuthorized
    } else {
        OnvifError::Failed(format!("SOAP fault: {} {}", codes.join(" "), reason))
    })
}

pub fn parse_device_info(text: &str) -> Option<DeviceInfo> {
    let doc = xml::parse(text)?;
    let r = xml::find(&doc, "GetDeviceInformationResponse")?;
    Some(DeviceInfo {
        manufacturer: xml::child_text(&r, "Manufacturer"),
        model: xml::child_text(&r, "Model"),
        firmware: xml::child_text(&r, "FirmwareVersion"),
    })
}

/// The media service address from a `GetCapabilitiesResponse`.
pub fn parse_media_xaddr(text: &str) -> Option<String> {
    let doc = xml::parse(text)?;
    let media = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "Media")?;
    Some(xml::child_text(&media, "XAddr")).filter(|x| x.starts_with("http"))
}

pub fn parse_profiles(text: &str) -> Vec<Profile> {
    let Some(doc) = xml::parse(text) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Profiles")
        .filter_map(|p| {
            let token = p.attribute("token")?.to_string();
            let source = p
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name() == "VideoSourceConfiguration")
                .map(|v| xml::child_text(&v, "SourceToken"))
                .unwrap_or_default();
            Some(Profile {
                name: p
                    .children()
                    .find(|n| n.is_element() && n.tag_name().name() == "Name")
                    .map(|n| xml::text(&n))
                    .unwrap_or_default(),
                token,
                source,
            })
        })
        .collect()
}

pub fn parse_stream_uri(text: &str) -> Option<String> {
    let doc = xml::parse(text)?;
    let r = xml::find(&doc, "GetStreamUriResponse")?;
    Some(xml::child_text(&r, "Uri")).filter(|u| u.starts_with("rtsp://"))
}

/// What ONVIF told about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnvifDevice {
    pub info: DeviceInfo,
    /// Main stream URI of each video source, in order (channel 1, 2, …).
    pub streams: Vec<String>,
}

/// Asks a device service everything discovery reports.
pub async fn inspect(
    device_url: &str,
    creds: Option<(&str, &str)>,
    timeout: Duration,
) -> Res<OnvifDevice> {
    let text = call(
        device_url,
        &format!(r#"<GetDeviceInformation xmlns="{DEVICE_NS}"/>"#),
        creds,
        timeout,
    )
    .await?;
    let info =
        parse_device_info(&text).ok_or_else(|| failed("not a GetDeviceInformation answer"))?;
    let caps = call(
        device_url,
        &format!(
            r#"<GetCapabilities xmlns="{DEVICE_NS}"><Category>Media</Category></GetCapabilities>"#
        ),
        creds,
        timeout,
    )
    .await;
    // devices whose media service is the device service answer without a Media XAddr
    // a media service at another host would get the login's digest: keep it on the device
    let media = caps.ok().and_then(|t| parse_media_xaddr(&t)).map_or_else(
        || device_url.to_string(),
        |m| on_device_host(&m, device_url),
    );
    let text = call(
        &media,
        &format!(r#"<GetProfiles xmlns="{MEDIA_NS}"/>"#),
        creds,
        timeout,
    )
    .await?;
    let mut sources: Vec<String> = Vec::new();
    let mut streams = Vec::new();
    for p in parse_profiles(&text) {
        if sources.contains(&p.source) {
            continue; // a sub stream of a source already listed
        }
        sources.push(p.source.clone());
        let body = format!(
            concat!(
                r#"<GetStreamUri xmlns="{m}"><StreamSetup><Stream xmlns="{s}">RTP-Unicast</Stream>"#,
                r#"<Transport xmlns="{s}"><Protocol>RTSP</Protocol></Transport></StreamSetup>"#,
                r#"<ProfileToken>{t}</ProfileToken></GetStreamUri>"#
            ),
            m = MEDIA_NS,
            s = SCHEMA_NS,
            t = xml::escape(&p.token)
        );
        let text = call(&media, &body, creds, timeout).await?;
        if let Some(uri) = parse_stream_uri(&text) {
            streams.push(uri);
        }
    }
    Ok(OnvifDevice { info, streams })
}

/// `reported` (a service address a device gave) with `device_url`'s host in place of its own:
/// port and path stay, any userinfo goes.
pub fn on_device_host(reported: &str, device_url: &str) -> String {
    fn parts(u: &str) -> Option<(&str, &str, Option<&str>, &str)> {
        let (scheme, rest) = u.split_once("://")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let hostport = authority.rsplit('@').next()?;
        Some(match hostport.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (scheme, h, Some(p), path)
            }
            _ => (scheme, hostport, None, path),
        })
    }
    match (parts(reported), parts(device_url)) {
        (Some((scheme, _, port, path)), Some((_, host, _, _))) => match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
            None => format!("{scheme}://{host}{path}"),
        },
        _ => device_url.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_reported_service_stays_on_the_device() {
        let dev = "http://192.168.1.64:8000/onvif/device_service";
        for (reported, want) in [
            (
                "http://192.168.1.64:8000/onvif/media",
                "http://192.168.1.64:8000/onvif/media",
            ),
            (
                "http://10.9.9.9/onvif/media",
                "http://192.168.1.64/onvif/media",
            ),
            (
                "http://u:p@evil.example:8080/m?x=1",
                "http://192.168.1.64:8080/m?x=1",
            ),
            ("not a url", dev),
        ] {
            assert_eq!(on_device_host(reported, dev), want, "{reported}");
        }
    }

    #[test]
    fn the_digest_matches_the_oasis_example() {
        // WSS UsernameToken Profile 1.0 style check, computed independently:
        // Base64(SHA1(nonce + created + password)) with nonce bytes 0..16
        let nonce: Vec<u8> = (0u8..16).collect();
        let h = security_header("admin", "12345", &nonce, "2026-11-27T10:00:00.000Z");
        let mut s = Sha1::new();
        s.update(&nonce);
        s.update(b"2026-11-27T10:00:00.000Z12345");
        let want = base64::engine::general_purpose::STANDARD.encode(s.finalize());
        assert!(h.contains(&want));
        assert!(!h.contains("12345<"), "the password itself is not sent");
        let env = envelope("<x/>", Some(("a<b", "p")));
        assert!(env.contains("<Username>a&lt;b</Username>"));
        assert!(roxmltree::Document::parse(&env).is_ok());
    }

    /// GetStreamUri and GetProfiles answers as a Dahua-style NVR sends them.
    pub(crate) const STREAM_URI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
<env:Body><trt:GetStreamUriResponse><trt:MediaUri>
<tt:Uri>rtsp://192.168.1.108:554/cam/realmonitor?channel=1&amp;subtype=0&amp;unicast=true&amp;proto=Onvif</tt:Uri>
<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT60S</tt:Timeout>
</trt:MediaUri></trt:GetStreamUriResponse></env:Body></env:Envelope>"#;

    pub(crate) const PROFILES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
<s:Body><trt:GetProfilesResponse>
<trt:Profiles fixed="true" token="MediaProfile000"><tt:Name>MainStream</tt:Name>
<tt:VideoSourceConfiguration token="VideoSourceToken000"><tt:Name>VideoSource</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource000</tt:SourceToken><tt:Bounds height="1080" width="1920" y="0" x="0"/></tt:VideoSourceConfiguration>
</trt:Profiles>
<trt:Profiles fixed="true" token="MediaProfile001"><tt:Name>SubStream</tt:Name>
<tt:VideoSourceConfiguration token="VideoSourceToken000"><tt:Name>VideoSource</tt:Name><tt:SourceToken>VideoSource000</tt:SourceToken></tt:VideoSourceConfiguration>
</trt:Profiles>
<trt:Profiles fixed="true" token="MediaProfile100"><tt:Name>MainStream</tt:Name>
<tt:VideoSourceConfiguration token="VideoSourceToken001"><tt:SourceToken>VideoSource001</tt:SourceToken></tt:VideoSourceConfiguration>
</trt:Profiles>
</trt:GetProfilesResponse></s:Body></s:Envelope>"#;

    pub(crate) const FAULT: &str = r#"<?xml version="1.0" ?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error">
<SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value>
<SOAP-ENV:Subcode><SOAP-ENV:Value>ter:NotAuthorized</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Code>
<SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">Sender not Authorized</SOAP-ENV:Text></SOAP-ENV:Reason>
</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    #[test]
    fn real_world_answers() {
        assert_eq!(
            parse_stream_uri(STREAM_URI).as_deref(),
            Some("rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0&unicast=true&proto=Onvif")
        );
        let p = parse_profiles(PROFILES);
        assert_eq!(p.len(), 3);
        assert_eq!(
            (
                p[0].token.as_str(),
                p[0].name.as_str(),
                p[0].source.as_str()
            ),
            ("MediaProfile000", "MainStream", "VideoSource000")
        );
        assert_eq!(p[2].source, "VideoSource001");
        assert_eq!(fault(FAULT), Some(OnvifError::NotAuthorized));
        assert_eq!(fault(STREAM_URI), None);
        assert_eq!(parse_stream_uri(FAULT), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_http("http://10.0.0.5/onvif/device_service"),
            Some(("10.0.0.5".into(), 80, "/onvif/device_service".into()))
        );
        assert_eq!(
            split_http("http://127.0.0.1:8080/x?y"),
            Some(("127.0.0.1".into(), 8080, "/x?y".into()))
        );
        assert_eq!(
            split_http("http://[::1]:81/a"),
            Some(("[::1]".into(), 81, "/a".into()))
        );
        assert_eq!(split_http("https://h/"), None);
        assert_eq!(split_http("http://u:p@h/"), None);
        assert_eq!(split_http("http://h:99999/"), None);
    }
}
