//! The ZeroMQ guide's weather update server and client, ported to msg: a
//! publisher streams random weather for a hundred zip codes, and a client
//! subscribes to one and averages the temperature of 100 updates. The book's
//! "Migrating from ZeroMQ" chapter sets it beside the ZeroMQ version.
//!
//! ```text
//! cargo run --example weather            # zip code 10001
//! cargo run --example weather -- 10042
//! ```

use anyhow::Context as _;
use msg::prelude::*;

/// Updates the client averages.
const UPDATES: usize = 100;

// ANCHOR: server
/// Publishes weather updates until the socket is closed (or the task is
/// dropped). The topic is the zip code; the payload, temperature and
/// relative humidity.
async fn weather_server(publisher: PubSocket) -> anyhow::Result<()> {
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for sent in 0u64.. {
        let zipcode = 10_000 + random.below(100);
        let temperature = random.below(215) as i64 - 80;
        let humidity = 10 + random.below(50);
        publisher.publish(zipcode.to_string(), format!("{temperature} {humidity}"))?;
        if sent % 64 == 63 {
            // `publish` never waits; let the connections' writers run.
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}
// ANCHOR_END: server

// ANCHOR: client
/// Subscribes to one zip code and returns the average temperature of
/// `UPDATES` updates.
async fn weather_client(endpoint: &str, zipcode: &str) -> anyhow::Result<f64> {
    let mut subscriber = SubSocket::new();
    subscriber.subscribe(zipcode.to_owned()).await;
    subscriber.connect(endpoint)?;

    let mut total = 0;
    for _ in 0..UPDATES {
        let update = subscriber.next().await.context("the publisher is gone")?;
        let fields = std::str::from_utf8(update.payload())?;
        let temperature: i64 = fields.split(' ').next().unwrap_or_default().parse()?;
        total += temperature;
    }
    let lost = subscriber.stats().gaps;
    println!("{UPDATES} updates for {zipcode}; {lost} more were dropped on the way");
    Ok(total as f64 / UPDATES as f64)
}
// ANCHOR_END: client

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let zipcode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10001".to_owned());

    // ANCHOR: main
    let publisher = PubSocket::new();
    let endpoint = publisher.bind("tcp://127.0.0.1:0").await?.to_string();
    let server = tokio::spawn(weather_server(publisher));

    let average = weather_client(&endpoint, &zipcode).await?;
    println!("average temperature for zip code {zipcode} was {average:.1}F");
    server.abort();
    // ANCHOR_END: main
    Ok(())
}

/// A xorshift generator: random enough for weather, with no dependency.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
