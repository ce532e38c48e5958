//! Errors of the HTTP client. Every variant names the URL (credentials
//! removed by [`super::redact`]), what was expected and what was found; the
//! callers wrap a [`NetError`] with their own context as its `#[source]`.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An `ENVBUILD_NET_*` variable that does not parse.
    #[error("{var}={value:?} is not {expected}")]
    BadSetting {
        var: &'static str,
        value: String,
        expected: &'static str,
    },

    /// reqwest refused to build a client (TLS roots, proxy variables).
    #[error("cannot build the HTTP client (proxy variables, TLS roots from SSL_CERT_FILE or the host): {message}")]
    Client { message: String },

    /// A proxy variable whose value is not a proxy URL.
    #[error("{variable}={value} is not a proxy URL (expected http://HOST:PORT, https://... or socks5://...): {message}")]
    Proxy {
        variable: String,
        value: String,
        message: String,
    },

    /// A URL reqwest cannot request.
    #[error("{url} is not a URL envbuild can fetch (expected http:// or https://): {message}")]
    BadUrl { url: String, message: String },

    /// No connection within the connect timeout, or refused, or no route.
    #[error("{url}: cannot connect: {message} (index, mirror and hub locations come from your configuration)")]
    Connect { url: String, message: String },

    /// Nothing arrived for the stall timeout.
    #[error("{url}: no data for {} s while {phase} (expected a byte at least every {} s; ENVBUILD_NET_STALL_TIMEOUT sets it)", .stall.as_secs_f64(), .stall.as_secs_f64())]
    Stalled {
        url: String,
        phase: String,
        stall: Duration,
    },

    /// The connection broke while the body was read.
    #[error("{url}: connection lost after {received} bytes{}: {message}", total_text(*.expected))]
    Interrupted {
        url: String,
        received: u64,
        expected: Option<u64>,
        message: String,
    },

    /// The body ended before the length the server announced.
    #[error("{url}: the body ended after {found} bytes, expected {expected}")]
    Truncated {
        url: String,
        expected: u64,
        found: u64,
    },

    /// An HTTP status the request cannot use.
    #[error("{url}: the server answered HTTP {status} (expected {expected})")]
    Status {
        url: String,
        status: u16,
        expected: &'static str,
    },

    /// A body longer than allowed: refused as soon as it passed the limit.
    #[error("{url}: the body is longer than {limit} bytes ({what}); refused after {found} bytes")]
    TooLarge {
        url: String,
        limit: u64,
        what: &'static str,
        found: u64,
    },

    /// A 206 whose Content-Range is not the range asked for.
    #[error("{url}: asked for the bytes from offset {asked}, the server's 206 answered Content-Range {found:?}")]
    WrongRange {
        url: String,
        asked: u64,
        found: String,
    },

    /// A body in a content encoding other than the identity asked for.
    #[error("{url}: asked for identity encoding, the server sent Content-Encoding {found:?} (a misconfigured server or proxy; envbuild needs the bytes as published)")]
    Encoding { url: String, found: String },

    /// A redirect loop or too many redirects.
    #[error("{url}: {message} (expected at most 10 redirects to a final answer)")]
    Redirect { url: String, message: String },

    /// The place the body goes to failed (disk full, permissions).
    #[error("{url}: storing the body: {source}")]
    Sink {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// The file a request's body comes from cannot be read.
    #[error("{url}: reading the request body from {}: {source}", path.display())]
    Source {
        url: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Transient failures until the attempts or the retry time ran out; the
    /// last failure is the source.
    #[error("{url}: gave up after {attempts} attempt{} in {:.1} s (at most {max_attempts} attempts within ENVBUILD_NET_RETRY_TIME={} s)", if *.attempts == 1 { "" } else { "s" }, .elapsed.as_secs_f64(), .retry_time.as_secs_f64())]
    GaveUp {
        url: String,
        attempts: u32,
        max_attempts: u32,
        elapsed: Duration,
        retry_time: Duration,
        #[source]
        last: Box<NetError>,
    },
}

fn total_text(expected: Option<u64>) -> String {
    match expected {
        Some(t) => format!(" of {t}"),
        None => String::new(),
    }
}

impl NetError {
    /// The HTTP status of a final answer the caller may want to tell apart
    /// (404 as "not found"); `None` for everything else.
    pub fn status(&self) -> Option<u16> {
        match self {
            NetError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The failure behind a [`NetError::GaveUp`], else this one.
    pub fn last(&self) -> &NetError {
        match self {
            NetError::GaveUp { last, .. } => last.last(),
            e => e,
        }
    }

    /// Whether the server could not be reached or kept silent (as opposed
    /// to answering something wrong).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self.last(),
            NetError::Connect { .. } | NetError::Stalled { .. } | NetError::Interrupted { .. }
        )
    }

    /// This error and its sources as one line, for callers whose message is
    /// a string. Every part is already redacted.
    pub fn chain_text(&self) -> String {
        let mut text = self.to_string();
        let mut cur = std::error::Error::source(self);
        while let Some(c) = cur {
            let t = super::redact(&c.to_string());
            if !text.contains(&t) {
                text.push_str(": ");
                text.push_str(&t);
            }
            cur = c.source();
        }
        text
    }
}
