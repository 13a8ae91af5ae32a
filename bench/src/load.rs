//! `metachat-load`: an open-loop load generator at a fixed rate, for the figures wrk cannot
//! give (wrk keeps a fixed number of requests in flight, so a slow answer delays the next
//! request and hides its own cost). Request `i` is due at `start + i / rate`, whether or not
//! earlier ones were answered, and its latency counts from when it was due, not from when it
//! was sent: a stalled server shows in the percentiles (no coordinated omission). Due
//! requests wait for one of `--connections` connections; the timer wakes about every
//! millisecond, which bounds what the percentiles can resolve.
//!
//! With `--requests N` instead of a rate it sends N requests as fast as its connections are
//! answered (closed loop: what seeding a large history needs).
//!
//! Usage: metachat-load --url http://127.0.0.1:8080 (--rate 1000 --seconds 5 | --requests N)
//!                      [--connections 64] (--paths FILE | --post PATH --body FILE)
//!
//! `--paths`: GET each line of FILE in turn. `--post`: POST FILE's body, in which `{n}` is
//! replaced by the request's number, `{past:D}` by a time (RFC 3339, UTC) drawn at random
//! within the last D days, and `{words:K}` by K words drawn at random from a journaling
//! vocabulary. Prints one JSON object: requests sent, answered 2xx, failed, the rate
//! achieved, and the latency percentiles in milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Mutex, Semaphore};

enum Work {
    Get(Vec<String>),
    Post { path: String, body: String },
}

struct Args {
    url: String,
    /// Requests a second, or `None`: `requests` as fast as they are answered.
    rate: Option<f64>,
    seconds: f64,
    requests: Option<u64>,
    connections: usize,
    work: Work,
}

fn args() -> anyhow::Result<Args> {
    let mut argv = std::env::args().skip(1);
    let (mut url, mut rate, mut seconds, mut connections) = (None, None, 5.0, 64);
    let mut requests = None;
    let (mut paths, mut post, mut body) = (None, None, None);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--rate" => rate = Some(value()?.parse::<f64>().context("--rate")?),
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--connections" => connections = value()?.parse().context("--connections")?,
            "--requests" => requests = Some(value()?.parse::<u64>().context("--requests")?),
            "--paths" => paths = Some(value()?),
            "--post" => post = Some(value()?),
            "--body" => body = Some(value()?),
            other => bail!("unknown argument {other} (see the usage in bench/src/load.rs)"),
        }
    }
    let work = match (paths, post, body) {
        (Some(file), None, None) => {
            let text = std::fs::read_to_string(&file).with_context(|| file.clone())?;
            let paths: Vec<String> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(Into::into)
                .collect();
            if paths.is_empty() {
                bail!("{file} lists no path");
            }
            Work::Get(paths)
        }
        (None, Some(path), Some(file)) => Work::Post {
            path,
            body: std::fs::read_to_string(&file).with_context(|| file.clone())?,
        },
        _ => bail!("give either --paths FILE or --post PATH --body FILE"),
    };
    if rate.is_some() == requests.is_some() {
        bail!("give either --rate (with --seconds) or --requests");
    }
    if !(rate.is_none_or(|r| r > 0.0) && seconds > 0.0 && connections > 0) {
        bail!("--rate, --seconds and --connections must be positive");
    }
    Ok(Args {
        url: url.context("--url is required")?,
        rate,
        seconds,
        requests,
        connections,
        work,
    })
}

const VOCABULARY: &[&str] = &[
    "today",
    "walked",
    "river",
    "calm",
    "light",
    "golden",
    "birds",
    "loud",
    "listened",
    "long",
    "morning",
    "coffee",
    "friend",
    "talked",
    "work",
    "meeting",
    "tired",
    "happy",
    "sad",
    "anxious",
    "grateful",
    "hopeful",
    "saw",
    "heard",
    "felt",
    "touched",
    "warm",
    "cold",
    "rain",
    "sun",
    "garden",
    "plan",
    "tomorrow",
    "remember",
    "yesterday",
    "think",
    "wonder",
    "learn",
    "read",
    "book",
    "music",
    "sang",
    "danced",
    "ran",
    "slept",
    "dreamed",
    "family",
    "mother",
    "father",
    "child",
    "laughed",
    "cried",
    "quiet",
    "noisy",
    "bright",
    "dark",
    "soft",
    "rough",
    "sweet",
    "bitter",
    "city",
    "home",
    "travel",
    "train",
];

