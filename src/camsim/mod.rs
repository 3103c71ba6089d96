//! The camera simulator (`vigia camsim`): an RTSP server (RFC 2326) that plays pre-encoded
//! H.264 (and AAC) from a fixture in a loop, over RTP interleaved on the RTSP connection
//! (RFC 6184 for H.264: single NAL units and FU-A; RFC 3640 AAC-hbr for audio). It is cheap
//! enough to serve 128 cameras beside vigia on two cores: the fixture is packetised once and
//! each session only writes a 16-byte header in front of shared payloads.
//!
//! It is for load and fault injection, not for proving correctness (GStreamer's rtsp-server
//! does that in the tests). A camera is any path; options follow as path segments:
//! `rtsp://host:port/cam7/audio/drop5` — `audio` adds AAC, `dropN` closes the connection after
//! N s, `stallN` stops sending after N s (the connection stays open), `switchN` changes the
//! resolution after N s (new SPS/PPS in band), `jumpN` sets the RTP timestamps 5 s back every
//! N s (a camera whose clock is reset, or a re-seeked test server), `auth` requires Digest
//! authentication.

pub mod fixture;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use md5::{Digest, Md5};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use fixture::{Audio, Video};

const MTU: usize = 1400;
const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 97;

/// A fixture cut into RTP payloads once, shared by every session.
struct Packed {
    /// Per frame: (payloads, key).
    video: Vec<(Vec<Bytes>, bool)>,
    sps: Bytes,
    pps: Bytes,
    profile_level_id: String,
}

fn pack_video(v: &Video) -> Packed {
    let mut frames = Vec::with_capacity(v.frames.len());
    for f in &v.frames {
        let mut nals: Vec<&Bytes> = Vec::new();
        if f.key {
            // parameter sets in band before every key frame, as cameras do
            nals.push(&v.sps);
            nals.push(&v.pps);
        }
        nals.extend(f.nals.iter());
        let mut payloads = Vec::new();
        for nal in nals {
            if nal.len() <= MTU {
                payloads.push(nal.clone());
                continue;
            }
            // FU-A (RFC 6184 §5.8)
            let indicator = (nal[0] & 0xe0) | 28;
            let kind = nal[0] & 0x1f;
            let body = &nal[1..];
            let n = body.len().div_ceil(MTU);
            for (i, chunk) in body.chunks(MTU).enumerate() {
                let mut p = BytesMut::with_capacity(chunk.len() + 2);
                p.put_u8(indicator);
                let se = if i == 0 {
                    0x80
                } else if i == n - 1 {
                    0x40
                } else {
                    0
                };
                p.put_u8(se | kind);
                p.put_slice(chunk);
                payloads.push(p.freeze());
            }
        }
        frames.push((payloads, f.key));
    }
    Packed {
        video: frames,
        sps: v.sps.clone(),
        pps: v.pps.clone(),
        profile_level_id: v.profile_level_id(),
    }
}

fn pack_audio(a: &Audio) -> Vec<Bytes> {
    // RFC 3640 AAC-hbr: AU-headers-length (16 bits), one AU-header (13-bit size, 3-bit index)
    a.frames
        .iter()
        .map(|f| {
            let mut p = BytesMut::with_capacity(f.len() + 4);
            p.put_u16(16);
            p.put_u16((f.len() as u16) << 3);
            p.put_slice(f);
            p.freeze()
        })
        .collect()
}

/// What the simulator serves.
pub struct Media {
    main: Packed,
    alt: Packed,
    audio: Vec<Bytes>,
    audio_info: (u32, u8, [u8; 2]),
}

impl Media {
    pub fn new(video: &Video, alt: &Video, audio: &Audio) -> Media {
        Media {
            main: pack_video(video),
            alt: pack_video(alt),
            audio: pack_audio(audio),
            audio_info: (audio.sample_rate, audio.channels, audio.config),
        }
    }

    /// The fixtures compiled into the binary.
    pub fn embedded() -> Result<Media, String> {
        use fixture::embedded::*;
        Ok(Media::new(
            &Video::parse(H264_360P)?,
            &Video::parse(H264_180P)?,
            &Audio::parse_adts(AAC_48K)?,
        ))
    }
}

/// Settings of a simulator instance.
pub struct Camsim {
    pub media: Media,
    pub user: String,
    pub password: String,
    /// Print `SESSION <path>` / `END <path>` lines to stdout.
    pub events: bool,
    sessions: Mutex<HashMap<String, u64>>,
    pub total_sessions: AtomicU64,
    /// When set, only these paths (with query) are cameras; others answer 404, as a real
    /// camera does for a wrong stream path.
    pub only: Option<Vec<String>>,
    /// Every path requires Digest authentication (checked before the path, as cameras do).
    pub auth_all: bool,
}

