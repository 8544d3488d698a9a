//! Link shaping for a simulation's links: latency, jitter, loss and bandwidth, from a seed.
//!
//! `net-sim` runs many nodes in one process over libp2p's memory transport, whose links are
//! instant (or over loopback TCP, nearly so). [`Shaped`] wraps one end of such a link (the raw byte stream, below Noise and
//! Yamux) and holds back what the other end wrote until the link would have delivered it:
//!
//! - **Where.** Each end shapes what it *reads*. Every node in a simulation wraps its links,
//!   so each direction of a link is shaped once, at its receiver.
//! - **Chunks.** The unit is a chunk: what one read from the memory link returns, which is
//!   what one write at the other end put in (a Noise frame, about a TCP segment's worth or a
//!   few). Each chunk gets a release time; nothing is readable before it.
//! - **Latency and jitter.** A chunk's one-way delay is `latency` plus a uniform draw from
//!   `-jitter..=+jitter` (never below zero).
//! - **Loss.** The streams are reliable (TCP would retransmit), so a lost segment shows as a
//!   delay: with probability `loss` a chunk also waits one retransmission timeout, `rto`.
//!   Later chunks wait behind it (head-of-line blocking, as on TCP).
//! - **Order.** A chunk is never released before an earlier one: its release time is at
//!   least the previous chunk's. Jitter therefore delays, it never reorders.
//! - **Bandwidth.** With a limit of `b` bytes a second, a chunk of `n` bytes occupies the
//!   direction for `n / b` seconds after the previous chunk has finished; its delay starts
//!   once it is through. A queue forms when more is written than the link carries.
//! - **Bounds.** At most [`MAX_QUEUED`] bytes wait per link end; beyond that the wrapper
//!   stops reading from the memory link, whose own bounded channel then pushes back on the
//!   writer.
//! - **Seed.** Each link end draws from its own generator (SplitMix64) seeded from the
//!   shape's seed and the link's number at this node (in the order links open). The same
//!   scenario therefore draws the same sequences; which link gets which sequence follows
//!   the order connections open, which real scheduling can vary.
//!
//! Timers are tokio's (`tokio::time`), so tests with paused time see exact delays. Outside
//! a tokio runtime the wrapper does not delay anything (it cannot set a timer).
//!
//! The wrapper also counts the bytes a node writes and reads on its links (Noise and Yamux
//! overhead included), and the link ends open, into the node's [`crate::SimNet`].

use std::collections::VecDeque;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

/// Most bytes held back per link end.
pub const MAX_QUEUED: usize = 1 << 20;
/// Most bytes taken from the memory link in one read.
const READ_CHUNK: usize = 16 * 1024;
/// Retransmission timeout used when none is given (Linux's minimum RTO).
pub const DEFAULT_RTO: Duration = Duration::from_millis(200);

/// How a simulated link behaves, per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkShape {
    /// One-way delay.
    pub latency: Duration,
    /// Each chunk's delay varies uniformly by up to this much either way.
    pub jitter: Duration,
    /// Chance (0 to 1) that a chunk is lost and resent, costing `rto` more.
    pub loss: f64,
    /// What a lost chunk costs.
    pub rto: Duration,
    /// Bytes a second each direction carries; `None` is unlimited.
    pub bandwidth: Option<u64>,
    /// Where the random draws start.
    pub seed: u64,
}

impl Default for LinkShape {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            rto: DEFAULT_RTO,
            bandwidth: None,
            seed: 0,
        }
    }
}

/// Bytes written and read on a node's links, and the link ends open now.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) open: AtomicU64,
}

/// SplitMix64: small, fast, and the same everywhere (unlike `StdRng`, whose algorithm may
/// change between `rand` versions).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Mixes two numbers into a seed.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    SplitMix64::new(a ^ b.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// One chunk held back, and when it may be read.
#[derive(Debug)]
struct Chunk {
    release: Instant,
    bytes: Vec<u8>,
}

/// What a link end does with the chunks it reads.
#[derive(Debug)]
struct Shaper {
    shape: LinkShape,
    rng: SplitMix64,
    /// When the previous chunk is released (no chunk goes before it).
    last_release: Option<Instant>,
    /// When the direction has finished carrying what it was given (bandwidth).
    busy_until: Option<Instant>,
}

impl Shaper {
    /// The release time of a chunk of `len` bytes that arrives `now`.
    fn release(&mut self, now: Instant, len: usize) -> Instant {
        let s = &self.shape;
        let mut through = now;
        if let Some(bw) = s.bandwidth.filter(|b| *b > 0) {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let nanos = (len as u128).saturating_mul(1_000_000_000) / u128::from(bw);
            through = start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            self.busy_until = Some(through);
        }
        let mut delay = s.latency;
        if !s.jitter.is_zero() {
            let j = s.jitter.as_secs_f64() * (2.0 * self.rng.unit() - 1.0);
            let d = (s.latency.as_secs_f64() + j).max(0.0);
            delay = Duration::try_from_secs_f64(d).unwrap_or(s.latency);
        }
        if s.loss > 0.0 && self.rng.unit() < s.loss {
            delay = delay.saturating_add(s.rto);
        }
        let release = (through + delay).max(self.last_release.unwrap_or(through));
        self.last_release = Some(release);
        release
    }
}

