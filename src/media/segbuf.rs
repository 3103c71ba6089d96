//! Buffers for live segments: each LL-HLS segment is written into one buffer, its parts are
//! slices of it, and buffers of segments that left their window go round again through a small
//! process-wide pool.
//!
//! Why: when the window held the frames as they came from the camera (one heap block per frame,
//! 128 cameras interleaved), glibc's heap kept ~100 MiB over the window at 128 cameras: a
//! segment leaving the window frees its frames in one go, and the next frames, of other sizes,
//! fill those holes only in part. A segment's buffer is at least [`MIN`] long, glibc's mmap
//! threshold as `main` sets it, so a buffer that is not kept is unmapped at once; the pool keeps
//! up to [`POOL_BYTES`] of them so the steady state neither maps nor faults in fresh pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// Smallest segment buffer (and glibc's mmap threshold, set by `main`).
pub const MIN: usize = 256 * 1024;
/// Largest segment buffer asked for; a longer segment goes on in a second one.
pub const MAX: usize = 64 * 1024 * 1024;
/// Most bytes of buffers the pool keeps for reuse.
const POOL_BYTES: usize = 16 * 1024 * 1024;

/// The pool the live windows share.
pub static POOL: Pool = Pool::new(POOL_BYTES);

/// Buffers of segments that left their window, kept for reuse up to a byte limit.
pub struct Pool {
    bufs: Mutex<Vec<SegmentBuffer>>,
    limit: usize,
    /// Buffers handed out from the pool, and newly allocated.
    reused: AtomicU64,
    allocated: AtomicU64,
}

/// One segment's buffer: what is written is handed out as [`Bytes`] slices sharing it.
#[derive(Debug, Default)]
pub struct SegmentBuffer {
    buf: BytesMut,
    /// The allocation's whole capacity (the view shrinks as slices are split off).
    cap: usize,
}

impl Pool {
    pub const fn new(limit: usize) -> Pool {
        Pool {
            bufs: Mutex::new(Vec::new()),
            limit,
            reused: AtomicU64::new(0),
            allocated: AtomicU64::new(0),
        }
    }

    /// How many buffers were handed out again, and how many were allocated.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.reused.load(Ordering::Relaxed),
            self.allocated.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SegmentBuffer>> {
        self.bufs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer for at least `at_least` bytes (clamped to [`MIN`]..[`MAX`], rounded up to a
    /// power of two so that cameras of about the same bitrate share buffers): a pooled one
    /// whose slices are all gone, or a new one.
    pub fn take(&self, at_least: usize) -> SegmentBuffer {
        let want = at_least.clamp(MIN, MAX).next_power_of_two();
        let mut bufs = self.lock();
        // newest first: the most recently used pages are the likeliest to be resident
        let found = (0..bufs.len()).rev().find(|&i| {
            let s = &mut bufs[i];
            s.cap >= want && s.buf.try_reclaim(s.cap)
        });
        if let Some(i) = found {
            let mut s = bufs.swap_remove(i);
            s.buf.clear();
            self.reused.fetch_add(1, Ordering::Relaxed);
            return s;
        }
        drop(bufs);
        self.allocated.fetch_add(1, Ordering::Relaxed);
        SegmentBuffer {
            buf: BytesMut::with_capacity(want),
            cap: want,
        }
    }

    /// Keeps `b` for reuse (it is reused once no slice of it is left), dropping the oldest
    /// kept buffers beyond the limit.
    pub fn recycle(&self, b: SegmentBuffer) {
        if b.cap == 0 || b.cap > self.limit {
            return;
        }
        let mut bufs = self.lock();
        let mut held: usize = bufs.iter().map(|s| s.cap).sum();
        while held + b.cap > self.limit && !bufs.is_empty() {
            held -= bufs.remove(0).cap;
        }
        bufs.push(b);
    }
}

impl SegmentBuffer {
    /// Copies `chunks` (`len` bytes in all) in and returns them as one slice of the buffer. If
    /// they do not fit, the rest of the segment goes on in a buffer from `pool`; this one is
    /// freed with its last slice (kept in the pool while its slices live, it would only push
    /// out buffers that can be reused).
    pub fn push(&mut self, pool: &Pool, chunks: &[Bytes], len: usize) -> Bytes {
        if self.buf.capacity() < len {
            *self = pool.take(len.max(self.cap));
        }
        for c in chunks {
            self.buf.extend_from_slice(c);
        }
        self.buf.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_one_buffer_which_is_reused_once_they_are_gone() {
        let pool = Pool::new(4 * MIN);
        let mut b = pool.take(1);
        assert_eq!(b.cap, MIN);
        let one = b.push(
            &pool,
            &[Bytes::from_static(b"ab"), Bytes::from_static(b"cd")],
            4,
        );
        let two = b.push(&pool, &[Bytes::from_static(b"ef")], 2);
        assert_eq!((&one[..], &two[..]), (&b"abcd"[..], &b"ef"[..]));
        // the second slice follows the first in the same allocation
        assert_eq!(two.as_ptr(), one.as_ptr().wrapping_add(4));
        let start = one.as_ptr();
        pool.recycle(b);
        // a slice is still out (a player downloading the segment): not reused
        drop(one);
        let other = pool.take(MIN);
        assert_ne!(other.buf.as_ptr(), start);
        drop(two);
        // every slice gone: the same memory again, from its start, empty
        let mut again = pool.take(MIN);
        let three = again.push(&pool, &[Bytes::from_static(b"gh")], 2);
        assert_eq!(three.as_ptr(), start);
        assert_eq!(&three[..], b"gh");
        // a part larger than what is left goes on in another buffer
        let big = [Bytes::from(vec![7u8; MIN])];
        let four = again.push(&pool, &big, MIN);
        assert_eq!(four.len(), MIN);
        assert_ne!(four.as_ptr(), start.wrapping_add(2));
        // a buffer larger than the pool is not kept; the oldest go first
        // (the buffer the part did not fit in was not kept: its slices still live)
        pool.recycle(other);
        pool.recycle(again);
        assert_eq!(pool.lock().len(), 2);
        // sizes are rounded up to a power of two
        let odd = pool.take(3 * MIN);
        assert_eq!(odd.cap, 4 * MIN);
        pool.recycle(odd);
        let caps = || pool.lock().iter().map(|s| s.cap).collect::<Vec<_>>();
        assert_eq!(caps(), [4 * MIN]);
        pool.recycle(pool.take(5 * MIN));
        assert_eq!(caps(), [4 * MIN]);
    }
}
