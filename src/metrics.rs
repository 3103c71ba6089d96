//! Process-wide figures for `/metrics`: counters and histograms on atomics, so the paths that
//! feed them (frames, parts, requests, fsyncs, store calls) take no lock and allocate
//! nothing; and [`Text`], a writer of the Prometheus text exposition format (version 0.0.4)
//! that the scrape fills once per request.
//!
//! Written here rather than with `prometheus-client`: its histograms take a lock per
//! observation, and the ~150 lines below cost the (size-budgeted) binary a fraction of the
//! crate. The output is checked by an independent parser (Python's `prometheus_client`) in
//! `tests/metrics.rs`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most buckets a histogram may have.
const MAX_BUCKETS: usize = 16;

/// A latency histogram: one atomic per bucket, plus the sum.
pub struct Histogram {
    /// Upper bounds in seconds, increasing, each with its `le` label (the `+Inf` bucket is
    /// implied).
    bounds: &'static [(f64, &'static str)],
    /// Observations per bucket (not cumulative; the scrape sums them).
    buckets: [AtomicU64; MAX_BUCKETS],
    /// Observations above the last bound.
    over: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub const fn new(bounds: &'static [(f64, &'static str)]) -> Histogram {
        assert!(bounds.len() <= MAX_BUCKETS);
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; MAX_BUCKETS],
            over: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        match self.bounds.iter().position(|(b, _)| s <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn observe_since(&self, t: Instant) {
        self.observe(t.elapsed());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        let n: u64 = self.buckets[..self.bounds.len()]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum();
        n + self.over.load(Ordering::Relaxed)
    }
}

/// Bucket bounds (seconds) for work that takes micro- to milliseconds (part publishing, store
/// calls).
pub const FAST: &[(f64, &str)] = &[
    (0.0001, "0.0001"),
    (0.00025, "0.00025"),
    (0.0005, "0.0005"),
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (1.0, "1"),
];
/// Bucket bounds (seconds) for HTTP requests and disk syncs (a blocking playlist reload waits
/// up to a few seconds).
pub const SLOW: &[(f64, &str)] = &[
    (0.001, "0.001"),
    (0.0025, "0.0025"),
    (0.005, "0.005"),
    (0.01, "0.01"),
    (0.025, "0.025"),
    (0.05, "0.05"),
    (0.1, "0.1"),
    (0.25, "0.25"),
    (0.5, "0.5"),
    (1.0, "1"),
    (2.5, "2.5"),
    (5.0, "5"),
    (10.0, "10"),
];

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Last frame of a part received → part listed in the playlist, over every camera.
pub static PART_PUBLISH: Histogram = Histogram::new(FAST);
/// `fdatasync` of a recording file.
pub static FSYNC: Histogram = Histogram::new(SLOW);
/// Store calls: an embedded read transaction, an embedded write transaction (with its wait
/// for a blocking thread and its commit), a PostgreSQL call (connection held).
pub static STORE_READ: Histogram = Histogram::new(FAST);
pub static STORE_WRITE: Histogram = Histogram::new(FAST);
pub static STORE_POSTGRES: Histogram = Histogram::new(FAST);
/// Logins refused for a wrong username or password.
pub static LOGIN_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Attempts answered 429 by the login throttle (logins and password changes).
pub static LOGIN_THROTTLED: AtomicU64 = AtomicU64::new(0);
/// Recordings deleted by the disk watcher: past `RETENTION_DAYS`, and to free disk space.
pub static DELETED_FOR_AGE: AtomicU64 = AtomicU64::new(0);
pub static DELETED_FOR_SPACE: AtomicU64 = AtomicU64::new(0);
/// Running recordings stopped because nothing finished was left to delete on a full disk.
pub static STOPPED_DISK_FULL: AtomicU64 = AtomicU64::new(0);

/// The exposition text being written: `# HELP`/`# TYPE` once per family, then its samples.
pub struct Text {
    out: String,
}

impl Default for Text {
    fn default() -> Text {
        // a scrape of 128 cameras is ~110 KiB: grown once or twice, not a dozen times
        Text {
            out: String::with_capacity(64 * 1024),
        }
    }
}

/// A label set: `(name, value)` pairs.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

impl Text {
    /// Starts family `name` of `kind` (`counter`, `gauge`, `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: Labels, value: f64) {
        self.line(name, "", labels, None, value);
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of histogram `h` (its family started by the caller).
    pub fn histogram(&mut self, name: &str, labels: Labels, h: &Histogram) {
        let mut seen = 0u64;
        for ((_, le), n) in h.bounds.iter().zip(&h.buckets) {
            seen += n.load(Ordering::Relaxed);
            self.line(name, "_bucket", labels, Some(le), seen as f64);
        }
        let count = seen + h.over.load(Ordering::Relaxed);
        self.line(name, "_bucket", labels, Some("+Inf"), count as f64);
        let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        self.line(name, "_sum", labels, None, sum);
        self.line(name, "_count", labels, None, count as f64);
    }

    /// `<name><suffix>{labels,le="…"} value`
    fn line(&mut self, name: &str, suffix: &str, labels: Labels, le: Option<&str>, value: f64) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            let le = le.map(|v| ("le", v));
            for (i, (k, v)) in labels.iter().copied().chain(le).enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                self.escaped(v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.value(value);
        self.out.push('\n');
    }

    /// A label value: `\`, `"` and line feeds escaped.
    fn escaped(&mut self, v: &str) {
        if !v.contains(['\\', '"', '\n']) {
            self.out.push_str(v);
            return;
        }
        for ch in v.chars() {
            match ch {
                '\\' => self.out.push_str("\\\\"),
                '"' => self.out.push_str("\\\""),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
    }

    fn value(&mut self, v: f64) {
        // whole numbers (counts, bytes) as integers: cheaper to write than a float
        let _ = if v.fract() == 0.0 && v.abs() < 9e15 {
            self.out.push_str(itoa::Buffer::new().format(v as i64));
            Ok(())
        } else if v.is_finite() {
            write!(self.out, "{v}")
        } else if v.is_nan() {
            write!(self.out, "NaN")
        } else {
            write!(self.out, "{}Inf", if v > 0.0 { "+" } else { "-" })
        };
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        static H: Histogram = Histogram::new(&[(0.001, "0.001"), (0.01, "0.01")]);
        H.observe(Duration::from_micros(500));
        H.observe(Duration::from_millis(5));
        H.observe(Duration::from_millis(5));
        H.observe(Duration::from_secs(1));
        assert_eq!(H.count(), 4);
        let mut t = Text::default();
        t.family("x_seconds", "histogram", "a test");
        t.histogram("x_seconds", &[("route", "GET /a\"b\\\n")], &H);
        let text = t.finish();
        let want = r#"x_seconds_bucket{route="GET /a\"b\\\n",le="0.001"} 1"#;
        assert!(text.contains(want), "{text}");
        assert!(text.contains(r#"le="0.01"} 3"#), "{text}");
        assert!(text.contains(r#"le="+Inf"} 4"#), "{text}");
        assert!(
            text.contains(r#"x_seconds_sum{route="GET /a\"b\\\n"} 1.0105"#),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{"), "{text}");
    }

    #[test]
    fn values_that_are_not_finite_are_spelled_as_prometheus_reads_them() {
        let mut t = Text::default();
        t.sample("a", &[], f64::INFINITY);
        t.sample("b", &[], f64::NAN);
        t.sample("c", &[], 3.0);
        assert_eq!(t.finish(), "a +Inf\nb NaN\nc 3\n");
    }
}
