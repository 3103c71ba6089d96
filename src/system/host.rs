//! Probes of the host this process runs on: disk space of a directory's file system, and this
//! process's resident memory (now and its peak, which crash recovery resets and reports so an
//! installer can see what a recovery cost). Linux `/proc` and `statvfs(3)`; every probe
//! answers `None` where the host cannot tell, never an error.

use std::path::Path;

/// (total, free) bytes of the file system holding `dir`; free is what an unprivileged writer
/// may still use.
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frag = st.fragment_size() as u64;
    Some((
        st.blocks() as u64 * frag,
        st.blocks_available() as u64 * frag,
    ))
}

/// Free bytes of the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    disk_space(dir).map(|(_, free)| free)
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resident memory of this process in bytes (`/proc/self/statm`: a tenth of the cost of
/// `status`, which `/metrics` would pay every scrape).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    Some(pages * u64::try_from(page).ok()?)
}

/// Open file descriptors of this process: the size Linux ≥ 6.2 reports for `/proc/self/fd`
/// (no walk of the table), else a count of its entries.
pub fn open_fds() -> Option<u64> {
    let size = std::fs::metadata("/proc/self/fd").ok()?.len();
    if size > 0 {
        return Some(size);
    }
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The peak resident memory of this process since it started, or since [`reset_peak_rss`].
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}

/// Starts the peak over from the current resident size (`clear_refs` 5, Linux ≥ 4.0); false
/// where the kernel or a sandbox does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_big_allocation_and_can_start_over() {
        assert!(reset_peak_rss());
        let before = peak_rss_bytes().unwrap();
        let big = vec![1u8; 64 << 20];
        std::hint::black_box(&big);
        let peak = peak_rss_bytes().unwrap();
        assert!(peak >= before + (60 << 20), "{before} → {peak}");
        drop(big);
        assert!(reset_peak_rss());
        assert!(peak_rss_bytes().unwrap() < peak - (60 << 20));
        let rss = rss_bytes().unwrap();
        let status = status_bytes("VmRSS").unwrap();
        assert!(
            rss.abs_diff(status) < 4 << 20,
            "statm {rss} against status {status}"
        );
        let fds = open_fds().unwrap();
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        assert!(fds.abs_diff(listed) <= 1, "{fds} against {listed} listed");
        let (total, free) = disk_space(Path::new("/")).unwrap();
        assert!(total >= free && total > 0);
    }
}
