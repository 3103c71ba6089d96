//! WS-Discovery (OASIS WS-Discovery 2005/04, as profiled by the ONVIF Core Specification §7.3):
//! one SOAP-over-UDP `Probe` for `dn:NetworkVideoTransmitter` sent to 239.255.255.250:3702, and
//! the `ProbeMatches` that come back within the timeout.
//!
//! The probe leaves only through the interfaces whose IPv4 subnet overlaps the range the admin
//! asked for (for a loopback range: loopback), with TTL 1, so a scan never sends anything
//! outside the network it names. Matches are kept when they answer our `MessageID` and their
//! `XAddrs` point into the range.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::{xml, Range};

pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 3702;

/// One device that answered the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeMatch {
    /// `wsa:EndpointReference/wsa:Address`, e.g. `urn:uuid:…`.
    pub endpoint: String,
    /// Device service URLs (`XAddrs`).
    pub xaddrs: Vec<String>,
    /// `onvif://www.onvif.org/name/…` (percent-decoded).
    pub name: Option<String>,
    /// `onvif://www.onvif.org/hardware/…` (percent-decoded).
    pub hardware: Option<String>,
}

/// The Probe message (ONVIF Core §7.3.2, WS-Discovery §5.2).
pub fn probe_message(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" "#,
            r#"xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" "#,
            r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            r#"<s:Header>"#,
            r#"<a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action>"#,
            r#"<a:MessageID>{}</a:MessageID>"#,
            r#"<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"#,
            r#"<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"#,
            r#"</s:Header>"#,
            r#"<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>"#,
            r#"</s:Envelope>"#
        ),
        message_id
    )
}

/// Parses a `ProbeMatches` message: (the `RelatesTo` it answers, its matches). Anything that
/// is not one gives no matches; never panics.
pub fn parse_probe_matches(text: &str) -> (Option<String>, Vec<ProbeMatch>) {
    let Some(doc) = xml::parse(text) else {
        return (None, Vec::new());
    };
    let relates = xml::find(&doc, "RelatesTo").map(|n| xml::text(&n));
    let matches = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "ProbeMatch")
        .filter_map(|m| {
            let xaddrs: Vec<String> = xml::child_text(&m, "XAddrs")
                .split_whitespace()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .map(str::to_string)
                .collect();
            if xaddrs.is_empty() {
                return None;
            }
            let endpoint = m
                .descendants()
                .find(|n| n.tag_name().name() == "Address")
                .map(|n| xml::text(&n))
                .unwrap_or_default();
            let scopes = xml::child_text(&m, "Scopes");
            let scope = |kind: &str| {
                let prefix = format!("onvif://www.onvif.org/{kind}/");
                scopes
                    .split_whitespace()
                    .find_map(|s| s.strip_prefix(prefix.as_str()))
                    .map(|v| crate::camera::url::percent_decode(v).unwrap_or_else(|| v.to_string()))
                    .filter(|v| !v.is_empty())
            };
            Some(ProbeMatch {
                endpoint,
                xaddrs,
                name: scope("name"),
                hardware: scope("hardware"),
            })
        })
        .collect();
    (relates, matches)
}

/// The local IPv4 addresses whose subnet overlaps `range`: where a probe may go out.
pub fn interfaces_for(range: &Range) -> Vec<Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let (Some(ip), Some(mask)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
            continue;
        };
        let prefix = u32::from(mask.ip()).leading_ones() as u8;
        let iface = Range::new(ip.ip(), prefix);
        if iface.overlaps(range) && !out.contains(&ip.ip()) {
            out.push(ip.ip());
        }
    }
    out
}

/// Sends the probe on every interface overlapping `range` and collects matches pointing into
/// the range for `timeout`.
pub async fn probe(range: &Range, timeout: Duration) -> Vec<ProbeMatch> {
    let ifaces = interfaces_for(range);
    if ifaces.is_empty() {
        debug!(range = %range, "no interface overlaps the range: no WS-Discovery probe sent");
        return Vec::new();
    }
    let tasks: Vec<_> = ifaces
        .into_iter()
        .map(|ip| tokio::spawn(probe_on(ip, range.clone(), timeout)))
        .collect();
    let mut out: Vec<ProbeMatch> = Vec::new();
    for t in tasks {
        for m in t.await.unwrap_or_default() {
            if !out
                .iter()
                .any(|o| o.endpoint == m.endpoint && o.xaddrs == m.xaddrs)
            {
                out.push(m);
            }
        }
    }
    out
}

