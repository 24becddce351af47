//! A fault in the user's words: the one line an error says (its cause and
//! its fix, and no secret), the few words --verbose logs of a try, and the
//! helpers that keep URLs and network errors fit for messages.

use super::retry::Fault;
use super::READ_TIMEOUT;
use crate::cue::Location;
use crate::registry::auth::Credentials;
use crate::registry::error::{Error, ErrorKind};
use std::time::SystemTime;

/// A fault in a few words, for --verbose.
pub(super) fn describe(f: &Fault) -> String {
    match f {
        Fault::Status { code, .. } => format!("HTTP {code}"),
        Fault::Network(e) => one_line(&error_text(e)),
        Fault::Deadline(d) => format!("no complete answer within {} s", d.as_secs()),
        Fault::Budget(_) => "the time budget ran out".into(),
        Fault::TooLarge { limit } => format!("larger than {} MiB", limit >> 20),
        Fault::Mismatch(why) | Fault::Malformed(why) => why.clone(),
        Fault::Final(e) => e.message.clone(),
    }
}

/// A network error and its causes, without the URL (upload URLs carry the
/// registry's state, and any URL may carry a query).
fn error_text(e: &reqwest::Error) -> String {
    let mut out = e.to_string().split(" for url (").next().unwrap_or_default().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

pub(super) fn is_certificate(e: &reqwest::Error) -> bool {
    error_text(e).contains("certificate")
}

pub(super) fn is_dns(e: &reqwest::Error) -> bool {
    let s = error_text(e);
    s.contains("dns error") || s.contains("failed to lookup address")
}

/// One line with the cause and the fix, and its kind. No secret is in it:
/// bodies and URLs of the registry are not quoted, our credentials never.
pub(super) fn explain(loc: &Location, creds: &Credentials, what: &str, fault: Fault) -> Error {
    let host = &loc.host;
    let repo = format!("{host}/{}", loc.repository);
    let anonymous = matches!(creds, Credentials::Anonymous);
    match fault {
        Fault::Final(e) => e,
        Fault::Budget(budget) => Error::new(
            ErrorKind::Unreachable,
            format!(
                "{what} from {repo} did not finish within the command's time budget ({} s): raise it with --timeout (or OPM_TIMEOUT) if the registry is just slow",
                budget.as_secs()
            ),
        ),
        Fault::Deadline(limit) => Error::new(
            ErrorKind::Unreachable,
            format!("{what} from {repo} did not complete within {} s (opm's limit for one request, OPM_REQUEST_TIMEOUT): the registry or the network is stalling", limit.as_secs()),
        ),
        Fault::TooLarge { limit } => Error::new(
            ErrorKind::Limit,
            format!("{what} from {repo} is larger than {} MiB, the most opm accepts: not a CUE module artifact", limit >> 20),
        ),
        Fault::Mismatch(why) => Error::new(ErrorKind::Corrupt, format!("{why} from {repo}")),
        Fault::Malformed(why) => Error::new(ErrorKind::Other, format!("registry {host}: {why}")),
        Fault::Network(e) => {
            if is_certificate(&e) {
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("the TLS certificate of registry {host} is not trusted: add its CA to the system's trust store (or point SSL_CERT_FILE at it)"),
                );
            }
            if is_dns(&e) {
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("cannot resolve registry host {} (name lookup failed): check the name, /etc/hosts and /etc/resolv.conf", host_name(host)),
                );
            }
            if e.is_connect() {
                let scheme = if loc.insecure { "http" } else { "https" };
                return Error::new(
                    ErrorKind::Unreachable,
                    format!("cannot reach registry {host} over {scheme} (connection failed): check that it is running and the routing ('opm config show')"),
                );
            }
            let why = if e.is_timeout() { format!("a read timed out ({} s without a byte)", READ_TIMEOUT.as_secs()) } else { one_line(&error_text(&e)) };
            Error::new(ErrorKind::Unreachable, format!("{what} from {repo}: the connection broke ({why})"))
        }
        Fault::Status { code, error_code, retry_after } => match code {
            401 if anonymous => Error::new(ErrorKind::Unauthorized, format!("registry {host} requires authentication for {repo}: run 'docker login {host}'")),
            401 => Error::new(ErrorKind::Unauthorized, format!("credentials for {host} were rejected: run 'docker login {host}'")),
            403 if anonymous => Error::new(ErrorKind::Denied, format!("access to {repo} was denied to anonymous requests: run 'docker login {host}'")),
            403 => Error::new(ErrorKind::Denied, format!("access to {repo} was denied: the credentials for {host} lack permission")),
            404 => {
                let what_missing = match error_code.as_deref() {
                    Some("BLOB_UNKNOWN") => "blob not found",
                    Some("MANIFEST_UNKNOWN") => "manifest not found",
                    Some("NAME_UNKNOWN") => "repository not found",
                    _ => "not found",
                };
                Error::new(ErrorKind::NotFound, format!("{repo}: {what_missing} ({what})"))
            }
            429 => {
                let when = match retry_after {
                    Some(after) => {
                        let at = chrono_free_utc(SystemTime::now() + after);
                        format!(": it asks to wait {} s, try again after {at}", after.as_secs())
                    }
                    None => ": try again later".into(),
                };
                Error::new(ErrorKind::RateLimited, format!("registry {host} is rate limiting requests ({what}, HTTP 429){when}"))
            }
            code => Error::new(ErrorKind::Other, format!("registry {host} answered HTTP {code} to {what} for {repo}")),
        },
    }
}

/// `HH:MM:SS UTC` of a time.
fn chrono_free_utc(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() % 86400;
    format!("{:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A URL without its query and userinfo, for messages.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() {
                format!("{scheme}://{authority}")
            } else {
                format!("{scheme}://{authority}/{path}")
            }
        }
        None => url.to_string(),
    }
}

/// `host` without its port.
fn host_name(host: &str) -> &str {
    if let Some(ipv6) = host.strip_prefix('[') {
        return ipv6.split(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(name, _)| name)
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_queries_and_userinfo() {
        assert_eq!(redact_url("http://u:pw@h:5000/v2/x/blobs/uploads/abc?_state=SECRET"), "http://h:5000/v2/x/blobs/uploads/abc");
        assert_eq!(redact_url("https://auth.example/token?scope=x"), "https://auth.example/token");
    }
}