#[derive(Default, Clone, Copy)]
struct Options {
    audio: bool,
    drop: Option<u64>,
    stall: Option<u64>,
    switch: Option<u64>,
    jump: Option<u64>,
    auth: bool,
}

/// "/cam7/audio/drop5/trackID=0" → ("/cam7", options).
fn parse_path(path: &str) -> (String, Options) {
    let mut o = Options::default();
    let mut segs = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with("trackID="));
    let name = format!("/{}", segs.next().unwrap_or(""));
    let secs = |s: &str, p: &str| s.strip_prefix(p).and_then(|n| n.parse().ok());
    for s in segs {
        match s {
            "audio" => o.audio = true,
            "auth" => o.auth = true,
            s => {
                o.drop = o.drop.or(secs(s, "drop"));
                o.stall = o.stall.or(secs(s, "stall"));
                o.switch = o.switch.or(secs(s, "switch"));
                o.jump = o.jump.or(secs(s, "jump")).filter(|n| *n > 0);
            }
        }
    }
    (name, o)
}

/// First sequence number and RTP timestamp per track, announced in `RTP-Info`.
#[derive(Clone, Copy)]
struct Bases {
    seq: [u16; 2],
    ts: [u32; 2],
}

struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the next request, skipping interleaved RTCP from the client. `None` at EOF.
async fn read_request(
    r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Request>> {
    loop {
        let first = match r.fill_buf().await? {
            [] => return Ok(None),
            b => b[0],
        };
        if first == b'$' {
            let mut hdr = [0u8; 4];
            r.read_exact(&mut hdr).await?;
            let mut skip = vec![0u8; usize::from(u16::from_be_bytes([hdr[2], hdr[3]]))];
            r.read_exact(&mut skip).await?;
            continue;
        }
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(url)) = (parts.next(), parts.next()) else {
            continue;
        };
        let mut req = Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
        };
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await? == 0 {
                return Ok(None);
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                req.headers
                    .push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        if let Some(len) = req
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0u8; len.min(65536)];
            r.read_exact(&mut body).await?;
        }
        return Ok(Some(req));
    }
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn digest_param<'a>(h: &'a str, name: &str) -> Option<&'a str> {
    h.split(',').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k.trim().trim_start_matches("Digest ").trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

impl Camsim {
    pub fn new(media: Media, user: &str, password: &str, events: bool) -> Arc<Camsim> {
        Self::restricted(media, user, password, events, None, false)
    }

    /// A simulator that serves only `only` (if given) and requires Digest everywhere (if
    /// `auth_all`): a camera of one brand, for discovery tests.
    pub fn restricted(
        media: Media,
        user: &str,
        password: &str,
        events: bool,
        only: Option<Vec<String>>,
        auth_all: bool,
    ) -> Arc<Camsim> {
        Arc::new(Camsim {
            media,
            user: user.into(),
            password: password.into(),
            events,
            sessions: Mutex::new(HashMap::new()),
            total_sessions: AtomicU64::new(0),
            only,
            auth_all,
        })
    }

