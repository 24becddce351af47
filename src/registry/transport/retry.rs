//! Tries, deadlines and the command's time budget: what went wrong with
//! one try (a [`Fault`]), whether it is worth another, the waits between
//! tries, and bodies read within their caps.

use super::explain::{describe, explain, is_certificate, is_dns};
use super::Result;
use crate::cue::Location;
use crate::registry::auth::Credentials;
use crate::registry::error::{Error, ErrorKind};
use crate::registry::Progress;
use std::time::{Duration, Instant, SystemTime};

/// Tries of an idempotent request: the first and three retries.
const ATTEMPTS: u32 = 4;
/// Tries of a request that stalls: a registry that drips or hangs once
/// likely does again, and each such try costs a whole deadline.
const STALLED_ATTEMPTS: u32 = 2;
/// A Retry-After longer than this is not waited for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The default time budget of a command.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(120);

/// The bounds of one command's registry work: its whole time budget, and
/// one request's deadline (blobs get more, by their size).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub budget: Duration,
    /// When the budget ends: counted from the command's start.
    pub deadline: Instant,
    pub request: Duration,
}

impl Limits {
    pub fn new(budget: Duration, request: Duration) -> Limits {
        Limits { budget, deadline: Instant::now() + budget, request }
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Runs `work` within `limit` and the command's budget.
    pub(super) async fn within<T>(&self, limit: Duration, work: impl std::future::Future<Output = T>) -> std::result::Result<T, Fault> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return Err(Fault::Budget(self.budget));
        }
        let budget_first = remaining < limit;
        match tokio::time::timeout(limit.min(remaining), work).await {
            Ok(v) => Ok(v),
            Err(_) if budget_first => Err(Fault::Budget(self.budget)),
            Err(_) => Err(Fault::Deadline(limit)),
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(DEFAULT_BUDGET, super::DEFAULT_REQUEST_TIMEOUT)
    }
}

/// What went wrong with one attempt, before it is explained.
pub(super) enum Fault {
    Status {
        code: u16,
        error_code: Option<String>,
        retry_after: Option<Duration>,
    },
    Network(reqwest::Error),
    /// The request's own deadline (not the command's budget).
    Deadline(Duration),
    /// The command's time budget (as the user gave it) ran out.
    Budget(Duration),
    TooLarge {
        limit: u64,
    },
    /// A body that does not match its digest or declared size.
    Mismatch(String),
    /// The answer makes no sense (malformed JSON, no upload location).
    Malformed(String),
    /// Already explained (credentials, token service).
    Final(Error),
}

impl Fault {
    /// A try that stalled: no byte for the read timeout, or past its deadline.
    fn is_stall(&self) -> bool {
        match self {
            Fault::Deadline(_) => true,
            Fault::Network(e) => e.is_timeout(),
            _ => false,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Fault::Status { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            // A refused connection is a registry that is down: said at once.
            Fault::Network(e) => !e.is_connect() && !is_certificate(e) && !is_dns(e),
            Fault::Deadline(_) | Fault::Mismatch(_) => true,
            Fault::Budget(_) | Fault::TooLarge { .. } | Fault::Malformed(_) | Fault::Final(_) => false,
        }
    }
}

impl From<reqwest::Error> for Fault {
    fn from(e: reqwest::Error) -> Fault {
        Fault::Network(e)
    }
}

impl From<Error> for Fault {
    fn from(e: Error) -> Fault {
        Fault::Final(e)
    }
}

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries
/// or of the command's budget, waiting between tries (0.5 s, 1 s, 2 s; a
/// 429's Retry-After up to a minute), then explains the last fault. Each
/// request is logged with --verbose.
pub(super) async fn attempts<T, F, Fut>(limits: &Limits, what: &str, loc: &Location, creds: &Credentials, attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
{
    let span = tracing::debug_span!("request", what, host = %loc.host, repository = %loc.repository);
    tracing::Instrument::instrument(tries(limits, what, loc, creds, attempt), span).await
}

async fn tries<T, F, Fut>(limits: &Limits, what: &str, loc: &Location, creds: &Credentials, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Fault>>,
{
    let started = Instant::now();
    let log = |outcome: &str, retries: u32| {
        let retried = if retries == 0 { String::new() } else { format!(", {retries} retr{}", if retries == 1 { "y" } else { "ies" }) };
        tracing::debug!("{what} {}/{} -> {outcome} in {} ms{retried}", loc.host, loc.repository, started.elapsed().as_millis());
    };
    let mut delay = Duration::from_millis(500);
    let mut tries = 1;
    loop {
        let fault = match attempt().await {
            Ok(value) => {
                log("ok", tries - 1);
                return Ok(value);
            }
            Err(f) => f,
        };
        let remaining = limits.remaining();
        let wait = match &fault {
            Fault::Status { code: 429, retry_after: Some(after), .. } => *after,
            _ => delay,
        };
        let limit = if fault.is_stall() { STALLED_ATTEMPTS } else { ATTEMPTS };
        if tries < limit && fault.is_transient() && wait <= MAX_RETRY_AFTER && wait < remaining {
            tracing::debug!("{what} {}/{}: {}; trying again in {} ms", loc.host, loc.repository, describe(&fault), wait.as_millis());
            tokio::time::sleep(wait).await;
            delay *= 2;
            tries += 1;
            continue;
        }
        let mut e = explain(loc, creds, what, fault);
        if tries > 1 && matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Corrupt | ErrorKind::Other) {
            e.message += &format!(" (after {tries} tries)");
        }
        log(&format!("failed ({})", e.message), tries - 1);
        return Err(e);
    }
}

/// Reads a body up to `cap` bytes (refusing a larger one before reading
/// it, when the registry says its length), counting on `progress`.
pub(super) async fn read_all(mut r: reqwest::Response, cap: u64, progress: Option<&Progress>) -> std::result::Result<Vec<u8>, Fault> {
    if r.content_length().is_some_and(|n| n > cap) {
        return Err(Fault::TooLarge { limit: cap });
    }
    let mut data = Vec::with_capacity(r.content_length().unwrap_or(0).min(cap) as usize);
    while let Some(chunk) = r.chunk().await? {
        if (data.len() + chunk.len()) as u64 > cap {
            return Err(Fault::TooLarge { limit: cap });
        }
        data.extend_from_slice(&chunk);
        if let Some(p) = progress {
            p.inc(chunk.len() as u64);
        }
    }
    Ok(data)
}

/// A non-success answer as a fault: its status, the OCI error code of its
/// body and a Retry-After in seconds or as an HTTP date.
pub(super) async fn status_fault(r: reqwest::Response) -> Fault {
    let code = r.status().as_u16();
    let retry_after = r.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let body = read_all(r, 64 << 10, None).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<ErrorBody>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        code: String,
    }
    let error_code = serde_json::from_slice::<Envelope>(&body).ok().and_then(|e| e.errors.into_iter().next()).map(|e| e.code).filter(|c| !c.is_empty());
    Fault::Status { code, error_code, retry_after }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(v.trim())?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form of HTTP
/// dates servers send.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { return None };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else { return None };
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(httpdate("Sun, 06 Nov 1994 08:49:37 GMT"), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784111777)));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