fn socket_on(ip: Ipv4Addr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_multicast_if_v4(&ip)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(ip, 0)).into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

async fn probe_on(ip: Ipv4Addr, range: Range, timeout: Duration) -> Vec<ProbeMatch> {
    let sock = match socket_on(ip) {
        Ok(s) => s,
        Err(e) => {
            warn!(interface = %ip, error = %e, "cannot open a WS-Discovery socket");
            return Vec::new();
        }
    };
    let id = format!("uuid:{}", uuid_v4());
    let msg = probe_message(&id);
    // SOAP-over-UDP repeats a multicast message (UDP may drop one); twice, 100 ms apart
    for _ in 0..2 {
        if let Err(e) = sock.send_to(msg.as_bytes(), (GROUP, PORT)).await {
            warn!(interface = %ip, error = %e, "cannot send the WS-Discovery probe");
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(Ok((n, from))) = tokio::time::timeout(left, sock.recv_from(&mut buf)).await else {
            break;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let (relates, matches) = parse_probe_matches(&text);
        if relates.as_deref().is_some_and(|r| r != id) {
            continue; // an answer to someone else's probe
        }
        for m in matches {
            let inside = m
                .xaddrs
                .iter()
                .any(|x| super::url_host_v4(x).is_some_and(|h| range.contains(h)));
            if inside {
                debug!(%from, endpoint = %m.endpoint, "WS-Discovery match");
                out.push(m);
            }
        }
    }
    out
}

/// A random (version 4) UUID, as WS-Addressing message ids are.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ProbeMatches as an Axis/Hikvision-style camera sends it (namespace prefixes differ
    /// between makers; only local names are relied on).
    pub(crate) const MATCH: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<SOAP-ENV:Header>
<wsa:MessageID>uuid:2f1e1d1c-0000-4000-8000-bcbaf4b0c0d1</wsa:MessageID>
<wsa:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsa:RelatesTo>
<wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action>
<d:AppSequence SOAP-ENV:mustUnderstand="true" MessageNumber="68" InstanceId="1636961920"/>
</SOAP-ENV:Header>
<SOAP-ENV:Body>
<d:ProbeMatches>
<d:ProbeMatch>
<wsa:EndpointReference><wsa:Address>urn:uuid:54575455-4153-4d41-5254-bcbaf4b0c0d1</wsa:Address></wsa:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/hardware/DS-2CD2043G0-I onvif://www.onvif.org/name/HIKVISION%20DS-2CD2043G0-I onvif://www.onvif.org/location/city/hangzhou</d:Scopes>
<d:XAddrs>http://192.168.1.64/onvif/device_service http://[fe80::bebaf4ff:feb0:c0d1]/onvif/device_service</d:XAddrs>
<d:MetadataVersion>10</d:MetadataVersion>
</d:ProbeMatch>
</d:ProbeMatches>
</SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

    #[test]
    fn a_real_world_probe_match() {
        let (relates, m) = parse_probe_matches(MATCH);
        assert_eq!(
            relates.as_deref(),
            Some("uuid:0a6dc791-2be6-4991-9af1-454778a1917a")
        );
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].endpoint,
            "urn:uuid:54575455-4153-4d41-5254-bcbaf4b0c0d1"
        );
        assert_eq!(
            m[0].xaddrs,
            vec![
                "http://192.168.1.64/onvif/device_service",
                "http://[fe80::bebaf4ff:feb0:c0d1]/onvif/device_service"
            ]
        );
        assert_eq!(m[0].name.as_deref(), Some("HIKVISION DS-2CD2043G0-I"));
        assert_eq!(m[0].hardware.as_deref(), Some("DS-2CD2043G0-I"));
    }

    #[test]
    fn junk_gives_nothing() {
        for s in ["", "<", "not xml", "<a><b></a>", "<Envelope/>"] {
            assert!(parse_probe_matches(s).1.is_empty(), "{s}");
        }
    }

    #[test]
    fn the_probe_is_well_formed_and_names_the_type() {
        let id = format!("uuid:{}", uuid_v4());
        let p = probe_message(&id);
        let doc = roxmltree::Document::parse(&p).unwrap();
        assert!(doc
            .descendants()
            .any(|n| n.tag_name().name() == "Types"
                && n.text() == Some("dn:NetworkVideoTransmitter")));
        assert!(p.contains(&id));
        assert_eq!(uuid_v4().len(), 36);
    }
}
