//! Camera discovery: WS-Discovery, a TCP port scan, ONVIF device and media queries, RTSP
//! probing with the brand templates, and DVR/NVR channel expansion, in pure Rust.
//!
//! One scan: the WS-Discovery probe ([`ws_discovery`]) and the port scan ([`port_scan`]) run
//! together; devices with an ONVIF endpoint (from WS-Discovery, or an ONVIF device service on an
//! open HTTP port) are asked for maker, model and stream URIs ([`onvif`]); every other open
//! port that answers RTSP is probed with the templates and its channels counted
//! ([`rtsp_probe`]). Only the range the admin named is touched: the probe goes out only on
//! interfaces overlapping it, and ranges larger than /22 are refused.
//!
//! The answer is cached per range and credentials for `CACHE_TTL` seconds, and each device's
//! stream URLs (with the credentials that worked, sealed) for adding it as a camera later.
//! No answer carries credentials, and none are logged.

pub mod onvif;
pub mod port_scan;
pub mod rtsp_probe;
pub mod ws_discovery;
pub mod xml;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::camera::seal::Sealer;
use crate::camera::templates;
use crate::store::Brand;

/// The largest range a scan accepts.
pub const MAX_PREFIX: u8 = 22;
/// Open ports where an ONVIF device service is looked for when WS-Discovery is silent.
const ONVIF_HTTP_PORTS: [u16; 4] = [80, 8000, 8080, 8899];
/// Devices probed at once (RTSP, ONVIF).
const DEVICE_CONCURRENCY: usize = 16;
/// Longest time one device's probing may take (templates and channels).
const DEVICE_BUDGET: Duration = Duration::from_secs(90);

/// A scan range that cannot be used (a request's `network_range`, `vigia discover`'s range).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("network_range '{0}' is not an IPv4 CIDR such as 192.168.1.0/24")]
    NotCidr(String),
    #[error("network_range /{0} is too large: at most /{MAX_PREFIX} (1024 addresses) per scan")]
    TooLarge(u8),
}

/// An IPv4 network.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Range {
    pub net: Ipv4Addr,
    pub prefix: u8,
}

impl Range {
    pub fn new(ip: Ipv4Addr, prefix: u8) -> Range {
        let prefix = prefix.min(32);
        Range {
            net: Ipv4Addr::from(u32::from(ip) & Self::mask(prefix)),
            prefix,
        }
    }

    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        }
    }

    /// A CIDR from a request or the command line: at most /22.
    pub fn parse(s: &str) -> Result<Range, RangeError> {
        let (ip, len) = crate::config::parse_cidr(s)
            .ok_or_else(|| RangeError::NotCidr(crate::camera::truncate(s, 64).to_string()))?;
        if len < MAX_PREFIX {
            return Err(RangeError::TooLarge(len));
        }
        Ok(Range::new(ip, len))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.net)
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = Self::mask(p);
        u32::from(self.net) & m == u32::from(other.net) & m
    }

    /// The addresses to scan: without the network and broadcast addresses of ranges that
    /// have them.
    pub fn hosts(&self) -> Vec<Ipv4Addr> {
        let n = 1u64 << (32 - u32::from(self.prefix));
        let base = u64::from(u32::from(self.net));
        let (first, last) = if self.prefix >= 31 {
            (0, n - 1)
        } else {
            (1, n - 2)
        };
        (first..=last)
            .map(|i| Ipv4Addr::from((base + i) as u32))
            .collect()
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The IPv4 host of an `http(s)://` or `rtsp://` URL.
pub fn url_host_v4(url: &str) -> Option<Ipv4Addr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit('@').next()?;
    host.split(':').next()?.parse().ok()
}

/// Login for the devices of a scan. Never printed.
#[derive(Clone)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Login(..)")
    }
}

impl Login {
    fn pair(&self) -> (&str, &str) {
        (&self.username, &self.password)
    }
}

/// One channel of a device as reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Channel {
    pub channel: u32,
    /// Path and query of the channel's stream, without credentials.
    pub rtsp_path: String,
}

/// One device as reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Device {
    pub ip: String,
    /// Its RTSP port.
    pub port: u16,
    /// The template that answered, or the ONVIF manufacturer.
    pub brand: Option<String>,
    pub model: Option<String>,
    pub name: Option<String>,
    pub onvif: bool,
    pub channels: Vec<Channel>,
    pub status: Status,
}

