//! `meridian-relay`: a user-space TCP relay that makes loopback look like a WAN link. Every byte
//! that crosses it, in either direction, is delivered a fixed delay after it arrived, in order;
//! a half-close (FIN) is passed on after the same delay. This kernel has no `netem` qdisc, so
//! `scripts/wan-bench` puts one route of this relay in front of each node's internal listener:
//! a node advertises the relay's address as its own, so every node-to-node call pays the delay
//! both ways (50 ms each way = a 100 ms round trip).
//!
//! For a map where regions are unequally far apart, `--link SRC_IP/LISTEN=MS` gives the
//! connections one route accepts from one source address their own delay: each node dials its
//! peers from an address of its own (`internal_source` in `cluster.toml`), so the relay in
//! front of a node knows which region calls and delays that pair's traffic as configured.
//!
//! `meridian-relay probe` measures what the relay itself adds beyond the configured delay.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Command line of the relay.
#[derive(Debug, Parser)]
#[command(version, about = "Delaying TCP relay on loopback (WAN emulation without netem).")]
struct Args {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The relay's subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Relays connections until killed.
    Run {
        /// One-way delay added in each direction, in milliseconds.
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
        /// `LISTEN=TARGET` (loopback `ip:port` each): accept on LISTEN, forward to TARGET.
        /// Repeat for more routes.
        #[arg(long = "route", required = true)]
        routes: Vec<String>,
        /// `SRC_IP/LISTEN=MS`: connections that route LISTEN accepts from SRC_IP get MS one-way
        /// instead of `--delay-ms` (one pair of regions of an unequal map). Repeatable.
        #[arg(long = "link")]
        links: Vec<String>,
        /// Bytes (KiB) one direction of a connection may have unacknowledged: a chunk's bytes
        /// count from when it is read until one more delay after it was delivered (its ACK's
        /// way back), so one connection carries at most this much per round trip, like TCP
        /// with this receive window. 0: no limit but the delay line's length (as before).
        #[arg(long, default_value_t = 0)]
        window_kib: u32,
    },
    /// Measures the relay's own cost: ping-pong round trips through a relay route and directly
    /// to an echo server, both on loopback; prints what the relay adds beyond twice the delay.
    Probe {
        /// One-way delay of the relay under test, in milliseconds.
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
        /// Round trips measured (each way: through the relay, and directly).
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Bytes per message.
        #[arg(long, default_value_t = 4096)]
        size: usize,
    },
}

/// Largest read from one socket: one chunk in the delay line.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction of a connection: the relay's "window". When the receiving
/// side does not keep up, the relay stops reading, as TCP would.
const LINE_CHUNKS: usize = 1024;
/// Tokio's timer has millisecond ticks, rounds deadlines up and wakes a little after them
/// (measured here: ~0.9 ms late per hop on average). The writer sleeps until this long before
/// a chunk is due, then yields until it is: a little CPU for delivery on time to a few
/// microseconds, so the relay adds only its configured delay.
const SPIN: Duration = Duration::from_millis(2);
/// Upper bound on the probe's count and message size, so a typo cannot run for hours.
const PROBE_MAX: usize = 100_000;

/// What travels down a delay line: bytes, or the end of the stream, each with its due time.
enum Item {
    /// Bytes to deliver at the instant.
    Data(Instant, Bytes),
    /// The sender half-closed (or failed) at the instant minus the delay: close our write side.
    End(Instant),
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(async {
        match args.command {
            Command::Run { delay_ms, routes, links, window_kib } => {
                run(Duration::from_millis(delay_ms), &routes, &links, window_kib.saturating_mul(1024)).await
            }
            Command::Probe { delay_ms, count, size } => probe(Duration::from_millis(delay_ms), count, size).await,
        }
    })
}

/// Parses `LISTEN=TARGET`; both must be loopback addresses (the relay never leaves the machine).
fn parse_route(route: &str) -> anyhow::Result<(SocketAddr, SocketAddr)> {
    let (listen, target) = route.split_once('=').with_context(|| format!("route {route:?} is not LISTEN=TARGET"))?;
    let parse = |what: &str, a: &str| -> anyhow::Result<SocketAddr> {
        let addr: SocketAddr = a.parse().with_context(|| format!("{what} {a:?} of route {route:?} is not ip:port"))?;
        if !addr.ip().is_loopback() {
            bail!("{what} {addr} of route {route:?} is not a loopback address");
        }
        Ok(addr)
    };
    Ok((parse("listen address", listen)?, parse("target", target)?))
}

