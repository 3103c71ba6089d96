//! Buffers for live segments: each LL-HLS segment is written into one buffer, its parts are
//! slices of it, and buffers of segments that left their window go round again through a small
//! process-wide pool.
//!
//! Why: when the window held the frames as they came from the camera (one heap block per frame,
//! 128 cameras interleaved), glibc's heap kept ~100 MiB over the window at 128 cameras: a
//! segment leaving the window frees its frames in one go, and the next frames, of other sizes,
//! fill those holes only in part. A segment's buffer is at least [`MIN`] long, glibc's mmap
//! threshold as `main` sets it, so a buffer that is not kept is unmapped at once; the pool keeps
//! up to [`POOL_BYTES`] of them so the steady state does not map fresh memory.
//!
//! Resident memory follows what the window holds, not what its buffers once held: a buffer
//! whose slices are all gone gives its pages back to the kernel (`MADV_DONTNEED`), and each part
//! asks for the pages it is about to fill in one call (`MADV_POPULATE_WRITE`, Linux 5.14;
//! older kernels fault them in one by one). Reused without that, a window's next segment began
//! with a whole earlier segment's pages resident — half a segment per camera on average, 33 MiB
//! at 128 cameras — and the pool's idle buffers stayed resident too.

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
    /// How many bytes from the allocation's start may be resident: pages past this were given
    /// back (or never touched) and are populated before a part is written there.
    resident: usize,
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

    /// A buffer for at least `at_least` bytes (see [`size_for`]): a pooled one whose slices
    /// are all gone, or a new one.
    pub fn take(&self, at_least: usize) -> SegmentBuffer {
        let want = size_for(at_least);
        let mut bufs = self.lock();
        // newest first: the most recently used pages are the likeliest to be resident
        if let Some(i) = (0..bufs.len()).rev().find(|&i| bufs[i].reclaim(want)) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return bufs.swap_remove(i);
        }
        drop(bufs);
        self.allocated.fetch_add(1, Ordering::Relaxed);
        SegmentBuffer {
            buf: BytesMut::with_capacity(want),
            cap: want,
            resident: 0,
        }
    }

    /// `spare` if it is large enough for `at_least` bytes and no slice of it is left (a
    /// window's own last buffer), else a buffer as [`Pool::take`] gives (`spare` goes to the
    /// pool).
    pub fn take_or_reuse(&self, mut spare: SegmentBuffer, at_least: usize) -> SegmentBuffer {
        if spare.reclaim(size_for(at_least)) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return spare;
        }
        self.recycle(spare);
        self.take(at_least)
    }

    /// Keeps `b` for reuse (it is reused once no slice of it is left), dropping the oldest
    /// kept buffers beyond the limit.
    pub fn recycle(&self, mut b: SegmentBuffer) {
        if b.cap == 0 || b.cap > self.limit {
            return;
        }
        // idle in the pool, it holds no pages (if a player still reads a slice, it gives them
        // back when it is taken)
        b.reclaim(0);
        let mut bufs = self.lock();
        let mut held: usize = bufs.iter().map(|s| s.cap).sum();
        while held + b.cap > self.limit && !bufs.is_empty() {
            held -= bufs.remove(0).cap;
        }
        bufs.push(b);
    }
}

/// The buffer size for `at_least` bytes: clamped to [`MIN`]..[`MAX`], rounded up to a power of
/// two so that cameras of about the same bitrate share buffers.
fn size_for(at_least: usize) -> usize {
    at_least.clamp(MIN, MAX).next_power_of_two()
}

/// The kernel's page size: `madvise` works in whole pages.
fn page() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    })
}

impl SegmentBuffer {
    /// How far into the allocation the view (the next slice) begins.
    fn offset(&self) -> usize {
        self.cap - self.buf.capacity()
    }

    /// Where the allocation starts.
    fn base(&self) -> usize {
        self.buf.as_ptr() as usize - self.offset()
    }

