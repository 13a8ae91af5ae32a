//! Prometheus metrics without a client library: counters, gauges and histograms, each a
//! family with fixed label names, registered in one process-wide registry and rendered in
//! the Prometheus text exposition format (version 0.0.4) by [`render`].
//!
//! Families are created once, as statics (`LazyLock`), by the crate that owns what they
//! measure; [`render`] shows every family created so far. Label values must be bounded
//! (a route template, a method, a status), never an id or user input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the latency histograms: 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

trait Family: Send + Sync {
    fn render(&self, out: &mut String);
}

fn families() -> MutexGuard<'static, Vec<Arc<dyn Family>>> {
    static FAMILIES: OnceLock<Mutex<Vec<Arc<dyn Family>>>> = OnceLock::new();
    FAMILIES
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Every family created so far, in the text exposition format, sorted by name.
pub fn render() -> String {
    let families: Vec<Arc<dyn Family>> = families().clone();
    let mut rendered: Vec<String> = families
        .iter()
        .map(|f| {
            let mut out = String::new();
            f.render(&mut out);
            out
        })
        .collect();
    rendered.sort();
    rendered.concat()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the families share: name, help, label names, and the series by label values.
struct Inner<V> {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, V>>,
}

impl<V: Default + Clone> Inner<V> {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        debug_assert!(valid_name(name), "metric name {name:?}");
        debug_assert!(labels.iter().all(|l| valid_name(l) && *l != "le"));
        let series = if labels.is_empty() {
            // A family without labels has its one series from the start (reads as 0).
            BTreeMap::from([(Vec::new(), V::default())])
        } else {
            BTreeMap::new()
        };
        Self {
            name,
            help,
            kind,
            labels,
            series: Mutex::new(series),
        }
    }

    fn update(&self, values: &[&str], f: impl FnOnce(&mut V)) {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "{}: label values for {:?}",
            self.name,
            self.labels
        );
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        f(lock(&self.series).entry(key).or_default());
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
    }

    fn label_set(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let mut pairs: Vec<String> = self
            .labels
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
            .collect();
        if let Some((k, v)) = extra {
            pairs.push(format!("{k}=\"{v}\""));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        }
    }
}

/// A monotonically increasing count per label set (`*_total`).
#[derive(Clone)]
pub struct CounterVec(Arc<Inner<u64>>);

impl CounterVec {
    /// Creates and registers the family.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        debug_assert!(
            name.ends_with("_total"),
            "a counter's name ends in _total: {name}"
        );
        let inner = Arc::new(Inner::new(name, help, "counter", labels));
        families().push(inner.clone());
        Self(inner)
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    pub fn add(&self, values: &[&str], n: u64) {
        self.0.update(values, |v| *v += n);
    }

    /// The current count of a label set (0 if never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.0.series).get(&key).copied().unwrap_or(0)
    }
}

impl Family for Inner<u64> {
    fn render(&self, out: &mut String) {
        self.header(out);
        for (values, v) in lock(&self.series).iter() {
            let _ = writeln!(out, "{}{} {v}", self.name, self.label_set(values, None));
        }
    }
}

/// A value that goes up and down per label set.
#[derive(Clone)]
pub struct GaugeVec(Arc<Inner<f64>>);

impl GaugeVec {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        let inner = Arc::new(Inner::new(name, help, "gauge", labels));
        families().push(inner.clone());
        Self(inner)
    }

    pub fn set(&self, values: &[&str], value: f64) {
        self.0.update(values, |v| *v = value);
    }

    pub fn add(&self, values: &[&str], delta: f64) {
        self.0.update(values, |v| *v += delta);
    }

    /// Sets the value to `value` if that is higher.
    pub fn update_max(&self, values: &[&str], value: f64) {
        self.0.update(values, |v| *v = v.max(value));
    }

    /// Stops exposing the series (what it measured no longer happens in this process).
    pub fn remove(&self, values: &[&str]) {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.0.series).remove(&key);
    }
}

impl Family for Inner<f64> {
    fn render(&self, out: &mut String) {
        self.header(out);
        for (values, v) in lock(&self.series).iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                self.label_set(values, None),
                number(*v)
            );
        }
    }
}

/// Observations counted into buckets per label set (`*_seconds` for durations).
#[derive(Clone)]
pub struct HistogramVec(Arc<Histogram>);

#[derive(Clone, Default)]
struct Buckets {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

struct Histogram {
    inner: Inner<Buckets>,
    bounds: &'static [f64],
}

impl HistogramVec {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        debug_assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "{name}: bucket bounds"
        );
        let histogram = Arc::new(Histogram {
            inner: Inner::new(name, help, "histogram", labels),
            bounds,
        });
        families().push(histogram.clone());
        Self(histogram)
    }

    pub fn observe(&self, values: &[&str], value: f64) {
        let bounds = self.0.bounds;
        self.0.inner.update(values, |b| {
            if b.counts.is_empty() {
                b.counts = vec![0; bounds.len()];
            }
            if let Some(i) = bounds.iter().position(|bound| value <= *bound) {
                b.counts[i] += 1;
            }
            b.sum += value;
            b.count += 1;
        });
    }
}

impl Family for Histogram {
    fn render(&self, out: &mut String) {
        let inner = &self.inner;
        inner.header(out);
        for (values, b) in lock(&inner.series).iter() {
            let mut cumulative = 0;
            for (i, bound) in self.bounds.iter().enumerate() {
                cumulative += b.counts.get(i).copied().unwrap_or(0);
                let le = number(*bound);
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    inner.name,
                    inner.label_set(values, Some(("le", &le)))
                );
            }
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                inner.name,
                inner.label_set(values, Some(("le", "+Inf"))),
                b.count
            );
            let labels = inner.label_set(values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", inner.name, number(b.sum));
            let _ = writeln!(out, "{}_count{labels} {}", inner.name, b.count);
        }
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let requests = CounterVec::new("test_requests_total", "Requests.", &["method", "status"]);
        requests.inc(&["GET", "200"]);
        requests.add(&["GET", "200"], 2);
        requests.inc(&["POST", "a\"b\\c\nd"]);
        let latency =
            HistogramVec::new("test_latency_seconds", "Latency.", &["route"], &[0.1, 1.0]);
        latency.observe(&["/x"], 0.05);
        latency.observe(&["/x"], 0.5);
        latency.observe(&["/x"], 3.0);
        let up = GaugeVec::new("test_up", "Up.", &[]);
        up.set(&[], 1.0);
        let text = render();
        assert!(
            text.contains("# TYPE test_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("test_requests_total{method=\"GET\",status=\"200\"} 3\n"));
        assert!(text.contains(r#"test_requests_total{method="POST",status="a\"b\\c\nd"} 1"#));
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"));
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"));
        assert!(text.contains("test_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("test_latency_seconds_sum{route=\"/x\"} 3.55\n"));
        assert!(text.contains("test_latency_seconds_count{route=\"/x\"} 3\n"));
        assert!(text.contains("# TYPE test_up gauge\ntest_up 1\n"), "{text}");
        assert_eq!(requests.get(&["GET", "200"]), 3);
    }
}
