//! `metachat-load`: an open-loop load generator at a fixed rate, for the figures wrk cannot
//! give (wrk keeps a fixed number of requests in flight, so a slow answer delays the next
//! request and hides its own cost). Request `i` is due at `start + i / rate`, whether or not
//! earlier ones were answered, and its latency counts from when it was due, not from when it
//! was sent: a stalled server shows in the percentiles (no coordinated omission). Due
//! requests wait for one of `--connections` connections; the timer wakes about every
//! millisecond, which bounds what the percentiles can resolve.
//!
//! Usage: metachat-load --url http://127.0.0.1:8080 --rate 1000 --seconds 5
//!                      [--connections 64] (--paths FILE | --post PATH --body FILE)
//!
//! `--paths`: GET each line of FILE in turn. `--post`: POST FILE's body, with `{n}` replaced
//! by the request's number. Prints one JSON object: requests sent, answered 2xx, failed, the
//! rate achieved, and the latency percentiles in milliseconds.

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
    rate: f64,
    seconds: f64,
    connections: usize,
    work: Work,
}

fn args() -> anyhow::Result<Args> {
    let mut argv = std::env::args().skip(1);
    let (mut url, mut rate, mut seconds, mut connections) = (None, None, 5.0, 64);
    let (mut paths, mut post, mut body) = (None, None, None);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--rate" => rate = Some(value()?.parse::<f64>().context("--rate")?),
            "--seconds" => seconds = value()?.parse().context("--seconds")?,
            "--connections" => connections = value()?.parse().context("--connections")?,
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
    let rate = rate.context("--rate is required")?;
    if !(rate > 0.0 && seconds > 0.0 && connections > 0) {
        bail!("--rate, --seconds and --connections must be positive");
    }
    Ok(Args {
        url: url.context("--url is required")?,
        rate,
        seconds,
        connections,
        work,
    })
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
    let total = (args.rate * args.seconds).round() as u64;
    let slots = Arc::new(Semaphore::new(args.connections));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let work = Arc::new(args.work);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut next = 0u64;
    while next < total {
        // Every request due by now goes out; then sleep until the next one is due.
        let now = Instant::now();
        while next < total {
            let due = start + Duration::from_secs_f64(next as f64 / args.rate);
            if due > now {
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
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire().await.expect("never closed");
                let request = match &*work {
                    Work::Get(paths) => {
                        client.get(format!("{url}{}", paths[n as usize % paths.len()]))
                    }
                    Work::Post { path, body } => client
                        .post(format!("{url}{path}"))
                        .header("Content-Type", "application/json")
                        .body(body.replace("{n}", &n.to_string())),
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
        if next < total {
            let due = start + Duration::from_secs_f64(next as f64 / args.rate);
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
        "rate": args.rate,
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
