//! The fMP4 muxer against ffprobe/ffmpeg on files it writes: real H.264 frames from the
//! fixture, and a property test over random timestamp deltas, gaps, jumps and parameter
//! changes (each new init starts a new file, as recordings will) — never a panic, always a
//! file ffprobe reads without a word, and frames ffmpeg decodes.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use vigia::camsim::fixture::{embedded, AccessUnit, Video};
use vigia::media::fmp4::{self, TrackInfo, TrackKind};
use vigia::media::frame::{Frame, Tracks};
use vigia::media::mux::Muxer;

/// An `avc1` sample entry (ISO/IEC 14496-15 §5.3.4) for the fixture's SPS/PPS. In vigia the
/// entry comes from retina; the test builds its own so it can feed fixture frames directly.
fn avc1(v: &Video, width: u16, height: u16) -> Bytes {
    let mut avcc = BytesMut::new();
    avcc.put_u8(1);
    avcc.put_slice(&v.sps[1..4]);
    avcc.put_u8(0xff); // 4-byte NAL lengths
    avcc.put_u8(0xe1);
    avcc.put_u16(v.sps.len() as u16);
    avcc.put_slice(&v.sps);
    avcc.put_u8(1);
    avcc.put_u16(v.pps.len() as u16);
    avcc.put_slice(&v.pps);
    let mut e = BytesMut::new();
    e.put_u32(0);
    e.put_slice(b"avc1");
    e.put_bytes(0, 6);
    e.put_u16(1); // data_reference_index
    e.put_bytes(0, 16);
    e.put_u16(width);
    e.put_u16(height);
    e.put_u32(0x0048_0000);
    e.put_u32(0x0048_0000);
    e.put_u32(0);
    e.put_u16(1); // frame_count
    e.put_bytes(0, 32); // compressorname
    e.put_u16(0x0018);
    e.put_i16(-1);
    e.put_u32(8 + avcc.len() as u32);
    e.put_slice(b"avcC");
    e.put_slice(&avcc);
    let len = e.len() as u32;
    e[0..4].copy_from_slice(&len.to_be_bytes());
    e.freeze()
}

fn tracks(v: &Video, w: u16, h: u16, generation: u64) -> Arc<Tracks> {
    Arc::new(Tracks {
        generation,
        video: TrackInfo {
            kind: TrackKind::Video,
            timescale: 90_000,
            sample_entry: avc1(v, w, h),
            width: w.into(),
            height: h.into(),
            codec: format!("avc1.{}", hex::encode(&v.sps[1..4])),
        },
        audio: None,
    })
}

fn mp4_frame(au: &AccessUnit, pts: i64) -> Frame {
    let mut b = BytesMut::new();
    for n in &au.nals {
        b.put_u32(n.len() as u32);
        b.put_slice(n);
    }
    Frame {
        kind: TrackKind::Video,
        pts,
        keyframe: au.key,
        data: b.freeze(),
        arrived: Instant::now(),
        wall: chrono::Utc::now(),
    }
}

fn judge(path: &std::path::Path, decode: bool) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,nb_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.is_empty(),
        "ffprobe {}: {err}",
        path.display()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("h264,"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    if decode {
        // ffprobe decodes every frame and counts them: any decoding error is printed. (ffmpeg's
        // null muxer would re-time frames to a guessed frame rate and complain about that.)
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "decoding {}: {err}", path.display());
        let n: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        assert!(n > 0, "no frame decoded from {}", path.display());
    }
}

#[test]
fn a_file_of_fragments_plays_and_reads_back() {
    let v = Video::parse(embedded::H264_360P).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.mp4");
    let t = tracks(&v, 640, 360, 1);
    let mut file = fmp4::init_segment(&t.infos()).to_vec();
    let mut m = Muxer::new(t, 1);
    for (i, au) in v.frames.iter().enumerate() {
        m.push(mp4_frame(au, i as i64 * 3600));
        if i % 25 == 24 {
            m.complete_pending();
            file.extend(m.flush().unwrap().fragment.to_vec());
        }
    }
    std::fs::write(&path, &file).unwrap();
    judge(&path, true);
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,width,height,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "640,360,4.000000,100"
    );
}

