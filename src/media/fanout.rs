//! One camera session, many consumers (live view now, the recorder later).
//!
//! Every consumer has its own bounded queue. Publishing never waits: a consumer whose queue
//! is full is marked behind and gets nothing more until the next video key frame (preceded
//! by the current `Start` if it missed one), so a slow consumer never stalls the session or
//! the others, and never sees a frame it cannot decode. Skipped frames are counted and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tracing::warn;

use super::fmp4::TrackKind;
use super::frame::{Event, Tracks};

struct Sub {
    name: &'static str,
    tx: mpsc::Sender<Event>,
    behind: bool,
    need_start: bool,
    /// Behind because its queue was full (not just waiting for its first key frame).
    lagging: bool,
}

pub struct Fanout {
    camera: String,
    subs: Mutex<Vec<Sub>>,
    last_start: Mutex<Option<Arc<Tracks>>>,
    /// Frames dropped for consumers that fell behind.
    pub skipped: AtomicU64,
    /// Frames and their payload bytes received from the camera (`/metrics`).
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
}

impl Fanout {
    pub fn new(camera: &str) -> Fanout {
        Fanout {
            camera: camera.to_string(),
            subs: Mutex::new(Vec::new()),
            last_start: Mutex::new(None),
            skipped: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// A new consumer; it starts at the next key frame, after the current `Start`.
    pub fn subscribe(&self, name: &'static str, capacity: usize) -> mpsc::Receiver<Event> {
        let (tx, rx) = mpsc::channel(capacity.max(2));
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sub {
                name,
                tx,
                behind: true,
                need_start: true,
                lagging: false,
            });
        rx
    }

    /// Drops every consumer (their receivers see the end of the stream).
    pub fn close(&self) {
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn consumers(&self) -> usize {
        self.subs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn publish(&self, ev: Event) {
        match &ev {
            Event::Start(t) => {
                *self.last_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
            }
            Event::Frame(f) => {
                self.frames.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
            }
        }
        let start = self
            .last_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let key = matches!(&ev, Event::Frame(f) if f.kind == TrackKind::Video && f.keyframe);
        let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain_mut(|s| {
            if let Event::Start(_) = ev {
                s.need_start = true;
                s.behind = true;
                return !s.tx.is_closed();
            }
            if s.behind {
                if !key {
                    if s.lagging {
                        self.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    return !s.tx.is_closed();
                }
                if s.need_start {
                    let Some(t) = &start else { return true };
                    match s.tx.try_send(Event::Start(t.clone())) {
                        Ok(()) => s.need_start = false,
                        Err(mpsc::error::TrySendError::Full(_)) => return true,
                        Err(mpsc::error::TrySendError::Closed(_)) => return false,
                    }
                }
            }
            match s.tx.try_send(ev.clone()) {
                Ok(()) => {
                    s.behind = false;
                    s.lagging = false;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    s.lagging = true;
                    if !s.behind {
                        warn!(camera = %self.camera, consumer = s.name, "consumer fell behind; skipping to the next key frame");
                    }
                    s.behind = true;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::TrackInfo;
    use crate::media::frame::Frame;
    use bytes::Bytes;

    fn frame(i: i64, key: bool) -> Event {
        Event::Frame(Frame {
            kind: TrackKind::Video,
            pts: i * 3600,
            keyframe: key,
            data: Bytes::new(),
            arrived: std::time::Instant::now(),
            wall: chrono::Utc::now(),
        })
    }

    #[test]
    fn a_slow_consumer_skips_to_the_next_key_frame_without_stalling_others() {
        let f = Fanout::new("cam");
        let mut fast = f.subscribe("fast", 1000);
        let mut slow = f.subscribe("slow", 4);
        let info = TrackInfo {
            kind: TrackKind::Video,
            timescale: 90_000,
            sample_entry: Bytes::new(),
            width: 1,
            height: 1,
            codec: String::new(),
        };
        f.publish(Event::Start(Arc::new(Tracks {
            generation: 1,
            video: info,
            audio: None,
        })));
        f.publish(frame(0, false)); // before any key frame: nobody gets it
        for i in 1..=20 {
            f.publish(frame(i, i % 10 == 0));
        }
        let mut got = Vec::new();
        while let Ok(ev) = fast.try_recv() {
            got.push(ev);
        }
        assert!(matches!(got[0], Event::Start(_)));
        assert_eq!(got.len(), 1 + 11, "fast gets Start, then frames 10..=20");
        // slow: Start + key 10 + two more fill its queue of 4; then it is behind
        let pts = |rx: &mut mpsc::Receiver<Event>| {
            let mut v = Vec::new();
            while let Ok(ev) = rx.try_recv() {
                v.push(match ev {
                    Event::Start(_) => -1,
                    Event::Frame(fr) => fr.pts / 3600,
                });
            }
            v
        };
        assert_eq!(pts(&mut slow), vec![-1, 10, 11, 12]);
        f.publish(frame(21, false));
        f.publish(frame(30, true));
        f.publish(frame(31, false));
        assert_eq!(
            pts(&mut slow),
            vec![30, 31],
            "resumes at the next key frame"
        );
        assert_eq!(f.skipped.load(Ordering::Relaxed), 8 + 1, "13..=20 and 21");
        drop(fast);
        f.publish(frame(21, false));
        assert_eq!(f.consumers(), 1, "closed consumers are dropped");
    }
}
