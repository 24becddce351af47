//! Authorization: what each registry host asks for (learnt from its 401s),
//! the Authorization header of each request (Basic credentials, an access
//! token, or Docker's bearer tokens per repository from the registry's
//! token service), and tokens for many repositories at once.

use super::explain::redact_url;
use super::retry::{attempts, read_all, status_fault, Fault};
use super::{Transport, MAX_DOCUMENT};
use crate::cue::Location;
use crate::registry::auth::Credentials;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Mutex;

/// A registry host as this run knows it.
pub(super) struct Host {
    /// `http://host` or `https://host`.
    pub(super) base: String,
    pub(super) credentials: Credentials,
    /// What the registry asked for, learnt from its first 401 (no probe
    /// round trip before the first real request); None until then.
    pub(super) challenge: Mutex<Option<Challenge>>,
    /// Whether `-v` has said which HTTP version the registry answers in
    /// (HTTP/2 behind TLS: one connection carries every request).
    pub(super) version_told: std::sync::atomic::AtomicBool,
}

impl Host {
    pub(super) fn challenge(&self) -> Option<Challenge> {
        self.challenge.lock().expect("challenge").clone()
    }

    /// Records what a 401 asked for; whether that is news.
    pub(super) fn learn(&self, loc: &Location, r: &reqwest::Response) -> bool {
        let header = r.headers().get(http::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let learnt = parse_challenge(header);
        let mut current = self.challenge.lock().expect("challenge");
        if current.as_ref() == Some(&learnt) {
            return false;
        }
        tracing::debug!("{} asks for {}", loc.host, describe_challenge(&learnt));
        *current = Some(learnt);
        true
    }
}

pub(super) fn describe_challenge(c: &Challenge) -> String {
    match c {
        Challenge::None => "no authentication".to_string(),
        Challenge::Basic => "Basic authentication".to_string(),
        Challenge::Bearer { realm, .. } => format!("bearer tokens from {}", redact_url(realm)),
    }
}

/// What the registry's `GET /v2/` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// What a request needs permission for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Pull,
    Push,
}

impl Transport {
    /// The Authorization header for a request, if the host wants one.
    /// Until the registry has said what it wants, Basic credentials go
    /// along unasked (saving a round trip where they are wanted).
    pub(super) async fn authorization(&self, host: &Host, loc: &Location, access: Access, renew: bool) -> std::result::Result<Option<String>, Fault> {
        let basic = |user: &str, password: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        match (host.challenge(), &host.credentials) {
            (None, Credentials::Basic { user, password }) => Ok(Some(basic(user, password))),
            (None, _) | (Some(Challenge::None), _) | (Some(Challenge::Basic), Credentials::Anonymous) => Ok(None),
            (Some(Challenge::Basic), Credentials::Basic { user, password }) => Ok(Some(basic(user, password))),
            (Some(Challenge::Basic), _) => Ok(None),
            (_, Credentials::AccessToken(token)) => Ok(Some(format!("Bearer {token}"))),
            (Some(Challenge::Bearer { realm, service }), creds) => {
                let scope = format!("repository:{}:{}", loc.repository, if access == Access::Push { "pull,push" } else { "pull" });
                let key = (loc.host.clone(), scope.clone());
                let cell = {
                    let mut tokens = self.tokens.lock().expect("token map");
                    if renew {
                        tokens.remove(&key);
                    }
                    tokens.entry(key).or_default().clone()
                };
                let token = cell.get_or_try_init(|| self.fetch_token(loc, &realm, service.as_deref(), std::slice::from_ref(&scope), creds)).await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// One token for pulling from every repository of `locs` that has
    /// none yet, on hosts known to use tokens: one round trip to the token
    /// service instead of one per repository (Docker's token protocol
    /// takes several scopes). A failure here is left to the requests
    /// themselves, which ask per repository.
    pub async fn preauthorize(&self, locs: &[Location]) {
        let mut by_host: HashMap<String, Vec<&Location>> = HashMap::new();
        for loc in locs {
            by_host.entry(loc.host.clone()).or_default().push(loc);
        }
        for (host_name, locs) in by_host {
            let Some(host) = self.hosts.lock().await.get(&host_name).cloned() else { continue };
            let Some(Challenge::Bearer { realm, service }) = host.challenge() else { continue };
            if matches!(host.credentials, Credentials::AccessToken(_)) {
                continue;
            }
            let scopes: Vec<String> = {
                let tokens = self.tokens.lock().expect("token map");
                let mut scopes: Vec<String> = locs
                    .iter()
                    .map(|l| format!("repository:{}:pull", l.repository))
                    .filter(|s| tokens.get(&(host_name.clone(), s.clone())).is_none_or(|c| c.get().is_none()))
                    .collect();
                scopes.sort();
                scopes.dedup();
                scopes
            };
            if scopes.len() < 2 {
                continue;
            }
            let Ok(token) = self.fetch_token(locs[0], &realm, service.as_deref(), &scopes, &host.credentials).await else { continue };
            let mut tokens = self.tokens.lock().expect("token map");
            for scope in scopes {
                let cell = tokens.entry((host_name.clone(), scope)).or_default();
                let _ = cell.set(token.clone());
            }
        }
    }

    /// Asks the registry's token service for a token (Docker's token
    /// protocol; identity tokens through OAuth2's refresh grant).
    async fn fetch_token(
        &self,
        loc: &Location,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: &Credentials,
    ) -> std::result::Result<String, Fault> {
        let http = self.http()?;
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(s) = service {
            query.push(("service", s));
        }
        let what = match scopes {
            [one] => format!("token for {one}"),
            many => format!("token for {} repositories", many.len()),
        };
        attempts(&self.limits, &what, loc, creds, || async {
            let request = match creds {
                Credentials::RefreshToken(refresh) => {
                    let mut form = query.clone();
                    form.extend([("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", "opm")]);
                    http.post(realm).form(&form)
                }
                Credentials::Basic { user, password } => http.get(realm).query(&query).basic_auth(user, Some(password)),
                _ => http.get(realm).query(&query),
            };
            let r = self.limits.within(self.limits.request, request.send()).await??;
            if !r.status().is_success() {
                return Err(status_fault(r).await);
            }
            let body = self.limits.within(self.limits.request, read_all(r, MAX_DOCUMENT, None)).await??;
            #[derive(serde::Deserialize)]
            struct Answer {
                #[serde(default)]
                token: String,
                #[serde(default)]
                access_token: String,
            }
            let a: Answer = serde_json::from_slice(&body).map_err(|_| Fault::Malformed("the token service's answer is not a token".into()))?;
            let token = if a.token.is_empty() { a.access_token } else { a.token };
            if token.is_empty() {
                return Err(Fault::Malformed("the token service's answer holds no token".into()));
            }
            Ok(token)
        })
        .await
        .map_err(Fault::Final)
    }
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="..."` (or Basic).
fn parse_challenge(header: &str) -> Challenge {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Basic;
    }
    let mut realm = String::new();
    let mut service = None;
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (value, tail) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').unwrap_or((quoted, "")),
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match key.as_str() {
            "realm" => realm = value.to_string(),
            "service" => service = Some(value.to_string()),
            _ => {}
        }
        rest = tail.trim_start_matches(',');
    }
    Challenge::Bearer { realm, service }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#),
            Challenge::Bearer { realm: "https://auth.example/token".into(), service: Some("registry.example".into()) }
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry""#), Challenge::Basic);
    }
}
