//! The form of a push endpoint (the URL a mailbox POSTs a wake-up to), as a device gives it
//! in `Request::SetPush` (`crate::wire`).

use crate::codec::DecodeError;
use crate::wire::MAX_PUSH_ENDPOINT;

/// The parts of a push endpoint a node needs to judge it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PushEndpoint<'a> {
    /// `https` (otherwise plain `http`).
    pub https: bool,
    /// The host as written: a name, an IPv4 address, or an IPv6 address without brackets.
    pub host: &'a str,
}

impl std::fmt::Debug for PushEndpoint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host is not secret; the path and query (tokens) are not kept here at all.
        f.debug_struct("PushEndpoint")
            .field("https", &self.https)
            .field("host", &self.host)
            .finish()
    }
}

/// Checks the form of a push endpoint: at most [`MAX_PUSH_ENDPOINT`] bytes of printable
/// ASCII, scheme `http` or `https`, a host, no user info, an optional numeric port. Whether
/// the host may be contacted (no private addresses) is the mailbox's decision.
pub fn check_push_endpoint(url: &str) -> Result<PushEndpoint<'_>, DecodeError> {
    if url.is_empty() || url.len() > MAX_PUSH_ENDPOINT {
        return Err(DecodeError::Invalid("push endpoint length"));
    }
    if !url.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(DecodeError::Invalid("push endpoint characters"));
    }
    let lower = |n: usize| url.get(..n).map(str::to_ascii_lowercase);
    let (https, rest) = if lower(8).as_deref() == Some("https://") {
        (true, &url[8..])
    } else if lower(7).as_deref() == Some("http://") {
        (false, &url[7..])
    } else {
        return Err(DecodeError::Invalid("push endpoint scheme"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(DecodeError::Invalid("push endpoint user info"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or(DecodeError::Invalid("push endpoint host"))?;
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(DecodeError::Invalid("push endpoint host"));
        }
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or(DecodeError::Invalid("push endpoint port"))?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b))
    {
        return Err(DecodeError::Invalid("push endpoint host"));
    }
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || p.parse::<u16>().is_err())
    {
        return Err(DecodeError::Invalid("push endpoint port"));
    }
    Ok(PushEndpoint { https, host })
}
