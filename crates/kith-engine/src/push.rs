//! Push wake-ups: a mailbox tells an offline device that mail is waiting by POSTing to the
//! push endpoint the device registered (UnifiedPush style: the URL belongs to a push server
//! that forwards the POST to the device's distributor app).
//!
//! What the mailbox sends carries nothing about the mail: a fixed body ([`WAKE_BODY`]), no
//! sender, no message id, no count. The device, woken, connects to its mailboxes and fetches.
//!
//! Data flow and bounds:
//!
//! 1. The mailbox core (`crate::cores::mailbox`) decides in the deposit's transaction whether
//!    a device gets a wake-up (not connected, has an endpoint, none sent in the last
//!    [`WAKE_EVERY`]); the engine actor queues the URL only after that transaction
//!    committed ([`Waker::wake`], never blocking: beyond [`WAKE_QUEUE`] waiting wake-ups,
//!    new ones are dropped).
//! 2. One worker task takes URLs off the queue and runs each POST in its own task, at most
//!    [`WAKE_CONCURRENCY`] at once, each attempt limited to [`WAKE_TIMEOUT`], with at most
//!    [`WAKE_ATTEMPTS`] attempts.
//!
//! Server-side request forgery: endpoints come from devices, so a mailbox POSTs only to
//! public unicast addresses ([`is_public_unicast`]: no loopback, private, link-local,
//! shared, reserved or documentation ranges, nor IPv6 forms carrying such an IPv4 address),
//! both when the device sets the endpoint (IP literals in any form the HTTP client reads,
//! `localhost`) and when it resolves the name for each POST (a name may point anywhere, and
//! may change). It follows no redirects and uses no proxy.
//! Plain `http` is refused too. Operators can allow both (tests, LAN-only setups).
//!
//! Push URLs carry secrets (the token in the path): only the host is ever logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use kith_proto::wire::check_push_endpoint;

pub use crate::public_ip::is_public_unicast;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

/// At most one wake-up per device in this long; deposits inside the window send none.
pub const WAKE_EVERY: Duration = Duration::from_secs(30);
/// Most wake-up POSTs in flight at once.
pub const WAKE_CONCURRENCY: usize = 16;
/// Most wake-ups waiting for a free slot; more are dropped.
pub const WAKE_QUEUE: usize = 256;
/// Longest one POST attempt may take.
pub const WAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per wake-up (the second after [`WAKE_RETRY_AFTER`], only on a network error or
/// a 5xx/429 answer).
pub const WAKE_ATTEMPTS: u32 = 2;
/// Pause before the second attempt.
pub const WAKE_RETRY_AFTER: Duration = Duration::from_secs(2);
/// The body of every wake-up: the same for every device and every message.
pub const WAKE_BODY: &[u8] = b"kith: wake up";

/// Which endpoints a mailbox may POST to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushPolicy {
    /// Allow loopback, private and link-local addresses (tests, LAN-only setups).
    pub allow_private: bool,
    /// Allow plain `http`.
    pub allow_http: bool,
}

/// Why an endpoint is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Not a well-formed http(s) URL.
    #[error("not a valid push endpoint (an http or https URL of at most 1024 bytes)")]
    Malformed,
    /// Plain http, and the mailbox does not allow it.
    #[error("plain http is not allowed")]
    PlainHttp,
    /// An address that is not public unicast (loopback, private, link-local, reserved...).
    #[error("private, loopback or link-local addresses are not allowed")]
    Private,
}

/// Checks an endpoint against a mailbox's policy, as far as it can be without resolving the
/// host name: the form, the scheme, IP literals and `localhost`.
pub fn check_endpoint(url: &str, policy: PushPolicy) -> Result<(), EndpointError> {
    let ep = check_push_endpoint(url).map_err(|_| EndpointError::Malformed)?;
    if !ep.https && !policy.allow_http {
        return Err(EndpointError::PlainHttp);
    }
    if policy.allow_private {
        return Ok(());
    }
    // The host as the HTTP client will read it: URL parsing turns numeric forms such as
    // `2130706433`, `0x7f.1` or `127.1` into IPv4 addresses, which it then dials without
    // asking the resolver.
    let parsed = reqwest::Url::parse(url).map_err(|_| EndpointError::Malformed)?;
    let host = parsed.host_str().unwrap_or(ep.host).to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(EndpointError::Private);
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>()
        && !is_public_unicast(ip)
    {
        return Err(EndpointError::Private);
    }
    Ok(())
}

/// The host of an endpoint, for logs (the path and query hold the secret).
pub fn log_host(url: &str) -> String {
    check_push_endpoint(url)
        .map(|e| e.host.to_string())
        .unwrap_or_else(|_| "<malformed>".into())
}

