//! Fragmented MP4 (ISO/IEC 14496-12, "ISO BMFF") writer: an init segment (`ftyp` + `moov` with
//! `mvex`) and media fragments (`moof` + `mdat`), as HLS (RFC 8216bis §3.1.2, fMP4 segments) and
//! crash-safe recordings need them.
//!
//! We write the few boxes ourselves rather than use a box library: the `mp4` crate cannot write
//! `tfdt`/`trun`/`mvex`, and `mp4-atom` would want each `mdat` payload as one contiguous
//! buffer. Here a fragment is a header (`moof` and the `mdat` box header) followed by the
//! frames' own [`Bytes`], untouched: retina's frame buffers go to the HTTP body or the file
//! with `writev`, never copied. Sample entries (`avc1`/`hvc1`/`mp4a`) come ready-made from
//! retina (`VideoParameters::mp4_sample_entry()`, `AudioParameters::mp4_sample_entry()`).

use bytes::{BufMut, Bytes, BytesMut};

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
}

/// One track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub kind: TrackKind,
    /// Ticks per second: 90 000 for video, the sample rate for audio.
    pub timescale: u32,
    /// The complete sample entry box (`avc1`, `hvc1`, `mp4a`).
    pub sample_entry: Bytes,
    /// Display size (video).
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001F` or `mp4a.40.2`.
    pub codec: String,
}

/// One sample of a fragment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub duration: u32,
    pub sync: bool,
    pub data: Bytes,
}

/// The samples of one track in one fragment, starting at `base_time` (track timescale).
#[derive(Debug, Clone)]
pub struct TrackRun<'a> {
    /// 1-based track id (index in the init segment + 1).
    pub track_id: u32,
    pub base_time: u64,
    pub samples: &'a [Sample],
}

/// A `moof`+`mdat` pair as a list of buffers: the header, then each sample's own bytes.
#[derive(Debug, Clone, Default)]
pub struct Fragment {
    pub chunks: Vec<Bytes>,
    pub len: usize,
}

impl Fragment {
    /// The fragment as one buffer (tests, small uses).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in &self.chunks {
            v.extend_from_slice(c);
        }
        v
    }
}

/// Writes a box: 32-bit size placeholder, type, body, then patches the size (§4.2).
fn bx(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: version and 24-bit flags after the type (§4.2).
fn full(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    bx(out, kind, |o| {
        o.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(o);
    });
}

/// The unity transformation matrix (§8.2.2.3).
fn matrix(o: &mut BytesMut) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        o.put_u32(v);
    }
}

/// `ftyp` + `moov` for `tracks` (track ids are 1-based positions).
pub fn init_segment(tracks: &[TrackInfo]) -> Bytes {
    let mut o = BytesMut::with_capacity(1024);
    // §4.3 FileTypeBox; iso6 allows tfdt v1 and default-base-is-moof (§8.8.7).
    bx(&mut o, b"ftyp", |o| {
        o.put_slice(b"iso6");
        o.put_u32(0);
        for brand in [b"iso6", b"iso5", b"mp41"] {
            o.put_slice(brand);
        }
    });
    bx(&mut o, b"moov", |o| {
        // §8.2.2 MovieHeaderBox
        full(o, b"mvhd", 0, 0, |o| {
            o.put_u32(0); // creation_time
            o.put_u32(0); // modification_time
            o.put_u32(1000); // timescale
            o.put_u32(0); // duration: unknown, fragments follow
            o.put_u32(0x0001_0000); // rate 1.0
            o.put_u16(0x0100); // volume 1.0
            o.put_bytes(0, 10); // reserved
            matrix(o);
            o.put_bytes(0, 24); // pre_defined
            o.put_u32(tracks.len() as u32 + 1); // next_track_ID
        });
        for (i, t) in tracks.iter().enumerate() {
            trak(o, i as u32 + 1, t);
        }
        // §8.8.1 MovieExtendsBox: the samples live in movie fragments
        bx(o, b"mvex", |o| {
            for i in 0..tracks.len() {
                // §8.8.3 TrackExtendsBox
                full(o, b"trex", 0, 0, |o| {
                    o.put_u32(i as u32 + 1); // track_ID
                    o.put_u32(1); // default_sample_description_index
                    o.put_u32(0); // default_sample_duration
                    o.put_u32(0); // default_sample_size
                    o.put_u32(0); // default_sample_flags
                });
            }
        });
    });
    o.freeze()
}

fn trak(o: &mut BytesMut, id: u32, t: &TrackInfo) {
    let video = t.kind == TrackKind::Video;
    bx(o, b"trak", |o| {
        // §8.3.2 TrackHeaderBox, flags track_enabled | track_in_movie
        full(o, b"tkhd", 0, 0x000003, |o| {
            o.put_u32(0); // creation_time
            o.put_u32(0); // modification_time
            o.put_u32(id);
            o.put_u32(0); // reserved
            o.put_u32(0); // duration
            o.put_bytes(0, 8); // reserved
            o.put_u16(0); // layer
            o.put_u16(0); // alternate_group
            o.put_u16(if video { 0 } else { 0x0100 }); // volume
            o.put_u16(0); // reserved
            matrix(o);
            o.put_u32(if video { t.width << 16 } else { 0 }); // width, 16.16
            o.put_u32(if video { t.height << 16 } else { 0 }); // height, 16.16
        });
        bx(o, b"mdia", |o| {
            // §8.4.2 MediaHeaderBox
            full(o, b"mdhd", 0, 0, |o| {
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(t.timescale);
                o.put_u32(0);
                o.put_u16(0x55c4); // language "und", ISO-639-2/T packed
                o.put_u16(0);
            });
            // §8.4.3 HandlerBox
            full(o, b"hdlr", 0, 0, |o| {
                o.put_u32(0);
                o.put_slice(if video { b"vide" } else { b"soun" });
                o.put_bytes(0, 12);
                o.put_slice(if video {
                    b"VideoHandler\0"
                } else {
                    b"SoundHandler\0"
                });
            });
            bx(o, b"minf", |o| {
                if video {
                    // §12.1.2 VideoMediaHeaderBox (flags 1)
                    full(o, b"vmhd", 0, 1, |o| o.put_bytes(0, 8));
                } else {
                    // §12.2.2 SoundMediaHeaderBox
                    full(o, b"smhd", 0, 0, |o| o.put_u32(0));
                }
                // §8.7.1 DataInformationBox: one self-contained url entry (flags 1)
                bx(o, b"dinf", |o| {
                    full(o, b"dref", 0, 0, |o| {
                        o.put_u32(1);
                        full(o, b"url ", 0, 1, |_| {});
                    });
                });
                // §8.5.1 SampleTableBox, empty: samples are in fragments
                bx(o, b"stbl", |o| {
                    full(o, b"stsd", 0, 0, |o| {
                        o.put_u32(1);
                        o.put_slice(&t.sample_entry);
                    });
                    full(o, b"stts", 0, 0, |o| o.put_u32(0));
                    full(o, b"stsc", 0, 0, |o| o.put_u32(0));
                    full(o, b"stsz", 0, 0, |o| {
                        o.put_u32(0);
                        o.put_u32(0);
                    });
                    full(o, b"stco", 0, 0, |o| o.put_u32(0));
                });
            });
        });
    });
}

/// Sample flags (§8.8.3.1): a sync sample depends on no other; a non-sync sample depends on
/// others and has `sample_is_non_sync_sample` set.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;

/// `moof` + `mdat` for the runs (tracks without samples are left out).
pub fn fragment(sequence: u32, runs: &[TrackRun<'_>]) -> Fragment {
    let runs: Vec<&TrackRun<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut o =
        BytesMut::with_capacity(128 + runs.iter().map(|r| 12 * r.samples.len()).sum::<usize>());
    // offsets of each trun's data_offset field, patched once the moof size is known
    let mut patch: Vec<(usize, usize)> = Vec::new();
    let mut payload_offset = 0usize;
    bx(&mut o, b"moof", |o| {
        // §8.8.5 MovieFragmentHeaderBox
        full(o, b"mfhd", 0, 0, |o| o.put_u32(sequence));
        for r in &runs {
            bx(o, b"traf", |o| {
                // §8.8.7 TrackFragmentHeaderBox, default-base-is-moof
                full(o, b"tfhd", 0, 0x020000, |o| o.put_u32(r.track_id));
                // §8.8.12 TrackFragmentBaseMediaDecodeTimeBox, version 1 (64-bit)
                full(o, b"tfdt", 1, 0, |o| o.put_u64(r.base_time));
                // §8.8.8 TrackRunBox: data-offset, duration, size, flags per sample
                full(
                    o,
                    b"trun",
                    0,
                    0x000001 | 0x000100 | 0x000200 | 0x000400,
                    |o| {
                        o.put_u32(r.samples.len() as u32);
                        patch.push((o.len(), payload_offset));
                        o.put_i32(0);
                        for s in r.samples {
                            o.put_u32(s.duration);
                            o.put_u32(s.data.len() as u32);
                            o.put_u32(if s.sync { SYNC } else { NON_SYNC });
                        }
                    },
                );
            });
            payload_offset += r.samples.iter().map(|s| s.data.len()).sum::<usize>();
        }
    });
    let moof_len = o.len();
    for (at, payload) in patch {
        let off = (moof_len + 8 + payload) as i32;
        o[at..at + 4].copy_from_slice(&off.to_be_bytes());
    }
    // §8.1.1 MediaDataBox
    o.put_u32((8 + payload_offset) as u32);
    o.put_slice(b"mdat");
    let header = o.freeze();
    let mut chunks = Vec::with_capacity(1 + runs.iter().map(|r| r.samples.len()).sum::<usize>());
    let len = header.len() + payload_offset;
    chunks.push(header);
    for r in &runs {
        chunks.extend(r.samples.iter().map(|s| s.data.clone()));
    }
    Fragment { chunks, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> TrackInfo {
        TrackInfo {
            kind: TrackKind::Video,
            timescale: 90_000,
            sample_entry: Bytes::from_static(b"\0\0\0\x08avc1"),
            width: 640,
            height: 360,
            codec: "avc1.64001e".into(),
        }
    }

    fn boxes(mut b: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        while b.len() >= 8 {
            let size = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&b[4..8]).to_string(), size));
            b = &b[size..];
        }
        out
    }

    #[test]
    fn init_has_ftyp_then_moov_with_mvex() {
        let init = init_segment(&[video()]);
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        assert_eq!(top.iter().map(|b| b.1).sum::<usize>(), init.len());
        let s = String::from_utf8_lossy(&init);
        for name in [
            "mvhd", "trak", "tkhd", "mdhd", "hdlr", "vmhd", "stsd", "avc1", "mvex", "trex",
        ] {
            assert!(s.contains(name), "{name}");
        }
    }

    #[test]
    fn fragment_offsets_point_at_the_samples_and_payloads_are_not_copied() {
        let a = Bytes::from_static(b"AAAA");
        let b = Bytes::from_static(b"BBBBBB");
        let c = Bytes::from_static(b"cc");
        let v = [
            Sample {
                duration: 3000,
                sync: true,
                data: a.clone(),
            },
            Sample {
                duration: 3000,
                sync: false,
                data: b.clone(),
            },
        ];
        let au = [Sample {
            duration: 1024,
            sync: true,
            data: c.clone(),
        }];
        let f = fragment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    base_time: 90_000,
                    samples: &v,
                },
                TrackRun {
                    track_id: 2,
                    base_time: 48_000,
                    samples: &au,
                },
            ],
        );
        assert_eq!(f.chunks.len(), 4);
        assert_eq!(f.chunks[1].as_ptr(), a.as_ptr(), "zero-copy");
        let all = f.to_vec();
        assert_eq!(all.len(), f.len);
        let top = boxes(&all);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            ["moof", "mdat"]
        );
        // find each trun's data_offset and check it lands on the sample bytes
        let mut offsets = Vec::new();
        for i in 0..all.len() - 4 {
            if &all[i..i + 4] == b"trun" {
                offsets.push(i32::from_be_bytes(all[i + 12..i + 16].try_into().unwrap()) as usize);
            }
        }
        assert_eq!(&all[offsets[0]..offsets[0] + 4], b"AAAA");
        assert_eq!(&all[offsets[1]..offsets[1] + 2], b"cc");
        let tfdt = all.windows(4).position(|w| w == b"tfdt").unwrap();
        assert_eq!(
            u64::from_be_bytes(all[tfdt + 8..tfdt + 16].try_into().unwrap()),
            90_000
        );
    }
}
