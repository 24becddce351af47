//! `opm registry check`: each step of reaching a repository, timed.

use super::authorize::{describe_challenge, Access, Challenge, Host};
use super::explain::explain;
use super::retry::{attempts, status_fault};
use super::{Request, Result, Transport};
use crate::cue::Location;
use crate::registry::auth::Credentials;
use crate::registry::error::{Error, ErrorKind};
use std::time::Instant;

/// One step of `opm registry check`.
pub struct Step {
    pub name: &'static str,
    pub millis: u128,
    pub detail: String,
    pub error: Option<Error>,
}

impl Transport {
    /// `GET /v2/`: what the registry asks for, for `opm registry check`
    /// (commands learn it from their first request instead).
    async fn probe(&self, loc: &Location, host: &Host) -> Result<Challenge> {
        let http = self.http()?;
        let base = &host.base;
        let challenge = attempts(&self.limits, "GET /v2/ (authentication probe)", loc, &host.credentials, || async {
            let r = self.limits.within(self.limits.request, http.get(format!("{base}/v2/")).send()).await??;
            if r.status() == reqwest::StatusCode::UNAUTHORIZED {
                host.learn(loc, &r);
                return Ok(host.challenge().unwrap_or(Challenge::None));
            }
            if r.status().is_success() {
                return Ok(Challenge::None);
            }
            Err(status_fault(r).await)
        })
        .await?;
        *host.challenge.lock().expect("challenge") = Some(challenge.clone());
        Ok(challenge)
    }

    /// `opm registry check`: each step of reaching the repository of
    /// `loc`, timed: the probe (with credentials read), the pull token and
    /// a pull request (the tag list), and with `push` the push token and
    /// an upload session opened and cancelled (nothing is written). Stops
    /// at the first step that fails.
    pub async fn check(&self, loc: &Location, push: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        let timed = Instant::now();
        let probed = match self.host(loc).await {
            Ok(h) => self.probe(loc, &h).await.map(|c| (h, c)),
            Err(e) => Err(e),
        };
        let (host, challenge) = match probed {
            Ok(hc) => hc,
            Err(e) => {
                steps.push(Step { name: "reach", millis: timed.elapsed().as_millis(), detail: String::new(), error: Some(e) });
                return steps;
            }
        };
        steps.push(Step {
            name: "reach",
            millis: timed.elapsed().as_millis(),
            detail: format!("{}, asks for {}", host.base, describe_challenge(&challenge)),
            error: None,
        });
        let bearer = matches!(challenge, Challenge::Bearer { .. }) && !matches!(host.credentials, Credentials::AccessToken(_));
        for (access, wanted) in [(Access::Pull, true), (Access::Push, push)] {
            if !wanted {
                continue;
            }
            let what = if access == Access::Push { "push" } else { "pull" };
            if bearer {
                let t = Instant::now();
                let got = self.authorization(&host, loc, access, false).await.map_err(|f| explain(loc, &host.credentials, &format!("{what} token"), f));
                let failed = got.is_err();
                steps.push(Step {
                    name: if access == Access::Push { "push token" } else { "pull token" },
                    millis: t.elapsed().as_millis(),
                    detail: String::new(),
                    error: got.err(),
                });
                if failed {
                    return steps;
                }
            }
            let t = Instant::now();
            let result = if access == Access::Pull {
                let req = Request {
                    method: reqwest::Method::GET,
                    url: format!("/v2/{}/tags/list?n=1", loc.repository),
                    access,
                    headers: vec![],
                    body: None,
                    progress: None,
                };
                match self.run("GET tags/list", loc, req, self.limits.request, |_| async { Ok(()) }).await {
                    // Authorized: the repository just does not exist yet.
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        Ok("allowed (nothing is tagged at exactly this path; modules under a prefix have repositories of their own)".to_string())
                    }
                    other => other.map(|()| "allowed".to_string()),
                }
            } else {
                let post = Request {
                    method: reqwest::Method::POST,
                    url: format!("/v2/{}/blobs/uploads/", loc.repository),
                    access,
                    headers: vec![],
                    body: None,
                    progress: None,
                };
                let base = host.base.clone();
                match self
                    .run("POST blobs/uploads (opened, then cancelled)", loc, post, self.limits.request, |r| async move {
                        Ok(r.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string))
                    })
                    .await
                {
                    Ok(location) => {
                        if let (Some(location), Ok(http)) = (location, self.http()) {
                            let url = if location.starts_with('/') { format!("{base}{location}") } else { location };
                            let mut cancel = http.delete(url);
                            if let Ok(Some(a)) = self.authorization(&host, loc, Access::Push, false).await {
                                cancel = cancel.header(http::header::AUTHORIZATION, a);
                            }
                            let _ = self.limits.within(self.limits.request, cancel.send()).await;
                        }
                        Ok("allowed (an upload was opened and cancelled)".to_string())
                    }
                    Err(e) => Err(e),
                }
            };
            let failed = result.is_err();
            let (detail, error) = match result {
                Ok(d) => (d, None),
                Err(e) => (String::new(), Some(e)),
            };
            steps.push(Step { name: what, millis: t.elapsed().as_millis(), detail, error });
            if failed {
                return steps;
            }
        }
        steps
    }
}