/// Resolves names for wake-up POSTs, keeping only addresses the policy allows.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public_unicast(a.ip()))
                .take(16)
                .collect();
            if found.is_empty() {
                return Err("the push host resolves to no allowed address".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The handle the engine uses to queue wake-ups; cheap to clone.
#[derive(Debug, Clone)]
pub struct Waker {
    tx: mpsc::Sender<String>,
}

impl Waker {
    /// Starts the worker. Fails only if the HTTP client cannot be built (no TLS roots).
    pub fn spawn(policy: PushPolicy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(WAKE_TIMEOUT)
            .connect_timeout(WAKE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!policy.allow_http)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: policy.allow_private,
            }))
            .user_agent("kith-mailbox")
            .build()
            .map_err(|e| e.without_url().to_string())?;
        let (tx, rx) = mpsc::channel(WAKE_QUEUE);
        tokio::spawn(worker(client, policy, rx));
        Ok(Self { tx })
    }

    /// Queues a wake-up; drops it (with a debug log) when the queue is full.
    pub fn wake(&self, url: String) {
        if self.tx.try_send(url).is_err() {
            debug!("wake-up queue full; dropped one");
        }
    }
}

async fn worker(client: reqwest::Client, policy: PushPolicy, mut rx: mpsc::Receiver<String>) {
    let slots = Arc::new(Semaphore::new(WAKE_CONCURRENCY));
    while let Some(url) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        tokio::spawn(async move {
            post(&client, policy, &url).await;
            drop(permit);
        });
    }
}

async fn post(client: &reqwest::Client, policy: PushPolicy, url: &str) {
    let host = log_host(url);
    // Checked again here: the policy may have changed since the device set it.
    if let Err(e) = check_endpoint(url, policy) {
        debug!(%host, error = %e, "push endpoint not allowed; no wake-up sent");
        return;
    }
    for attempt in 1..=WAKE_ATTEMPTS {
        let res = client
            .post(url)
            .header("content-type", "text/plain")
            .header("ttl", "86400")
            .body(WAKE_BODY)
            .send()
            .await;
        let retry = match res {
            Ok(r) if r.status().is_success() => {
                debug!(%host, "wake-up sent");
                return;
            }
            Ok(r) => {
                let s = r.status();
                warn!(%host, status = s.as_u16(), "push server refused a wake-up");
                s.is_server_error() || s.as_u16() == 429
            }
            Err(e) => {
                // Without the URL: reqwest errors print it, token and all.
                warn!(%host, error = %e.without_url(), "cannot send a wake-up");
                true
            }
        };
        if !retry || attempt == WAKE_ATTEMPTS {
            return;
        }
        tokio::time::sleep(WAKE_RETRY_AFTER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: PushPolicy = PushPolicy {
        allow_private: false,
        allow_http: false,
    };

    #[test]
    fn private_and_plain_endpoints_are_refused() {
        assert_eq!(
            check_endpoint("https://push.example.org/up/x", STRICT),
            Ok(())
        );
        // parse only
        for (url, why) in [
            ("http://push.example.org/x", EndpointError::PlainHttp),
            ("https://127.0.0.1/x", EndpointError::Private),
            ("https://10.1.2.3/x", EndpointError::Private),
            ("https://192.168.1.1:8443/x", EndpointError::Private),
            ("https://169.254.169.254/latest", EndpointError::Private),
            ("https://0.0.0.0/", EndpointError::Private),
            ("https://100.64.0.1/", EndpointError::Private),
            ("https://[::1]/", EndpointError::Private),
            ("https://[fe80::1]/", EndpointError::Private),
            ("https://[fd00::1]/", EndpointError::Private),
            ("https://[::ffff:127.0.0.1]/", EndpointError::Private),
            ("https://localhost/", EndpointError::Private),
            ("https://LOCALHOST./", EndpointError::Private),
            ("https://a.localhost./", EndpointError::Private),
            ("ftp://x/", EndpointError::Malformed),
        ] {
            assert_eq!(check_endpoint(url, STRICT), Err(why), "{url}");
        }
        // parse only: literals the filter missed, in every form the HTTP client reads.
        for url in [
            "https://2130706433/x",                             // 127.0.0.1 as one number
            "https://0x7f.1/x",                                 // 127.0.0.1 in hex, short form
            "https://127.1/x",                                  // 127.0.0.1, short form
            "https://012.0.0.1/x",                              // 10.0.0.1 in octal
            "https://192.0.2.1/x",                              // documentation
            "https://198.18.0.1/x",                             // benchmarking
            "https://240.0.0.1/x",                              // reserved
            "https://255.255.255.255/x",                        // broadcast
            "https://[64:ff9b::a9fe:a9fe]/x",                   // NAT64 of 169.254.169.254
            "https://[64:ff9b:1::1]/x",                         // NAT64, local use
            "https://[2002:a00:1::1]/x",                        // 6to4 of 10.0.0.1
            "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x", // Teredo to 127.0.0.1
            "https://[::127.0.0.1]/x",                          // IPv4-compatible
            "https://[::ffff:a00:1]/x",                         // IPv4-mapped, hex
            "https://[2001:db8::1]/x",                          // documentation
            "https://[ff02::1]/x",                              // multicast
            "https://[::]/x",                                   // unspecified
        ] {
            assert_eq!(
                check_endpoint(url, STRICT),
                Err(EndpointError::Private),
                "{url}"
            );
        }
        let open = PushPolicy {
            allow_private: true,
            allow_http: true,
        };
        assert_eq!(check_endpoint("http://127.0.0.1:9/x", open), Ok(()));
    }

    #[test]
    fn logs_show_the_host_only() {
        assert_eq!(
            log_host("https://push.example.org/up/SECRET?t=1"),
            "push.example.org"
        );
    }
}