/// One end of a link: delays what it reads by its [`LinkShape`] (if any) and counts
/// bytes both ways.
#[derive(Debug)]
pub struct Shaped<C> {
    inner: C,
    shaper: Option<Shaper>,
    queue: VecDeque<Chunk>,
    /// Bytes in `queue`.
    queued: usize,
    /// Bytes of the front chunk already read.
    front_read: usize,
    timer: Option<Pin<Box<Sleep>>>,
    eof: bool,
    error: Option<io::Error>,
    traffic: Arc<Traffic>,
}

impl<C> Shaped<C> {
    /// Wraps `inner`; with `shape`, this link end draws from `seed`.
    pub(crate) fn new(
        inner: C,
        shape: Option<LinkShape>,
        seed: u64,
        traffic: Arc<Traffic>,
    ) -> Self {
        // Timers need a tokio runtime; without one, nothing is delayed.
        let shape = shape.filter(|_| tokio::runtime::Handle::try_current().is_ok());
        traffic.open.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            shaper: shape.map(|mut shape| {
                shape.loss = if shape.loss.is_finite() {
                    shape.loss.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                Shaper {
                    shape,
                    rng: SplitMix64::new(seed),
                    last_release: None,
                    busy_until: None,
                }
            }),
            queue: VecDeque::new(),
            queued: 0,
            front_read: 0,
            timer: None,
            eof: false,
            error: None,
            traffic,
        }
    }
}