/// Most one-way delay a link may be given: a typo must not make a link look dead.
const MAX_LINK_MS: u64 = 10_000;

/// Parses `SRC_IP/LISTEN=MS` (see [`Command::Run`]): the source address, the route it applies
/// to, and its one-way delay.
fn parse_link(link: &str) -> anyhow::Result<(IpAddr, SocketAddr, Duration)> {
    let (pair, ms) = link.split_once('=').with_context(|| format!("link {link:?} is not SRC_IP/LISTEN=MS"))?;
    let (source, listen) = pair.split_once('/').with_context(|| format!("link {link:?} is not SRC_IP/LISTEN=MS"))?;
    let source: IpAddr = source.parse().with_context(|| format!("source {source:?} of link {link:?} is not an IP"))?;
    let listen: SocketAddr =
        listen.parse().with_context(|| format!("route {listen:?} of link {link:?} is not ip:port"))?;
    let ms: u64 = ms.parse().with_context(|| format!("delay {ms:?} of link {link:?} is not a number of ms"))?;
    if !source.is_loopback() || !listen.ip().is_loopback() {
        bail!("link {link:?} names a non-loopback address");
    }
    if ms > MAX_LINK_MS {
        bail!("link {link:?}: at most {MAX_LINK_MS} ms");
    }
    Ok((source, listen, Duration::from_millis(ms)))
}

/// One-way delays of one route: by the caller's source address, else the default.
#[derive(Debug, Clone)]
struct Delays {
    /// For callers not listed in `by_source`.
    default: Duration,
    /// Per caller address (one pair of regions).
    by_source: HashMap<IpAddr, Duration>,
}

impl Delays {
    /// The same delay for every caller.
    fn uniform(default: Duration) -> Self {
        Self { default, by_source: HashMap::new() }
    }

    /// The delay for a connection from `peer`.
    fn for_peer(&self, peer: SocketAddr) -> Duration {
        self.by_source.get(&peer.ip()).copied().unwrap_or(self.default)
    }
}

/// Binds every route, then relays until the process is killed.
async fn run(delay: Duration, routes: &[String], links: &[String], window: u32) -> anyhow::Result<()> {
    let mut per_route: HashMap<SocketAddr, Delays> = HashMap::new();
    let mut parsed = Vec::with_capacity(routes.len());
    for route in routes {
        let (listen, target) = parse_route(route)?;
        per_route.insert(listen, Delays::uniform(delay));
        parsed.push((listen, target));
    }
    for link in links {
        let (source, listen, link_delay) = parse_link(link)?;
        let delays = per_route.get_mut(&listen).with_context(|| format!("link {link:?} names no --route"))?;
        delays.by_source.insert(source, link_delay);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (listen, target) in parsed {
        let delays = per_route.remove(&listen).unwrap_or_else(|| Delays::uniform(delay));
        let listener = TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "meridian-relay: {listen} -> {target}, {} ms each way{}",
            delay.as_millis(),
            delays.by_source.iter().map(|(ip, d)| format!(", {} ms from {ip}", d.as_millis())).collect::<String>()
        );
        tasks.spawn(serve(listener, target, delays, window));
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a route task failed")??;
    }
    Ok(())
}

/// Accepts connections on one route for ever; each gets its own pair of delay lines, delayed
/// as `delays` says for its caller.
async fn serve(listener: TcpListener, target: SocketAddr, delays: Delays, window: u32) -> anyhow::Result<()> {
    loop {
        let (inbound, peer) = listener.accept().await.context("accept")?;
        let delay = delays.for_peer(peer);
        tokio::spawn(async move {
            if let Err(e) = relay_connection(inbound, target, delay, window).await {
                eprintln!("meridian-relay: connection from {peer} to {target}: {e:#}");
            }
        });
    }
}