#[test]
fn random_timestamps_gaps_jumps_and_parameter_changes_never_break_a_file() {
    let big = Video::parse(embedded::H264_360P).unwrap();
    let small = Video::parse(embedded::H264_180P).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..24u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut files: Vec<Vec<u8>> = Vec::new();
        let mut generation = 0;
        let mut muxer: Option<Muxer> = None;
        let mut pts: i64 = rng.gen_range(-1_000_000..1_000_000);
        let mut use_small = false;
        let mut i = 0usize;
        let frames = rng.gen_range(30..220);
        for _ in 0..frames {
            let v = if use_small { &small } else { &big };
            let au = &v.frames[i % v.frames.len()];
            if muxer.is_none() || (au.key && rng.gen_bool(0.1)) {
                // a new init (reconnect or parameter change) at a key frame: a new file
                if let Some(mut m) = muxer.take() {
                    m.complete_pending();
                    if let (Some(f), Some(file)) = (m.flush(), files.last_mut()) {
                        file.extend(f.fragment.to_vec());
                    }
                }
                if rng.gen_bool(0.3) {
                    use_small = !use_small;
                    i = 0;
                }
                let v = if use_small { &small } else { &big };
                let (w, h) = if use_small { (320, 180) } else { (640, 360) };
                generation += 1;
                let t = tracks(v, w, h, generation);
                files.push(fmp4::init_segment(&t.infos()).to_vec());
                muxer = Some(Muxer::new(t, 1));
            }
            let v = if use_small { &small } else { &big };
            let au = &v.frames[i % v.frames.len()];
            let m = muxer.as_mut().unwrap();
            m.push(mp4_frame(au, pts));
            pts += match rng.gen_range(0..20) {
                0 => 0,                                   // duplicate timestamp
                1 => -rng.gen_range(1..900_000),          // backwards
                2 => rng.gen_range(1_000_000..5_000_000), // a gap or a jump forward
                3 => rng.gen_range(1..100),               // tiny
                _ => 3600 + rng.gen_range(-300..300),     // jitter
            };
            i += 1;
            if rng.gen_bool(0.15) {
                if rng.gen_bool(0.5) {
                    m.complete_pending();
                }
                if let Some(f) = m.flush() {
                    files.last_mut().unwrap().extend(f.fragment.to_vec());
                }
            }
        }
        if let Some(mut m) = muxer {
            m.complete_pending();
            if let Some(f) = m.flush() {
                files.last_mut().unwrap().extend(f.fragment.to_vec());
            }
        }
        for (k, f) in files.iter().enumerate() {
            let path = dir.path().join(format!("s{seed}-{k}.mp4"));
            std::fs::write(&path, f).unwrap();
            if f.len() > 2000 {
                // every frame is there and in order, so it decodes too
                judge(&path, true);
            }
        }
    }
}

#[test]
fn every_truncation_point_recovers_to_whole_fragments_or_nothing() {
    use vigia::media::recorder::{reconcile_file, salvage, Reconciled};
    // an init and three fragments of 13 frames (0.52 s each), as a recording writes them
    let v = Video::parse(embedded::H264_180P).unwrap();
    let t = tracks(&v, 320, 180, 1);
    let mut file = fmp4::init_segment(&t.infos()).to_vec();
    let moov_end = file.len();
    let mut ends = Vec::new();
    let mut m = Muxer::new(t, 1);
    for (i, au) in v.frames.iter().take(39).enumerate() {
        m.push(mp4_frame(au, i as i64 * 3600));
        if i % 13 == 12 {
            m.complete_pending();
            file.extend(m.flush().unwrap().fragment.to_vec());
            ends.push(file.len());
        }
    }
    // every byte offset a crash could leave: the walk never panics, never keeps a torn box,
    // and keeps every fragment that is whole
    for cut in 0..=file.len() {
        let mut r = std::io::Cursor::new(&file[..cut]);
        let s = salvage(&mut r, cut as u64).unwrap();
        let whole = ends.iter().filter(|e| **e <= cut).count();
        let want = match whole {
            0 if cut >= moov_end => moov_end,
            0 => s.good_len as usize, // ftyp alone or nothing: no fragment either way
            n => ends[n - 1],
        };
        assert_eq!(
            (s.fragments as usize, s.good_len as usize),
            (whole, want),
            "cut at {cut}"
        );
        assert!(s.good_len as usize <= cut);
        assert!(
            (s.seconds - whole as f64 * 0.52).abs() < 1e-9,
            "cut at {cut}"
        );
    }
    // the file itself, cut at each kind of place: whole fragments that play, or no file
    let dir = tempfile::tempdir().unwrap();
    let mut places = vec![0, 5, moov_end - 3, moov_end, moov_end + 100];
    for e in &ends {
        places.extend([*e, *e + 8, *e + 1000]);
    }
    for cut in places.into_iter().filter(|c| *c <= file.len()) {
        let path = dir.path().join(format!("cut{cut}.mp4"));
        std::fs::write(&path, &file[..cut]).unwrap();
        match reconcile_file(&path).unwrap() {
            Reconciled::Nothing => {
                assert!(
                    cut < ends[0],
                    "cut at {cut}: a whole fragment was thrown away"
                );
                assert!(!path.exists(), "a file with nothing playable is removed");
            }
            Reconciled::Kept { salvage, cut: torn } => {
                let len = std::fs::metadata(&path).unwrap().len();
                assert_eq!((len, len + torn), (salvage.good_len, cut as u64));
                judge(&path, true);
            }
        }
    }
    // a torn tail of zeros (a box of size 0), a box claiming more than the file holds, and
    // a 64-bit size that is too small are all the end of the whole part
    for tail in [vec![0u8; 4096], b"\xff\xff\xff\xffmoof".to_vec(), {
        let mut b = 1u32.to_be_bytes().to_vec();
        b.extend(b"mdat");
        b.extend(3u64.to_be_bytes());
        b
    }] {
        let mut f = file.clone();
        f.extend(&tail);
        let s = salvage(&mut std::io::Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!((s.good_len as usize, s.fragments), (file.len(), 3));
    }
}