/// What a scan could tell about a device (`"ok"`, `"needs_credentials"`, … in JSON and logs:
/// [`Status::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Streams found (listed as its channels).
    Ok,
    /// It asks for credentials and the scan had none.
    NeedsCredentials,
    /// It refused the scan's credentials (tried once: no lock-out).
    WrongCredentials,
    /// It answers RTSP or ONVIF but no stream was found.
    NoStreamFound,
    /// Probing it took longer than the per-device budget.
    Timeout,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NeedsCredentials => "needs_credentials",
            Status::WrongCredentials => "wrong_credentials",
            Status::NoStreamFound => "no_stream_found",
            Status::Timeout => "timeout",
        }
    }

    /// A refusal: with credentials they were wrong, without them they are needed.
    pub(crate) fn refused(with_login: bool) -> Status {
        if with_login {
            Status::WrongCredentials
        } else {
            Status::NeedsCredentials
        }
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The answer to a scan (`GET`/`POST /api/cameras/discover`, `vigia discover`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub devices: Vec<Device>,
    pub network_range: String,
    pub hosts: usize,
    pub ports: Vec<u16>,
    pub scanned_at: chrono::DateTime<chrono::Utc>,
    pub elapsed_ms: u64,
    pub port_scan_ms: u64,
    /// Answered from the cache (`CACHE_TTL`) rather than by this request's scan.
    pub cached: bool,
}

/// Devices found so far, and what adding each one needs.
#[derive(Default)]
struct Findings {
    devices: Vec<Device>,
    known: Vec<(String, Known)>,
}

/// What adding a discovered camera needs.
#[derive(Debug, Clone)]
pub struct Known {
    pub brand: Brand,
    pub port: u16,
    /// Channel → stream URL without credentials (`None`: build it from the brand template,
    /// as XMEye puts credentials in the path).
    pub urls: HashMap<u32, Option<String>>,
    sealed_login: Option<Vec<u8>>,
    at: Instant,
}

/// Scan settings (from `SCAN_PORTS`, `ONVIF_TIMEOUT`, `CACHE_TTL`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub ports: Vec<u16>,
    pub onvif_timeout: Duration,
    pub ttl: Duration,
    pub port_timeout: Duration,
    pub concurrency: usize,
    pub rtsp_timeout: Duration,
}

/// The discovery service: one scan at a time, and the caches.
pub struct Discovery {
    settings: Settings,
    reports: Mutex<HashMap<String, (Instant, Report)>>,
    known: Mutex<HashMap<String, Known>>,
    running: tokio::sync::Mutex<()>,
    /// Keys the cache by login without keeping it readable.
    salt: [u8; 16],
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An ONVIF device service to ask: from a WS-Discovery answer (with the name and hardware
/// it announced) or an open HTTP port where ONVIF usually listens.
struct OnvifService {
    ip: Ipv4Addr,
    url: String,
    name: Option<String>,
    hardware: Option<String>,
}

/// The ONVIF device services to ask, one per address in `range`: announced ones first.
fn onvif_services(
    range: &Range,
    answers: &[ws_discovery::ProbeMatch],
    open: &[(Ipv4Addr, u16)],
) -> Vec<OnvifService> {
    let mut services: Vec<OnvifService> = Vec::new();
    for m in answers {
        let announced = m
            .xaddrs
            .iter()
            .filter(|x| x.starts_with("http://"))
            .find_map(|x| {
                url_host_v4(x)
                    .filter(|ip| range.contains(*ip))
                    .map(|ip| (ip, x.clone()))
            });
        if let Some((ip, url)) = announced {
            if !services.iter().any(|s| s.ip == ip) {
                services.push(OnvifService {
                    ip,
                    url,
                    name: m.name.clone(),
                    hardware: m.hardware.clone(),
                });
            }
        }
    }
    for (ip, port) in open {
        if ONVIF_HTTP_PORTS.contains(port) && !services.iter().any(|s| s.ip == *ip) {
            services.push(OnvifService {
                ip: *ip,
                url: format!("http://{ip}:{port}/onvif/device_service"),
                name: None,
                hardware: None,
            });
        }
    }
    services
}

/// The brand a camera added from an ONVIF answer gets.
fn brand_of_maker(maker: &str) -> Brand {
    let m = maker.to_ascii_lowercase();
    if m.contains("hikvision") {
        Brand::Hikvision
    } else if m.contains("dahua") {
        Brand::Dahua
    } else if m.contains("xiongmai") || m.contains("xmeye") {
        Brand::Xmeye
    } else {
        Brand::Onvif
    }
}

/// Path and query of an RTSP URL (its credentials dropped), and its port.
fn path_and_port(uri: &str) -> (String, u16) {
    let rest = uri.split_once("://").map_or(uri, |r| r.1);
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let port = host
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(554);
    (path.to_string(), port)
}

impl Discovery {
    pub fn new(settings: Settings) -> Discovery {
        Discovery {
            settings,
            reports: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            running: tokio::sync::Mutex::new(()),
            salt: rand::random(),
        }
    }

    fn cache_key(&self, range: &Range, login: Option<&Login>) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.salt);
        if let Some(l) = login {
            h.update(l.username.as_bytes());
            h.update([0]);
            h.update(l.password.as_bytes());
        }
        format!("{range} {}", hex::encode(&h.finalize()[..8]))
    }