impl<C> Drop for Shaped<C> {
    fn drop(&mut self) {
        self.traffic.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<C: AsyncRead + Unpin> Shaped<C> {
    /// Moves what the memory link has into the queue, stamped with release times.
    fn fill(&mut self, cx: &mut Context<'_>) {
        let Some(shaper) = self.shaper.as_mut() else {
            return;
        };
        let mut buf = [0u8; READ_CHUNK];
        while !self.eof && self.error.is_none() && self.queued < MAX_QUEUED {
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.traffic.received.fetch_add(n as u64, Ordering::Relaxed);
                    let release = shaper.release(Instant::now(), n);
                    self.queue.push_back(Chunk {
                        release,
                        bytes: buf[..n].to_vec(),
                    });
                    self.queued += n;
                }
                Poll::Ready(Err(e)) => self.error = Some(e),
                Poll::Pending => break,
            }
        }
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Shaped<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.shaper.is_none() {
            let r = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(n)) = &r {
                this.traffic
                    .received
                    .fetch_add(*n as u64, Ordering::Relaxed);
            }
            return r;
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            this.fill(cx);
            let Some(front) = this.queue.front() else {
                if let Some(e) = this.error.take() {
                    return Poll::Ready(Err(e));
                }
                if this.eof {
                    return Poll::Ready(Ok(0));
                }
                // The memory link has nothing and will wake us when it has.
                return Poll::Pending;
            };
            let now = Instant::now();
            if front.release <= now {
                let rest = front.bytes.get(this.front_read..).unwrap_or_default();
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                this.front_read += n;
                if this.front_read >= front.bytes.len() {
                    this.queued = this.queued.saturating_sub(front.bytes.len());
                    this.queue.pop_front();
                    this.front_read = 0;
                }
                return Poll::Ready(Ok(n));
            }
            let release = front.release;
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(release)));
            if timer.deadline() != release {
                timer.as_mut().reset(release);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The release time has come meanwhile: go round again.
        }
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Shaped<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.traffic.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
    use libp2p::Transport as _;
    use libp2p::core::transport::{DialOpts, ListenerId, MemoryTransport, PortUse, TransportEvent};
    use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};

    type End = Shaped<libp2p::core::transport::memory::Channel<Vec<u8>>>;

    static NEXT_PORT: AtomicU64 = AtomicU64::new(7 << 40);

    /// Two connected memory-link ends, each wrapped with `shape`, and each end's counters.
    async fn pair(shape: Option<LinkShape>) -> (End, End, Arc<Traffic>, Arc<Traffic>) {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        let addr: Multiaddr = Protocol::Memory(port).into();
        let mut listener = MemoryTransport::default().boxed();
        listener
            .listen_on(ListenerId::next(), addr.clone())
            .unwrap();
        let dial = MemoryTransport::default()
            .dial(
                addr,
                DialOpts {
                    role: Endpoint::Dialer,
                    port_use: PortUse::New,
                },
            )
            .unwrap();
        let accept = async {
            loop {
                if let TransportEvent::Incoming { upgrade, .. } = listener.select_next_some().await
                {
                    return upgrade.await.unwrap();
                }
            }
        };
        let (a, b) = futures::join!(dial, accept);
        let (ta, tb) = (Arc::new(Traffic::default()), Arc::new(Traffic::default()));
        (
            Shaped::new(a.unwrap(), shape, 1, ta.clone()),
            Shaped::new(b, shape, 2, tb.clone()),
            ta,
            tb,
        )
    }

    fn wan() -> LinkShape {
        LinkShape {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(10),
            loss: 0.2,
            rto: Duration::from_millis(200),
            bandwidth: Some(1_000_000),
            seed: 42,
        }
    }

    #[test]
    fn releases_keep_order_stay_in_bounds_and_repeat_from_a_seed() {
        let run = |seed: u64| {
            let mut s = Shaper {
                shape: LinkShape {
                    seed,
                    bandwidth: None,
                    ..wan()
                },
                rng: SplitMix64::new(seed),
                last_release: None,
                busy_until: None,
            };
            let t0 = Instant::now();
            (0..1000)
                .map(|i| s.release(t0 + Duration::from_millis(i), 100) - t0)
                .collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42), "same seed, same draws");
        assert_ne!(a, run(43), "another seed, other draws");
        assert!(a.windows(2).all(|w| w[0] <= w[1]), "never released early");
        for (i, d) in a.iter().enumerate() {
            // Sent at i ms; delay 40 to 60 ms, plus 200 ms when lost (and whatever an
            // earlier, lost chunk holds it back by).
            let sent = Duration::from_millis(i as u64);
            assert!(*d >= sent + Duration::from_millis(40), "{i}: {d:?}");
            assert!(*d <= sent + Duration::from_millis(260), "{i}: {d:?}");
        }
        // About a fifth of the chunks paid a retransmission: their delay went past what
        // jitter alone allows.
        let mut prev = Duration::ZERO;
        let mut lost = 0;
        for (i, d) in a.iter().enumerate() {
            if *d > Duration::from_millis(i as u64 + 60) && *d > prev {
                lost += 1;
            }
            prev = *d;
        }
        assert!((100..300).contains(&lost), "{lost} of 1000 lost");
    }

    #[test]
    fn bandwidth_spaces_chunks_by_their_size() {
        let mut s = Shaper {
            shape: LinkShape {
                bandwidth: Some(10_000),
                ..LinkShape::default()
            },
            rng: SplitMix64::new(0),
            last_release: None,
            busy_until: None,
        };
        let t0 = Instant::now();
        let r: Vec<_> = (0..3).map(|_| s.release(t0, 1000) - t0).collect();
        assert_eq!(
            r,
            [100, 200, 300].map(Duration::from_millis),
            "1000 bytes at 10 kB/s take 100 ms each, one after another"
        );
        // After a quiet spell the link is free again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(s.release(later, 500) - later, Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn data_arrives_whole_in_order_after_the_latency() {
        let (mut a, mut b, ta, tb) = pair(Some(wan())).await;
        let t0 = Instant::now();
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..(i % 50 + 1) * 37).map(|k| (i + k) as u8).collect();
            a.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
        }
        a.close().await.unwrap();
        drop(a);
        let mut got = Vec::new();
        let mut first = [0u8; 1];
        b.read_exact(&mut first).await.unwrap();
        let waited = Instant::now() - t0;
        assert!(
            waited >= Duration::from_millis(40),
            "nothing readable before the latency (minus jitter): {waited:?}"
        );
        got.push(first[0]);
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, sent, "every byte, in order");
        assert_eq!(ta.sent.load(Ordering::Relaxed), sent.len() as u64);
        assert_eq!(tb.received.load(Ordering::Relaxed), sent.len() as u64);
        // 1 MB/s: the bytes alone take this long to go through.
        let floor = Duration::from_micros(sent.len() as u64);
        assert!(Instant::now() - t0 >= floor, "bandwidth limit held");
    }

    #[tokio::test(start_paused = true)]
    async fn exact_delay_without_jitter_or_loss() {
        let shape = LinkShape {
            latency: Duration::from_millis(30),
            ..LinkShape::default()
        };
        let (mut a, mut b, _, _) = pair(Some(shape)).await;
        for round in 0..3 {
            let t0 = Instant::now();
            a.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            b.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
            let took = Instant::now() - t0;
            assert!(
                took >= Duration::from_millis(30) && took <= Duration::from_millis(31),
                "round {round}: {took:?}"
            );
            // And back the other way.
            let t0 = Instant::now();
            b.write_all(b"pong").await.unwrap();
            a.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"pong");
            assert!(Instant::now() - t0 >= Duration::from_millis(30));
        }
    }

    #[tokio::test]
    async fn without_a_shape_bytes_pass_and_are_counted() {
        let (mut a, mut b, ta, tb) = pair(None).await;
        a.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        a.read_exact(&mut buf).await.unwrap();
        assert_eq!(ta.sent.load(Ordering::Relaxed), 5);
        assert_eq!(ta.received.load(Ordering::Relaxed), 2);
        assert_eq!(tb.sent.load(Ordering::Relaxed), 2);
        assert_eq!(tb.received.load(Ordering::Relaxed), 5);
        assert_eq!(ta.open.load(Ordering::Relaxed), 1);
        drop(a);
        assert_eq!(
            ta.open.load(Ordering::Relaxed),
            0,
            "a closed link is not counted"
        );
    }
}
