//! An ONVIF camera test double, written from the specifications' message formats (not from
//! vigia's code): a WS-Discovery responder (SOAP-over-UDP on 239.255.255.250:3702, joined on
//! loopback only) that answers `Probe` for `NetworkVideoTransmitter` with a `ProbeMatches`
//! relating to the probe's `MessageID`, and a device/media service over HTTP that answers
//! `GetDeviceInformation`, `GetCapabilities`, `GetProfiles` and `GetStreamUri`, checking the
//! WS-Security UsernameToken digest (Base64(SHA-1(nonce + created + password))) and answering
//! `ter:NotAuthorized` otherwise.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct OnvifDouble {
    pub ip: Ipv4Addr,
    pub http_port: u16,
    /// Requests that carried a wrong or no UsernameToken.
    pub refused: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for OnvifDouble {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Profile {
    pub token: &'static str,
    pub source: &'static str,
    pub uri: String,
}

impl OnvifDouble {
    /// Serves on `ip` (an address of 127.0.0.0/8): device `maker`/`model`, login
    /// `user`/`password`, the given profiles.
    pub async fn start(
        ip: Ipv4Addr,
        maker: &'static str,
        model: &'static str,
        user: &'static str,
        password: &'static str,
        profiles: Vec<Profile>,
    ) -> OnvifDouble {
        let http = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let http_port = http.local_addr().unwrap().port();
        let refused = Arc::new(AtomicUsize::new(0));
        let profiles = Arc::new(profiles);
        let r2 = refused.clone();
        let web = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = http.accept().await else {
                    continue;
                };
                let (profiles, refused) = (profiles.clone(), r2.clone());
                tokio::spawn(async move {
                    let _ = serve_http(
                        sock, ip, http_port, maker, model, user, password, &profiles, &refused,
                    )
                    .await;
                });
            }
        });
        let udp = tokio::spawn(respond_probes(ip, http_port));
        OnvifDouble {
            ip,
            http_port,
            refused,
            tasks: vec![web, udp],
        }
    }
}

fn local<'a>(doc: &'a roxmltree::Document, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

fn text(doc: &roxmltree::Document, name: &str) -> String {
    local(doc, name)
        .and_then(|n| n.text())
        .unwrap_or("")
        .trim()
        .to_string()
}

async fn respond_probes(ip: Ipv4Addr, http_port: u16) {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_reuse_port(true).unwrap();
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3702)).into())
        .expect("bind UDP 3702 (WS-Discovery)");
    s.join_multicast_v4(&Ipv4Addr::new(239, 255, 255, 250), &Ipv4Addr::LOCALHOST)
        .expect("join the WS-Discovery group on loopback");
    s.set_nonblocking(true).unwrap();
    let sock = tokio::net::UdpSocket::from_std(s.into()).unwrap();
    let reply_from = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        let Ok(doc) = roxmltree::Document::parse(&msg) else {
            continue;
        };
        let is_probe = local(&doc, "Probe").is_some()
            && text(&doc, "Types").contains("NetworkVideoTransmitter");
        if !is_probe {
            continue;
        }
        let id = text(&doc, "MessageID");
        let answer = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsadis="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<env:Header><wsadis:MessageID>uuid:7b0f6f2e-1c1a-4f43-9b7c-{rand:012x}</wsadis:MessageID><wsadis:RelatesTo>{id}</wsadis:RelatesTo>
<wsadis:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsadis:To>
<wsadis:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsadis:Action></env:Header>
<env:Body><d:ProbeMatches><d:ProbeMatch>
<wsadis:EndpointReference><wsadis:Address>urn:uuid:0000aaaa-0000-4000-8000-{port:012x}</wsadis:Address></wsadis:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Yard%20Camera onvif://www.onvif.org/hardware/OD-2</d:Scopes>
<d:XAddrs>http://{ip}:{port}/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></env:Body></env:Envelope>"#,
            rand = rand::random::<u32>(),
            port = http_port,
        );
        let _ = reply_from.send_to(answer.as_bytes(), from).await;
    }
}

/// Whether the request carries a valid UsernameToken for `user`/`password`.
fn authorized(doc: &roxmltree::Document, user: &str, password: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(nonce), created, digest) = (
        b64.decode(text(doc, "Nonce")),
        text(doc, "Created"),
        text(doc, "Password"),
    ) else {
        return false;
    };
    let mut h = Sha1::new();
    h.update(&nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    text(doc, "Username") == user && b64.encode(h.finalize()) == digest
}

const NS: &str = r#"xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error""#;

#[allow(clippy::too_many_arguments)]
async fn serve_http(
    mut sock: tokio::net::TcpStream,
    ip: Ipv4Addr,
    port: u16,
    maker: &str,
    model: &str,
    user: &str,
    password: &str,
    profiles: &[Profile],
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let (status, answer) = match roxmltree::Document::parse(&body) {
        Err(_) => (400, String::new()),
        Ok(doc) if !authorized(&doc, user, password) => {
            refused.fetch_add(1, Ordering::SeqCst);
            (
                400,
                r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault>"#.to_string(),
            )
        }
        Ok(doc) => {
            let op = doc
                .descendants()
                .find(|n| n.is_element() && n.tag_name().name() == "Body")
                .and_then(|b| b.first_element_child())
                .map(|n| n.tag_name().name().to_string())
                .unwrap_or_default();
            match op.as_str() {
                "GetDeviceInformation" => (200, format!(
                    "<tds:GetDeviceInformationResponse><tds:Manufacturer>{maker}</tds:Manufacturer><tds:Model>{model}</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion><tds:SerialNumber>42</tds:SerialNumber><tds:HardwareId>OD-2</tds:HardwareId></tds:GetDeviceInformationResponse>"
                )),
                "GetCapabilities" => (200, format!(
                    "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>http://{ip}:{port}/onvif/media_service</tt:XAddr><tt:StreamingCapabilities><tt:RTP_TCP>true</tt:RTP_TCP></tt:StreamingCapabilities></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>"
                )),
                "GetProfiles" => {
                    let p: String = profiles
                        .iter()
                        .map(|p| format!(
                            r#"<trt:Profiles fixed="true" token="{}"><tt:Name>{}</tt:Name><tt:VideoSourceConfiguration token="vsc-{}"><tt:Name>vs</tt:Name><tt:UseCount>1</tt:UseCount><tt:SourceToken>{}</tt:SourceToken><tt:Bounds x="0" y="0" width="640" height="360"/></tt:VideoSourceConfiguration></trt:Profiles>"#,
                            p.token, p.token, p.source, p.source
                        ))
                        .collect();
                    (200, format!("<trt:GetProfilesResponse>{p}</trt:GetProfilesResponse>"))
                }
                "GetStreamUri" => {
                    let token = text(&doc, "ProfileToken");
                    match profiles.iter().find(|p| p.token == token) {
                        Some(p) => (200, format!(
                            "<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>",
                            p.uri.replace('&', "&amp;")
                        )),
                        None => (400, r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:InvalidArgVal</env:Value></env:Subcode></env:Code><env:Reason><env:Text>no such profile</env:Text></env:Reason></env:Fault>"#.to_string()),
                    }
                }
                _ => (400, r#"<env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text>unknown action</env:Text></env:Reason></env:Fault>"#.to_string()),
            }
        }
    };
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope {NS}><env:Body>{answer}</env:Body></env:Envelope>"#
    );
    let reason = if status == 200 { "OK" } else { "Bad Request" };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/soap+xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}