    /// Scans `range` (or answers from the cache, unless `refresh`).
    pub async fn scan(
        &self,
        sealer: &Sealer,
        range: &Range,
        login: Option<Login>,
        refresh: bool,
    ) -> Report {
        let key = self.cache_key(range, login.as_ref());
        let fresh = |me: &Self| {
            lock(&me.reports)
                .get(&key)
                .filter(|(at, _)| !refresh && at.elapsed() < me.settings.ttl)
                .map(|(_, r)| Report {
                    cached: true,
                    ..r.clone()
                })
        };
        if let Some(v) = fresh(self) {
            return v;
        }
        // one scan at a time; a second request for the same range gets the first one's answer
        let _one = self.running.lock().await;
        if let Some(v) = fresh(self) {
            return v;
        }
        let v = self.run(sealer, range, login.as_ref()).await;
        lock(&self.reports).insert(key, (Instant::now(), v.clone()));
        v
    }

    /// One scan: every stage reports what it found; a host that does not answer is not an
    /// error, so neither is the scan.
    async fn run(&self, sealer: &Sealer, range: &Range, login: Option<&Login>) -> Report {
        let started = Instant::now();
        let hosts = range.hosts();
        let s = &self.settings;
        info!(range = %range, hosts = hosts.len(), ports = ?s.ports, credentials = login.is_some(), "discovery scan started");
        let (answers, open, port_scan_ms) = self.listen_and_scan(range, &hosts).await;
        let mut found = Findings::default();
        let services = onvif_services(range, &answers, &open);
        let onvif_ips = self
            .inspect_onvif(sealer, login, services, &mut found)
            .await;
        info!(range = %range, onvif_devices = found.devices.len(), "discovery: ONVIF done");
        // RTSP on every other open port, whatever its number
        let rest = open
            .into_iter()
            .filter(|(ip, _)| !onvif_ips.contains(ip))
            .collect();
        self.probe_rtsp(sealer, login, rest, &mut found).await;
        let Findings { mut devices, known } = found;
        devices.sort_by_key(|d| (d.ip.parse::<Ipv4Addr>().ok(), d.port));
        {
            let mut k = lock(&self.known);
            k.retain(|_, v| v.at.elapsed() < self.settings.ttl);
            k.extend(known);
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        info!(range = %range, devices = devices.len(), ms = elapsed_ms, "discovery scan done");
        Report {
            devices,
            network_range: range.to_string(),
            hosts: hosts.len(),
            ports: s.ports.clone(),
            scanned_at: chrono::Utc::now(),
            elapsed_ms,
            port_scan_ms,
            cached: false,
        }
    }

    /// WS-Discovery answers and the TCP connect scan, at the same time: (answers, open
    /// (address, port) pairs, milliseconds the port scan took).
    async fn listen_and_scan(
        &self,
        range: &Range,
        hosts: &[Ipv4Addr],
    ) -> (Vec<ws_discovery::ProbeMatch>, Vec<(Ipv4Addr, u16)>, u64) {
        let s = &self.settings;
        let (answers, (open, scan_ms)) =
            tokio::join!(ws_discovery::probe(range, s.onvif_timeout), async {
                let t = Instant::now();
                let open = port_scan::scan(
                    hosts,
                    &s.ports,
                    s.port_timeout,
                    s.concurrency,
                    |done, total| {
                        if done % 2048 == 0 {
                            info!(range = %range, done, total, "discovery: port scan progress")
                        }
                    },
                )
                .await;
                (open, t.elapsed().as_millis() as u64)
            });
        info!(range = %range, attempts = hosts.len() * s.ports.len(), open = open.len(), onvif_answers = answers.len(), port_scan_ms = scan_ms, "discovery: ports scanned");
        (answers, open, scan_ms)
    }

    /// Asks every ONVIF device service for its streams; returns the addresses that answered
    /// as ONVIF devices (their other ports are not probed as RTSP).
    async fn inspect_onvif(
        &self,
        sealer: &Sealer,
        login: Option<&Login>,
        services: Vec<OnvifService>,
        found: &mut Findings,
    ) -> Vec<Ipv4Addr> {
        use futures_util::StreamExt;
        let onvif_timeout = self.settings.onvif_timeout;
        let results: Vec<_> = futures_util::stream::iter(services)
            .map(|svc| {
                let login = login.cloned();
                async move {
                    let creds = login.as_ref().map(Login::pair);
                    let r = onvif::inspect(&svc.url, creds, onvif_timeout).await;
                    (svc, r)
                }
            })
            .buffer_unordered(DEVICE_CONCURRENCY)
            .collect()
            .await;
        let mut onvif_ips = Vec::new();
        for (svc, r) in results {
            let ip = svc.ip;
            let dev = match r {
                Ok(d) => self.onvif_device(sealer, login, svc, d, found),
                Err(onvif::OnvifError::NotAuthorized) => Device {
                    ip: ip.to_string(),
                    port: 554,
                    brand: None,
                    model: svc.hardware,
                    name: svc.name,
                    onvif: true,
                    channels: Vec::new(),
                    status: Status::refused(login.is_some()),
                },
                Err(onvif::OnvifError::Failed(why)) => {
                    debug!(%ip, why, "no ONVIF answer");
                    continue;
                }
            };
            onvif_ips.push(ip);
            found.devices.push(dev);
        }
        onvif_ips
    }

    /// What an ONVIF device that answered is: its channels (each stream on the device's own
    /// address), remembered with the scan's credentials for adding it later.
    fn onvif_device(
        &self,
        sealer: &Sealer,
        login: Option<&Login>,
        svc: OnvifService,
        d: onvif::OnvifDevice,
        found: &mut Findings,
    ) -> Device {
        let ip = svc.ip;
        let brand = brand_of_maker(&d.info.manufacturer);
        let port = d.streams.first().map_or(554, |u| path_and_port(u).1);
        let mut urls = HashMap::new();
        let channels: Vec<Channel> = d
            .streams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let ch = i as u32 + 1;
                // the device's own address, whatever host it reported: the scan's
                // credentials go to the device the admin adds, nowhere else
                let own = onvif::on_device_host(u, &format!("rtsp://{ip}"));
                if url_host_v4(u) != Some(ip) {
                    warn!(device = %ip, reported = %crate::camera::url::redacted(u), "ONVIF device reported a stream on another host; using the device's own address");
                }
                urls.insert(ch, Some(own));
                Channel {
                    channel: ch,
                    rtsp_path: path_and_port(u).0,
                }
            })
            .collect();
        found.known.push((
            ip.to_string(),
            self.known_entry(sealer, &ip, brand, port, urls, login),
        ));
        Device {
            ip: ip.to_string(),
            port,
            brand: Some(d.info.manufacturer).filter(|b| !b.is_empty()),
            model: Some(d.info.model)
                .filter(|m| !m.is_empty())
                .or(svc.hardware),
            name: svc.name,
            onvif: true,
            status: if channels.is_empty() {
                Status::NoStreamFound
            } else {
                Status::Ok
            },
            channels,
        }
    }

    /// Asks every open port whether it speaks RTSP, then tries the brand templates (and
    /// their channels) on those that do.
    async fn probe_rtsp(
        &self,
        sealer: &Sealer,
        login: Option<&Login>,
        candidates: Vec<(Ipv4Addr, u16)>,
        found: &mut Findings,
    ) {
        use futures_util::StreamExt;
        let rtsp_timeout = self.settings.rtsp_timeout;
        let rtsp: Vec<(Ipv4Addr, u16)> = futures_util::stream::iter(candidates)
            .map(|(ip, port)| async move {
                rtsp_probe::answers_rtsp(ip, port, rtsp_timeout)
                    .await
                    .then_some((ip, port))
            })
            .buffer_unordered(64)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        let probed: Vec<_> = futures_util::stream::iter(rtsp)
            .map(|(ip, port)| {
                let login = login.cloned();
                async move {
                    let creds = login.as_ref().map(Login::pair);
                    let f = tokio::time::timeout(
                        DEVICE_BUDGET,
                        rtsp_probe::probe(ip, port, creds, rtsp_timeout),
                    )
                    .await
                    .unwrap_or(rtsp_probe::Found {
                        brand: None,
                        channels: Vec::new(),
                        status: Status::Timeout,
                    });
                    (ip, port, f)
                }
            })
            .buffer_unordered(DEVICE_CONCURRENCY)
            .collect()
            .await;
        for (ip, port, f) in probed {
            info!(%ip, port, status = f.status.as_str(), brand = ?f.brand.map(Brand::as_str), channels = f.channels.len(), "discovery: RTSP device");
            if let Some(brand) = f.brand {
                let urls = f
                    .channels
                    .iter()
                    .map(|ch| {
                        let url = (!templates::credentials_in_path(brand))
                            .then(|| rtsp_probe::template_url(brand, ip, port, *ch, None));
                        (*ch, url)
                    })
                    .collect();
                found.known.push((
                    ip.to_string(),
                    self.known_entry(sealer, &ip, brand, port, urls, login),
                ));
            }
            found.devices.push(Device {
                ip: ip.to_string(),
                port,
                brand: f.brand.map(|b| b.as_str().to_string()),
                model: None,
                name: None,
                onvif: false,
                channels: f
                    .channels
                    .iter()
                    .map(|ch| Channel {
                        channel: *ch,
                        rtsp_path: rtsp_probe::template_path(
                            f.brand.unwrap_or(Brand::Generic),
                            *ch,
                        ),
                    })
                    .collect(),
                status: f.status,
            });
        }
    }

    fn known_entry(
        &self,
        sealer: &Sealer,
        ip: &Ipv4Addr,
        brand: Brand,
        port: u16,
        urls: HashMap<u32, Option<String>>,
        login: Option<&Login>,
    ) -> Known {
        let sealed_login = login.and_then(|l| {
            sealer
                .seal(
                    &format!("discovery/{ip}"),
                    &format!("{}\n{}", l.username, l.password),
                )
                .ok()
        });
        Known {
            brand,
            port,
            urls,
            sealed_login,
            at: Instant::now(),
        }
    }

    /// What a scan found about channel `channel` of `ip` within `CACHE_TTL`:
    /// (brand, port, URL without credentials or `None` for the brand template, login).
    #[allow(clippy::type_complexity)]
    pub fn lookup(
        &self,
        sealer: &Sealer,
        ip: &str,
        channel: u32,
    ) -> Option<(Brand, u16, Option<String>, Option<(String, String)>)> {
        let k = lock(&self.known);
        let known = k.get(ip).filter(|k| k.at.elapsed() < self.settings.ttl)?;
        let url = known.urls.get(&channel)?.clone();
        let login = known.sealed_login.as_ref().and_then(|s| {
            let text = sealer.open(&format!("discovery/{ip}"), s).ok()?;
            let (u, p) = text.split_once('\n')?;
            Some((u.to_string(), p.to_string()))
        });
        Some((known.brand, known.port, url, login))
    }

    /// Channels a scan found on `ip` (for assigning a discovered device to a user).
    pub fn channels(&self, ip: &str) -> Vec<u32> {
        let k = lock(&self.known);
        let mut v: Vec<u32> = k
            .get(ip)
            .filter(|k| k.at.elapsed() < self.settings.ttl)
            .map(|k| k.urls.keys().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = Range::parse("127.0.3.7/27").unwrap();
        assert_eq!(r.to_string(), "127.0.3.0/27");
        assert_eq!(r.hosts().len(), 30);
        assert_eq!(r.hosts()[0], Ipv4Addr::new(127, 0, 3, 1));
        assert!(r.contains(Ipv4Addr::new(127, 0, 3, 31)));
        assert!(!r.contains(Ipv4Addr::new(127, 0, 3, 32)));
        assert!(r.overlaps(&Range::new(Ipv4Addr::LOCALHOST, 8)));
        assert!(!r.overlaps(&Range::new(Ipv4Addr::new(192, 0, 2, 2), 24)));
        assert_eq!(Range::parse("127.0.0.1/32").unwrap().hosts().len(), 1);
        assert_eq!(Range::parse("127.0.0.0/22").unwrap().hosts().len(), 1022);
        for bad in [
            "",
            "garbage",
            "127.0.0.1",
            "127.0.0.0/33",
            "300.1.1.1/24",
            "::1/128",
        ] {
            assert!(
                matches!(Range::parse(bad), Err(RangeError::NotCidr(_))),
                "{bad}"
            );
        }
        let e = Range::parse("10.0.0.0/8").unwrap_err();
        assert!(matches!(e, RangeError::TooLarge(8)), "{e}");
        assert!(e.to_string().contains("/22"), "{e}");
    }

    /// Mutation fuzzing of every parser that reads what a device sends (SOAP/XML, RTSP
    /// heads, URLs): real-world messages with bytes flipped, cut, repeated and spliced, plus
    /// hostile shapes (deep nesting, entity bombs, huge input). None may panic.
    #[test]
    fn device_input_parsers_never_panic() {
        use super::onvif::tests::{FAULT, PROFILES, STREAM_URI};
        use super::ws_discovery::tests::MATCH;
        let rtsp = "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"1\"\r\n\r\n";
        let seeds: Vec<Vec<u8>> = [MATCH, FAULT, PROFILES, STREAM_URI, rtsp]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .chain([
                "<a>".repeat(5000).into_bytes(),
                br#"<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><x>&d;&d;&d;&d;</x>"#.to_vec(),
                vec![b'<'; 300 * 1024],
            ])
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = [
            b'<', b'>', b'&', b'"', b'/', b':', b' ', 0, 0xff, b'\r', b'\n',
        ];
        let check = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes);
            let _ = ws_discovery::parse_probe_matches(&text);
            let _ = onvif::fault(&text);
            let _ = onvif::parse_device_info(&text);
            let _ = onvif::parse_media_xaddr(&text);
            let _ = onvif::parse_profiles(&text);
            let _ = onvif::parse_stream_uri(&text);
            let _ = rtsp_probe::parse_response_head(bytes);
            let _ = url_host_v4(&text);
            let _ = path_and_port(&text);
        };
        for seed in &seeds {
            check(seed);
            for _ in 0..1500 {
                let mut b = seed.clone();
                for _ in 0..(next() % 8 + 1) {
                    if b.is_empty() {
                        break;
                    }
                    let i = (next() as usize) % b.len();
                    match next() % 5 {
                        0 => b[i] = next() as u8,
                        1 => b[i] = specials[(next() as usize) % specials.len()],
                        2 => b.truncate(i),
                        3 => {
                            let j = (i + (next() as usize) % 64).min(b.len());
                            let piece = b[i..j].to_vec();
                            b.splice(i..i, piece);
                        }
                        _ => {
                            b.remove(i);
                        }
                    }
                }
                check(&b);
            }
        }
    }

    #[test]
    fn url_parts() {
        assert_eq!(
            url_host_v4("http://127.0.3.9:8080/onvif/device_service"),
            Some(Ipv4Addr::new(127, 0, 3, 9))
        );
        assert_eq!(
            url_host_v4("rtsp://u:p@127.0.0.2/x"),
            Some(Ipv4Addr::new(127, 0, 0, 2))
        );
        assert_eq!(url_host_v4("http://[fe80::1]/x"), None);
        assert_eq!(
            path_and_port("rtsp://a:b@1.2.3.4:8554/cam/realmonitor?channel=1"),
            ("/cam/realmonitor?channel=1".to_string(), 8554)
        );
        assert_eq!(path_and_port("rtsp://1.2.3.4"), ("/".to_string(), 554));
        assert_eq!(brand_of_maker("HIKVISION"), Brand::Hikvision);
        assert_eq!(brand_of_maker("ACME"), Brand::Onvif);
    }
}