    /// Sessions played so far on camera `name` (e.g. `/cam1`).
    pub fn sessions(&self, name: &str) -> u64 {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Serves until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = sock.set_nodelay(true);
            let sim = self.clone();
            tokio::spawn(async move {
                let _ = sim.connection(sock).await;
            });
        }
    }

    fn authorized(&self, req: &Request, nonce: &str) -> bool {
        let Some(h) = req.header("Authorization") else {
            return false;
        };
        let (Some(user), Some(uri), Some(resp), Some(n)) = (
            digest_param(h, "username"),
            digest_param(h, "uri"),
            digest_param(h, "response"),
            digest_param(h, "nonce"),
        ) else {
            return false;
        };
        let realm = "camsim";
        let ha1 = md5_hex(&format!("{user}:{realm}:{}", self.password));
        let ha2 = md5_hex(&format!("{}:{uri}", req.method));
        user == self.user && n == nonce && resp == md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
    }

    fn sdp(&self, o: Options, packed: &Packed) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut s = format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=vigia camsim\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n\
             m=video 0 RTP/AVP {VIDEO_PT}\r\na=rtpmap:{VIDEO_PT} H264/90000\r\n\
             a=fmtp:{VIDEO_PT} packetization-mode=1;profile-level-id={};sprop-parameter-sets={},{}\r\n\
             a=control:trackID=0\r\n",
            packed.profile_level_id,
            b64.encode(&packed.sps),
            b64.encode(&packed.pps)
        );
        if o.audio {
            let (rate, ch, cfg) = self.media.audio_info;
            s.push_str(&format!(
                "m=audio 0 RTP/AVP {AUDIO_PT}\r\na=rtpmap:{AUDIO_PT} mpeg4-generic/{rate}/{ch}\r\n\
                 a=fmtp:{AUDIO_PT} streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}\r\n\
                 a=control:trackID=1\r\n",
                hex::encode(cfg)
            ));
        }
        s
    }

    async fn connection(self: Arc<Self>, sock: TcpStream) -> std::io::Result<()> {
        let (rd, mut wr) = sock.into_split();
        let mut rd = BufReader::new(rd);
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(256);
        // one writer: responses and media go through it in order
        let writer = tokio::spawn(async move {
            while let Some(chunks) = rx.recv().await {
                if chunks.is_empty() {
                    break; // a `drop` fault: close the connection
                }
                for c in chunks {
                    if wr.write_all(&c).await.is_err() {
                        return;
                    }
                }
            }
            let _ = wr.shutdown().await;
        });
        let nonce = hex::encode(rand::random::<[u8; 8]>());
        let session_id = hex::encode(rand::random::<[u8; 6]>());
        let mut channels: Vec<(usize, u8)> = Vec::new(); // (track, rtp channel)
        let mut sender: Option<tokio::task::JoinHandle<()>> = None;
        let mut name = String::new();
        let bases = Bases {
            seq: [rand::random(), rand::random()],
            ts: [rand::random(), rand::random()],
        };
        while let Some(req) = read_request(&mut rd).await? {
            let cseq = req.header("CSeq").unwrap_or("0").to_string();
            let path = req
                .url
                .split_once("://")
                .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
                .unwrap_or_default();
            let (cam, opts) = parse_path(&path);
            name = cam.clone();
            let reply = |status: &str, extra: String, body: String| {
                let mut r =
                    format!("RTSP/1.0 {status}\r\nCSeq: {cseq}\r\nServer: vigia-camsim\r\n{extra}");
                if !body.is_empty() {
                    r.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                r.push_str("\r\n");
                r.push_str(&body);
                vec![Bytes::from(r)]
            };
            if (opts.auth || self.auth_all)
                && req.method != "OPTIONS"
                && !self.authorized(&req, &nonce)
            {
                if self.events && req.header("Authorization").is_some() {
                    // a failed login, as a camera counts them before locking the account
                    println!("AUTHFAIL {path}");
                }
                let _ = tx
                    .send(reply(
                        "401 Unauthorized",
                        format!("WWW-Authenticate: Digest realm=\"camsim\", nonce=\"{nonce}\"\r\n"),
                        String::new(),
                    ))
                    .await;
                continue;
            }
            let known = self.only.as_ref().is_none_or(|only| {
                let bare = path.trim_end_matches('/');
                only.iter()
                    .any(|p| bare == p || bare.starts_with(&format!("{p}/trackID=")))
            });
            let msg = match req.method.as_str() {
                "DESCRIBE" | "SETUP" | "PLAY" if !known => {
                    reply("404 Not Found", String::new(), String::new())
                }
                "OPTIONS" => reply(
                    "200 OK",
                    "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n".into(),
                    String::new(),
                ),
                "DESCRIBE" => {
                    let base = req.url.trim_end_matches('/');
                    reply(
                        "200 OK",
                        format!("Content-Base: {base}/\r\nContent-Type: application/sdp\r\n"),
                        self.sdp(opts, &self.media.main),
                    )
                }
                "SETUP" => {
                    let track = if req.url.ends_with("trackID=1") { 1 } else { 0 };
                    let transport = req.header("Transport").unwrap_or("");
                    if !transport.contains("TCP") {
                        let _ = tx
                            .send(reply(
                                "461 Unsupported Transport",
                                String::new(),
                                String::new(),
                            ))
                            .await;
                        continue;
                    }
                    let ch = (track * 2) as u8;
                    channels.push((track, ch));
                    reply(
                        "200 OK",
                        format!("Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\nSession: {session_id};timeout=60\r\n", ch, ch + 1),
                        String::new(),
                    )
                }
                "PLAY" => {
                    let base = req.url.trim_end_matches('/');
                    let info: Vec<String> = channels
                        .iter()
                        .map(|(t, _)| {
                            format!(
                                "url={base}/trackID={t};seq={};rtptime={}",
                                bases.seq[*t], bases.ts[*t]
                            )
                        })
                        .collect();
                    let _ = tx
                        .send(reply(
                            "200 OK",
                            format!(
                                "Session: {session_id}\r\nRange: npt=0.000-\r\nRTP-Info: {}\r\n",
                                info.join(",")
                            ),
                            String::new(),
                        ))
                        .await;
                    if sender.is_none() {
                        self.total_sessions.fetch_add(1, Ordering::Relaxed);
                        *self
                            .sessions
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(cam.clone())
                            .or_default() += 1;
                        if self.events {
                            println!("SESSION {cam}");
                        }
                        sender = Some(tokio::spawn(self.clone().send_media(
                            tx.clone(),
                            channels.clone(),
                            opts,
                            bases,
                        )));
                    }
                    continue;
                }
                "TEARDOWN" => {
                    if self.events {
                        println!("TEARDOWN {name}");
                    }
                    let _ = tx
                        .send(reply(
                            "200 OK",
                            format!("Session: {session_id}\r\n"),
                            String::new(),
                        ))
                        .await;
                    break;
                }
                _ => reply(
                    "200 OK",
                    format!("Session: {session_id}\r\n"),
                    String::new(),
                ),
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
        if let Some(s) = sender {
            s.abort();
        }
        if self.events && !name.is_empty() {
            println!("END {name}");
        }
        drop(tx);
        let _ = writer.await;
        Ok(())
    }

    /// Paces frames in real time until the connection ends (or a fault says otherwise).
    async fn send_media(
        self: Arc<Self>,
        tx: mpsc::Sender<Vec<Bytes>>,
        channels: Vec<(usize, u8)>,
        o: Options,
        bases: Bases,
    ) {
        let vch = channels.iter().find(|c| c.0 == 0).map(|c| c.1);
        let ach = channels
            .iter()
            .find(|c| c.0 == 1)
            .map(|c| c.1)
            .filter(|_| o.audio);
        let start = tokio::time::Instant::now();
        let (mut vseq, mut aseq) = (bases.seq[0], bases.seq[1]);
        let (vbase, abase) = (bases.ts[0], bases.ts[1]);
        let (vssrc, assrc): (u32, u32) = (rand::random(), rand::random());
        let rate = self.media.audio_info.0;
        let (mut vn, mut an) = (0u64, 0u64);
        let mut switched = false;
        let packet =
            |ch: u8, pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &Bytes| {
                let mut h = BytesMut::with_capacity(16);
                h.put_u8(b'$');
                h.put_u8(ch);
                h.put_u16((12 + payload.len()) as u16);
                h.put_u8(0x80);
                h.put_u8(if marker { 0x80 | pt } else { pt });
                h.put_u16(seq);
                h.put_u32(ts);
                h.put_u32(ssrc);
                [h.freeze(), payload.clone()]
            };
        loop {
            let elapsed = start.elapsed().as_secs();
            if o.drop.is_some_and(|d| elapsed >= d) {
                let _ = tx.send(Vec::new()).await;
                return;
            }
            if o.stall.is_some_and(|s| elapsed >= s) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            // `jumpN`: every N s the clock goes 5 s back (both tracks, as a camera's would)
            let back = o.jump.map_or(0, |n| elapsed / n * 5);
            let v_at = start + Duration::from_micros(vn * 40_000);
            let a_at = start + Duration::from_micros(an * 1024 * 1_000_000 / u64::from(rate));
            let video_next = ach.is_none() || v_at <= a_at;
            tokio::time::sleep_until(if video_next { v_at } else { a_at }).await;
            let mut out = Vec::new();
            if video_next {
                let Some(ch) = vch else { return };
                let packed = if switched {
                    &self.media.alt
                } else {
                    &self.media.main
                };
                let (payloads, key) = &packed.video[(vn as usize) % packed.video.len()];
                if *key && !switched && o.switch.is_some_and(|s| elapsed >= s) {
                    switched = true;
                    continue; // restart this frame from the other fixture
                }
                let ts = vbase
                    .wrapping_add((vn * 3600) as u32)
                    .wrapping_sub((back * 90_000) as u32);
                for (i, p) in payloads.iter().enumerate() {
                    out.extend(packet(
                        ch,
                        VIDEO_PT,
                        i + 1 == payloads.len(),
                        vseq,
                        ts,
                        vssrc,
                        p,
                    ));
                    vseq = vseq.wrapping_add(1);
                }
                vn += 1;
            } else if let Some(ch) = ach {
                let p = &self.media.audio[(an as usize) % self.media.audio.len()];
                let ts = abase
                    .wrapping_add((an * 1024) as u32)
                    .wrapping_sub((back * u64::from(rate)) as u32);
                out.extend(packet(ch, AUDIO_PT, true, aseq, ts, assrc, p));
                aseq = aseq.wrapping_add(1);
                an += 1;
            }
            if tx.send(out).await.is_err() {
                return;
            }
        }
    }
}

/// Binds and serves; returns the bound address.
pub async fn start(sim: Arc<Camsim>, listen: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(sim.serve(listener));
    Ok(addr)
}