/// A small deterministic generator (SplitMix64) per request: bodies differ, runs repeat.
fn random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The body of request `n`: `{n}`, `{past:D}` and `{words:K}` replaced.
fn body_of(template: &str, n: u64, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut state = n;
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let field = &rest[open + 1..open + close];
        match field.split_once(':') {
            None if field == "n" => out.push_str(&n.to_string()),
            Some(("past", days)) if days.parse::<u64>().is_ok() => {
                let span = days.parse::<u64>().unwrap_or(1).max(1) * 86_400;
                let ago = chrono::Duration::seconds((random(&mut state) % span) as i64);
                out.push_str(&(now - ago).format("%Y-%m-%dT%H:%M:%SZ").to_string());
            }
            Some(("words", k)) if k.parse::<usize>().is_ok() => {
                let words: Vec<&str> = (0..k.parse::<usize>().unwrap_or(0))
                    .map(|_| VOCABULARY[random(&mut state) as usize % VOCABULARY.len()])
                    .collect();
                out.push_str(&words.join(" "));
            }
            _ => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(30))
        .build()?;
    let total = match (args.rate, args.requests) {
        (Some(rate), _) => (rate * args.seconds).round() as u64,
        (None, requests) => requests.unwrap_or(0),
    };
    let slots = Arc::new(Semaphore::new(args.connections));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let work = Arc::new(args.work);
    let now = chrono::Utc::now();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut next = 0u64;
    while next < total {
        // Every request due by now goes out (all of them, closed loop: the connections
        // pace them); then sleep until the next one is due.
        let clock = Instant::now();
        while next < total {
            let due = match args.rate {
                Some(rate) => start + Duration::from_secs_f64(next as f64 / rate),
                None => clock,
            };
            if due > clock {
                break;
            }
            let (client, slots, latencies, failed, work) = (
                client.clone(),
                slots.clone(),
                latencies.clone(),
                failed.clone(),
                work.clone(),
            );
            let url = args.url.clone();
            let n = next;
            let closed_loop = args.rate.is_none();
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire().await.expect("never closed");
                // Closed loop: from when a connection took it.
                let due = if closed_loop { Instant::now() } else { due };
                let request = match &*work {
                    Work::Get(paths) => {
                        client.get(format!("{url}{}", paths[n as usize % paths.len()]))
                    }
                    Work::Post { path, body } => client
                        .post(format!("{url}{path}"))
                        .header("Content-Type", "application/json")
                        .body(body_of(body, n, now)),
                };
                let ok = match request.send().await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies
                        .lock()
                        .await
                        .push(due.elapsed().as_secs_f64() * 1000.0);
                } else {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }));
            next += 1;
        }
        if let (true, Some(rate)) = (next < total, args.rate) {
            let due = start + Duration::from_secs_f64(next as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut sorted = std::mem::take(&mut *latencies.lock().await);
    sorted.sort_by(f64::total_cmp);
    let result = serde_json::json!({
        "rate": args.rate.unwrap_or(0.0),
        "sent": total,
        "ok": sorted.len(),
        "errors": failed.load(std::sync::atomic::Ordering::Relaxed),
        "achieved_rate": sorted.len() as f64 / elapsed,
        "p50_ms": percentile(&sorted, 50.0),
        "p90_ms": percentile(&sorted, 90.0),
        "p99_ms": percentile(&sorted, 99.0),
        "max_ms": sorted.last().copied().unwrap_or(0.0),
    });
    println!("{result}");
    Ok(())
}