/// Connects to the target and runs both directions until each has ended.
async fn relay_connection(inbound: TcpStream, target: SocketAddr, delay: Duration, window: u32) -> anyhow::Result<()> {
    let outbound = TcpStream::connect(target).await.with_context(|| format!("cannot connect to {target}"))?;
    // Small messages must not wait for Nagle or the peer's delayed ACK: only our delay counts.
    inbound.set_nodelay(true)?;
    outbound.set_nodelay(true)?;
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let (up, down) =
        tokio::join!(delay_line(in_read, out_write, delay, window), delay_line(out_read, in_write, delay, window));
    up.and(down)
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, in order; ends the write
/// side `delay` after the read side ended. A read error ends the stream like a FIN.
async fn delay_line(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Duration,
    window: u32,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Item>(LINE_CHUNKS);
    // Bytes in flight (read, not yet acknowledged): taken by the reader, given back one delay
    // after delivery. Unlimited when `window` is 0.
    let credit = (window > 0).then(|| std::sync::Arc::new(tokio::sync::Semaphore::new(window as usize)));
    let writer_credit = credit.clone();
    let reader = async move {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            let room = match &credit {
                None => CHUNK,
                // At least one byte of credit before reading, and no more read than there is.
                Some(credit) => {
                    let Ok(first) = credit.acquire().await else { return };
                    first.forget();
                    let more = credit.available_permits().min(CHUNK - 1);
                    match credit.try_acquire_many(u32::try_from(more).unwrap_or(0)) {
                        Ok(taken) => {
                            taken.forget();
                            1 + more
                        }
                        Err(_) => 1,
                    }
                }
            };
            buf.reserve(room);
            let read = {
                let mut limited = (&mut from).take(room as u64);
                limited.read_buf(&mut buf).await
            };
            // Credit taken for bytes not read goes back at once.
            if let (Some(credit), Ok(n)) = (&credit, &read) {
                credit.add_permits(room.saturating_sub(*n));
            }
            let due = Instant::now() + delay;
            let item = match read {
                Ok(n) if n > 0 => Item::Data(due, buf.split().freeze()),
                _ => Item::End(due),
            };
            let end = matches!(item, Item::End(_));
            // The writer is gone (its peer failed): nothing more to deliver.
            if tx.send(item).await.is_err() || end {
                return;
            }
        }
    };
    let writer = async move {
        while let Some(item) = rx.recv().await {
            let due = match &item {
                Item::Data(due, _) | Item::End(due) => *due,
            };
            wait_until(due).await;
            match item {
                Item::Data(_, bytes) => {
                    to.write_all(&bytes).await.context("write")?;
                    if let Some(credit) = &writer_credit {
                        // The ACK of these bytes takes one more delay to come back.
                        let (credit, n) = (credit.clone(), bytes.len());
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            credit.add_permits(n);
                        });
                    }
                }
                Item::End(_) => {
                    // The peer may already be gone; the stream is over either way.
                    let _ = to.shutdown().await;
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    let ((), written) = tokio::join!(reader, writer);
    written
}

/// Returns at `due`, give or take a few microseconds (see [`SPIN`]).
async fn wait_until(due: Instant) {
    if let Some(early) = due.checked_sub(SPIN).filter(|early| *early > Instant::now()) {
        tokio::time::sleep_until(early.into()).await;
    }
    // Bounded by SPIN: `due` is at most that far ahead now.
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// Echoes every byte back until the client closes.
async fn echo(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (mut r, mut w) = stream.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// `count` ping-pong round trips of `size` bytes on one connection to `addr`; their durations.
async fn round_trips(addr: SocketAddr, count: usize, size: usize) -> anyhow::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect(addr).await.with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    let message = vec![0x5a_u8; size];
    let mut back = vec![0_u8; size];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let began = Instant::now();
        stream.write_all(&message).await?;
        stream.read_exact(&mut back).await?;
        times.push(began.elapsed());
    }
    Ok(times)
}

/// Mean, p50 and p99 (nearest rank) of `samples`, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len().max(1);
    let rank = |p: f64| samples.get(((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1).copied();
    let mean = samples.iter().sum::<Duration>().as_secs_f64() * 1000.0 / n as f64;
    (mean, rank(50.0).map_or(0.0, ms), rank(99.0).map_or(0.0, ms))
}

/// Measures the relay's own cost (see [`Command::Probe`]) and prints it.
async fn probe(delay: Duration, count: usize, size: usize) -> anyhow::Result<()> {
    if count == 0 || count > PROBE_MAX || size == 0 || size > PROBE_MAX {
        bail!("--count and --size must be between 1 and {PROBE_MAX}");
    }
    let echo_listener = TcpListener::bind("127.0.0.1:0").await?;
    let echo_addr = echo_listener.local_addr()?;
    tokio::spawn(echo(echo_listener));
    let relay_listener = TcpListener::bind("127.0.0.1:0").await?;
    let relay_addr = relay_listener.local_addr()?;
    tokio::spawn(serve(relay_listener, echo_addr, Delays::uniform(delay), 0));

    let mut direct = round_trips(echo_addr, count, size).await?;
    let mut relayed = round_trips(relay_addr, count, size).await?;
    let (d_mean, d_p50, d_p99) = summary(&mut direct);
    let (r_mean, r_p50, r_p99) = summary(&mut relayed);
    let floor = 2.0 * delay.as_secs_f64() * 1000.0;
    println!(
        "{{\"delay_ms\":{},\"count\":{count},\"size\":{size},\"direct_mean_ms\":{d_mean:.3},\"direct_p50_ms\":{d_p50:.3},\"direct_p99_ms\":{d_p99:.3},\"relayed_mean_ms\":{r_mean:.3},\"relayed_p50_ms\":{r_p50:.3},\"relayed_p99_ms\":{r_p99:.3},\"added_mean_ms\":{:.3},\"added_p99_ms\":{:.3}}}",
        delay.as_millis(),
        r_mean - floor - d_mean,
        r_p99 - floor - d_p50,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_stay_on_loopback() {
        let (listen, target) = parse_route("127.0.0.1:7101=127.0.0.1:7001").expect("valid route");
        assert_eq!((listen.port(), target.port()), (7101, 7001));
        for bad in ["127.0.0.1:1", "127.0.0.1:1=10.0.0.1:2", "0.0.0.0:1=127.0.0.1:2", "x=127.0.0.1:2"] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links_parse_and_stay_on_loopback() {
        let (source, listen, delay) = parse_link("127.0.0.12/127.0.0.1:7101=15").expect("valid link");
        assert_eq!((source.to_string(), listen.port(), delay), ("127.0.0.12".into(), 7101, Duration::from_millis(15)));
        for bad in ["127.0.0.12/127.0.0.1:7101", "10.0.0.1/127.0.0.1:1=5", "127.0.0.2/127.0.0.1:1=99999", "x/y=1"] {
            assert!(parse_link(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_link_delays_its_source_only() {
        let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target_addr = target.local_addr().expect("addr");
        let relay = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay_addr = relay.local_addr().expect("addr");
        let source: IpAddr = "127.0.0.23".parse().expect("ip");
        let delays = Delays {
            default: Duration::from_millis(1),
            by_source: HashMap::from([(source, Duration::from_millis(60))]),
        };
        tokio::spawn(serve(relay, target_addr, delays, 0));
        tokio::spawn(echo(target));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(source, 0)).expect("bind the source address");
        let far = socket.connect(relay_addr).await.expect("connect from the linked source");
        let near = TcpStream::connect(relay_addr).await.expect("connect from 127.0.0.1");
        let ping = |mut stream: TcpStream| async move {
            let began = Instant::now();
            stream.write_all(b"ping").await.expect("write");
            let mut back = [0_u8; 4];
            stream.read_exact(&mut back).await.expect("read");
            began.elapsed()
        };
        let (far, near) = tokio::join!(ping(far), ping(near));
        assert!(far >= Duration::from_millis(120), "the linked source pays 2 x 60 ms, took {far:?}");
        assert!(near < Duration::from_millis(60), "other sources pay the default, took {near:?}");
    }

    #[tokio::test]
    async fn bytes_and_the_half_close_arrive_in_order() {
        let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let target_addr = target.local_addr().expect("addr");
        let relay = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay_addr = relay.local_addr().expect("addr");
        tokio::spawn(serve(relay, target_addr, Delays::uniform(Duration::from_millis(1)), 0));
        tokio::spawn(echo(target));
        let mut client = TcpStream::connect(relay_addr).await.expect("connect");
        let sent: Vec<u8> = (0..300_000_u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = client.split();
        let writing = async {
            w.write_all(&sent).await.expect("write");
            w.shutdown().await.expect("half-close");
        };
        let mut got = Vec::new();
        let reading = r.read_to_end(&mut got);
        let ((), read) = tokio::join!(writing, reading);
        read.expect("read to the end: the FIN came back through both delay lines");
        assert!(got == sent, "the bytes came back changed or out of order");
    }
}