    /// Gives back to the kernel the whole pages from `offset` to the allocation's end. Only
    /// for bytes no slice covers: the view begins at or before `offset`.
    fn release_from(&mut self, offset: usize) {
        if offset >= self.resident {
            return;
        }
        let base = self.base();
        let (from, to) = (
            (base + offset).next_multiple_of(page()),
            (base + self.cap) / page() * page(),
        );
        if to > from {
            // SAFETY: [from, to) lies inside this buffer's allocation, after every slice handed
            // out, and holds nothing; MADV_DONTNEED keeps private anonymous memory mapped,
            // reading back zeros until written again. Allocator metadata lies outside the
            // allocation's usable bytes (glibc's chunk header is before `base`, in a page this
            // range does not reach).
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
            }
        }
        self.resident = offset;
    }

    /// Makes the pages of the next `len` bytes resident in one call, where they are not.
    fn populate(&mut self, len: usize) {
        let end = self.offset() + len;
        if end <= self.resident {
            return;
        }
        let base = self.base();
        let from = (base + self.resident) / page() * page();
        // SAFETY: [from, base + end) lies inside this buffer's allocation (rounded down to a
        // page start, which is mapped: the allocation's own header page at worst);
        // MADV_POPULATE_WRITE only faults pages in, their contents do not change. An old
        // kernel answers EINVAL and the pages fault in as they are written.
        unsafe {
            libc::madvise(
                from as *mut libc::c_void,
                base + end - from,
                libc::MADV_POPULATE_WRITE,
            );
        }
        self.resident = end;
    }

    /// Empties the buffer for reuse, giving its pages back, if it holds `want` bytes and no
    /// slice of it is left.
    fn reclaim(&mut self, want: usize) -> bool {
        let free = self.cap >= want && self.buf.try_reclaim(self.cap);
        if free {
            self.buf.clear();
            self.release_from(0);
        }
        free
    }

    /// Copies `chunks` (`len` bytes in all) in and returns them as one slice of the buffer. If
    /// they do not fit, the rest of the segment goes on in a buffer from `pool`; this one is
    /// freed with its last slice (kept in the pool while its slices live, it would only push
    /// out buffers that can be reused).
    pub fn push(&mut self, pool: &Pool, chunks: &[Bytes], len: usize) -> Bytes {
        if self.buf.capacity() < len {
            *self = pool.take(len.max(self.cap));
        }
        self.populate(len);
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

    #[test]
    fn a_window_reuses_its_own_last_buffer_however_many_leave_at_once() {
        // a pool that holds one buffer, and 8 windows whose segments leave at the same moment
        let pool = Pool::new(MIN);
        let mut spares: Vec<SegmentBuffer> = (0..8).map(|_| pool.take(MIN)).collect();
        for s in &mut spares {
            drop(s.push(&pool, &[Bytes::from_static(b"part")], 4));
        }
        let before = pool.counts();
        let again: Vec<SegmentBuffer> = spares
            .into_iter()
            .map(|s| pool.take_or_reuse(s, MIN))
            .collect();
        assert_eq!(pool.counts(), (before.0 + 8, before.1));
        // a spare whose slice is still out (a player downloading it), or too small, is not
        // reused: it goes to the pool and a buffer comes from there
        let mut busy = pool.take(MIN);
        let out = busy.push(&pool, &[Bytes::from_static(b"x")], 1);
        let (reused, allocated) = pool.counts();
        let other = pool.take_or_reuse(busy, MIN);
        assert_ne!(other.buf.as_ptr(), out.as_ptr());
        assert_eq!(pool.counts(), (reused, allocated + 1));
        let bigger = pool.take_or_reuse(other, 2 * MIN);
        assert_eq!(bigger.cap, 2 * MIN);
        drop((again, out));
    }

    /// How many of the pages under `b`'s allocation (whole pages only) are resident.
    fn resident_pages(b: &SegmentBuffer) -> usize {
        let base = b.base();
        let (from, to) = (
            base.next_multiple_of(page()),
            (base + b.cap) / page() * page(),
        );
        let mut vec = vec![0u8; (to - from) / page()];
        // SAFETY: the range is page-aligned and inside the allocation; vec has a byte per page
        let rc = unsafe { libc::mincore(from as *mut libc::c_void, to - from, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|v| **v & 1 == 1).count()
    }

    #[test]
    fn a_reused_buffer_holds_only_the_pages_its_parts_fill() {
        let pool = Pool::new(4 * MIN);
        let mut b = pool.take(MIN);
        let whole = MIN / page();
        let part = Bytes::from(vec![1u8; 10 * page()]);
        for _ in 0..(whole / 10) {
            drop(b.push(&pool, std::slice::from_ref(&part), part.len()));
        }
        assert!(resident_pages(&b) >= whole - 11, "{}", resident_pages(&b));
        // reused for the next segment: nothing resident until written
        let mut b = pool.take_or_reuse(b, MIN);
        assert!(resident_pages(&b) <= 1, "{}", resident_pages(&b));
        let one = b.push(&pool, std::slice::from_ref(&part), part.len());
        // the part's pages, in place and holding what was written
        assert!(
            (10..=12).contains(&resident_pages(&b)),
            "{}",
            resident_pages(&b)
        );
        assert_eq!(one, part);
        // a slice still out keeps its bytes
        assert!(
            (10..=12).contains(&resident_pages(&b)),
            "{}",
            resident_pages(&b)
        );
        assert_eq!(one, part);
        // idle in the pool: nothing resident once the last slice is gone
        drop(one);
        pool.recycle(b);
        let bufs = pool.lock();
        assert_eq!(bufs.len(), 1);
        assert!(
            resident_pages(&bufs[0]) <= 1,
            "{}",
            resident_pages(&bufs[0])
        );
    }
}
