//! Load generator for the master's lease path (scripts/bench-master.sh):
//! N concurrent clients, each asking for upload leases back to back over
//! its own keep-alive connection, for a fixed time. Prints leases/s and
//! the p50/p90/p99/max latency, as text and as one JSON line.
//!
//! cargo run --release --example bench_master -- URL NODE_TOKEN SITE_UUID [CLIENTS] [SECONDS]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench_master URL NODE_TOKEN SITE_UUID [CLIENTS=50] [SECONDS=10]");
        std::process::exit(2);
    }
    let url = format!("{}/api/v1/node/leases", args[1].trim_end_matches('/'));
    let token = args[2].clone();
    let body = format!(
        r#"{{"site_uuid":"{}","purpose":"upload","estimated_bytes":1000000}}"#,
        args[3]
    );
    let clients: usize = args.get(4).map_or(50, |s| s.parse().unwrap());
    let secs: u64 = args.get(5).map_or(10, |s| s.parse().unwrap());

    // Warm-up: one lease each, so connections and caches are up.
    let start_at = Instant::now() + Duration::from_millis(500);
    let deadline = start_at + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token, body) = (url.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let send = || {
                client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
            };
            let _ = send().await.and_then(|r| r.error_for_status());
            tokio::time::sleep_until(start_at.into()).await;
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                match send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i].as_secs_f64() * 1000.0
    };
    let rate = all.len() as f64 / secs as f64;
    println!(
        "clients {clients}, {secs} s: {} leases, {rate:.0} leases/s, errors {errors}",
        all.len()
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "{{\"clients\":{clients},\"seconds\":{secs},\"leases\":{},\"leases_per_sec\":{rate:.1},\"errors\":{errors},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        all.len(),
        pct(0.50),
        pct(0.99)
    );
}
