//! Pre-encoded media for the camera simulator: an H.264 Annex B stream with an access unit
//! delimiter before every frame (what `scripts/make-fixtures.sh` writes), and AAC in ADTS.

use bytes::Bytes;

/// One video access unit: its NAL units without start codes.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    pub nals: Vec<Bytes>,
    pub key: bool,
}

#[derive(Debug, Clone)]
pub struct Video {
    pub sps: Bytes,
    pub pps: Bytes,
    pub frames: Vec<AccessUnit>,
}

#[derive(Debug, Clone)]
pub struct Audio {
    pub sample_rate: u32,
    pub channels: u8,
    /// AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), for the SDP.
    pub config: [u8; 2],
    pub frames: Vec<Bytes>,
}

/// Splits Annex B into NAL units (3- or 4-byte start codes).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1; // trailing zero of a 4-byte start code
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

impl Video {
    pub fn parse(data: &[u8]) -> Result<Video, String> {
        let mut sps = None;
        let mut pps = None;
        let mut frames: Vec<AccessUnit> = Vec::new();
        let mut current: Option<AccessUnit> = None;
        for nal in nal_units(data) {
            match nal[0] & 0x1f {
                9 => {
                    // access unit delimiter: a new frame begins
                    if let Some(au) = current.take().filter(|au| !au.nals.is_empty()) {
                        frames.push(au);
                    }
                    current = Some(AccessUnit {
                        nals: Vec::new(),
                        key: false,
                    });
                }
                7 => sps = Some(Bytes::copy_from_slice(nal)),
                8 => pps = Some(Bytes::copy_from_slice(nal)),
                t => {
                    let au = current.get_or_insert(AccessUnit {
                        nals: Vec::new(),
                        key: false,
                    });
                    au.key |= t == 5;
                    au.nals.push(Bytes::copy_from_slice(nal));
                }
            }
        }
        if let Some(au) = current.filter(|au| !au.nals.is_empty()) {
            frames.push(au);
        }
        let sps = sps.ok_or("no SPS in the fixture")?;
        let pps = pps.ok_or("no PPS in the fixture")?;
        if !frames.first().is_some_and(|f| f.key) {
            return Err("the fixture must start with an IDR frame".into());
        }
        Ok(Video { sps, pps, frames })
    }

    /// `profile-level-id` for the SDP: profile_idc, constraint flags, level_idc.
    pub fn profile_level_id(&self) -> String {
        hex::encode(&self.sps[1..4.min(self.sps.len())])
    }
}

impl Audio {
    pub fn parse_adts(data: &[u8]) -> Result<Audio, String> {
        let mut frames = Vec::new();
        let mut i = 0;
        let mut head = None;
        while i + 7 <= data.len() {
            let h = &data[i..i + 7];
            if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
                return Err(format!("no ADTS sync word at byte {i}"));
            }
            let protection_absent = h[1] & 1 == 1;
            let len =
                (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
            let header = if protection_absent { 7 } else { 9 };
            if len <= header || i + len > data.len() {
                return Err("truncated ADTS frame".into());
            }
            head.get_or_insert((
                h[2] >> 6,
                (h[2] >> 2) & 0xf,
                ((h[2] & 1) << 2) | (h[3] >> 6),
            ));
            frames.push(Bytes::copy_from_slice(&data[i + header..i + len]));
            i += len;
        }
        let (profile, freq_idx, channels) = head.ok_or("no ADTS frame")?;
        const RATES: [u32; 13] = [
            96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
        ];
        let sample_rate = *RATES
            .get(usize::from(freq_idx))
            .ok_or("bad sampling index")?;
        let object = profile + 1;
        let config = [
            (object << 3) | (freq_idx >> 1),
            ((freq_idx & 1) << 7) | (channels << 3),
        ];
        Ok(Audio {
            sample_rate,
            channels,
            config,
            frames,
        })
    }
}

/// The fixtures compiled into the binary (made by `scripts/make-fixtures.sh`).
pub mod embedded {
    pub const H264_360P: &[u8] = include_bytes!("../../fixtures/h264_360p25.h264");
    pub const H264_180P: &[u8] = include_bytes!("../../fixtures/h264_180p25.h264");
    pub const AAC_48K: &[u8] = include_bytes!("../../fixtures/aac_48k.aac");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fixtures_parse() {
        let v = Video::parse(embedded::H264_360P).unwrap();
        assert_eq!(v.frames.len(), 100, "4 s at 25 fps");
        assert_eq!(
            v.frames.iter().filter(|f| f.key).count(),
            4,
            "a key frame every second"
        );
        assert_eq!(v.sps[0] & 0x1f, 7);
        assert_eq!(v.profile_level_id()[..2], *"64", "High profile");
        let small = Video::parse(embedded::H264_180P).unwrap();
        assert_ne!(small.sps, v.sps, "another resolution, other parameters");
        let a = Audio::parse_adts(embedded::AAC_48K).unwrap();
        assert_eq!((a.sample_rate, a.channels), (48000, 2));
        assert_eq!(a.config, [0x11, 0x90], "AAC-LC 48 kHz stereo");
        assert!(a.frames.len() > 180);
    }
}
