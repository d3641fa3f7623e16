//! The Exact Online REST client: typed requests over the `HttpTransport`
//! port, complete paging with a cap and an explicit truncation flag,
//! rate-limit awareness, and typed errors.

use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;

use super::error::ExactError;
use super::query::{Division, Query};
use super::ratelimit::RateLimitState;
use super::wire::{Page, Row, error_message, parse_page};
use crate::crypto::Secret;
use crate::ports::{Clock, HttpMethod, HttpRequest, HttpResponse, HttpTransport};

/// Rows gathered by [`ExactClient::list`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    pub rows: Vec<Row>,
    /// More rows exist than the cap allowed; the caller must say so.
    pub truncated: bool,
    pub pages: u32,
}

/// A downloaded file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Download {
    /// At most the `max_bytes` asked for.
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// The file is larger than `max_bytes`; `bytes` is not all of it.
    pub truncated: bool,
}

/// A client for one access token (one user at one Exact site).
pub struct ExactClient<'a, T: HttpTransport, C: Clock> {
    transport: &'a T,
    clock: &'a C,
    base_url: String,
    token: Secret,
    rate: RefCell<RateLimitState>,
    calls: Cell<u32>,
}

impl<T: HttpTransport, C: Clock> std::fmt::Debug for ExactClient<'_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactClient")
            .field("base_url", &self.base_url)
            .field("calls", &self.calls.get())
            .finish_non_exhaustive()
    }
}

impl<'a, T: HttpTransport, C: Clock> ExactClient<'a, T, C> {
    pub fn new(transport: &'a T, clock: &'a C, base_url: &str, token: Secret) -> Self {
        ExactClient {
            transport,
            clock,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            rate: RefCell::new(RateLimitState::default()),
            calls: Cell::new(0),
        }
    }

    /// Requests sent to Exact so far by this client.
    pub fn calls_made(&self) -> u32 {
        self.calls.get()
    }

    pub fn rate_limits(&self) -> RateLimitState {
        *self.rate.borrow()
    }

    /// Replaces the token (after a refresh), keeping the rate-limit state.
    pub fn set_token(&mut self, token: Secret) {
        self.token = token;
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// GETs an absolute URL on the configured host and returns the body.
    pub async fn get(&self, url: &str) -> Result<String, ExactError> {
        let request = self.authorised_get(url, "application/json")?;
        let resp = self.transport.send(request).await?;
        self.rate.borrow_mut().observe(&resp);
        self.classify(resp)
    }

    /// Downloads a file (a document attachment) from a path on the
    /// configured host or an absolute URL on it; the body's bytes as sent,
    /// never more than `max_bytes` of them (the transport stops reading
    /// there and the download says `truncated`).
    pub async fn download(
        &self,
        url_or_path: &str,
        max_bytes: usize,
    ) -> Result<Download, ExactError> {
        let url = if url_or_path.starts_with('/') {
            format!("{}{url_or_path}", self.base_url)
        } else {
            url_or_path.to_owned()
        };
        let request = self.authorised_get(&url, "*/*")?;
        let resp = self.transport.send_binary(request, max_bytes).await?;
        let text = resp.to_text();
        self.rate.borrow_mut().observe(&text);
        // Any status outside 2xx becomes its typed error.
        self.classify(text)?;
        Ok(Download {
            content_type: resp
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone()),
            bytes: resp.body,
            truncated: resp.truncated,
        })
    }

    /// A GET with the bearer token, only to the configured host, counted
    /// and refused while the rate-limit window is exhausted.
    fn authorised_get(&self, url: &str, accept: &str) -> Result<HttpRequest, ExactError> {
        let on_host = url
            .strip_prefix(&self.base_url)
            .is_some_and(|rest| rest.starts_with('/'));
        if !on_host {
            return Err(ExactError::ForeignNextLink);
        }
        self.rate.borrow().check(self.clock.now())?;
        self.calls.set(self.calls.get() + 1);
        Ok(HttpRequest {
            method: HttpMethod::Get,
            url: url.to_owned(),
            headers: vec![
                ("Accept".into(), accept.into()),
                (
                    "Authorization".into(),
                    format!("Bearer {}", self.token.expose()),
                ),
            ],
            body: None,
        })
    }

    fn classify(&self, resp: HttpResponse) -> Result<String, ExactError> {
        match resp.status {
            200..=299 => Ok(resp.body),
            400 => Err(ExactError::BadRequest(
                error_message(&resp.body).unwrap_or_else(|| "bad request".into()),
            )),
            401 => Err(ExactError::Unauthorized),
            403 => Err(ExactError::Forbidden {
                reason: resp.header("reason").map(str::to_owned),
            }),
            404 => Err(ExactError::NotFound),
            429 => Err(self.rate.borrow().limited_error(self.clock.now())),
            status => Err(ExactError::Upstream { status }),
        }
    }

    pub async fn page(&self, url: &str) -> Result<Page, ExactError> {
        parse_page(&self.get(url).await?)
    }

    /// A pager over every page of `query`, following `__next`.
    pub fn pages(&self, division: Division, query: &Query) -> Pager<'_, 'a, T, C> {
        Pager {
            client: self,
            next: Some(query.url(&self.base_url, division)),
        }
    }

    /// Collects up to `cap` rows across pages. Never a silent first page:
    /// `truncated` says whether more rows exist beyond the cap.
    pub async fn list(
        &self,
        division: Division,
        query: &Query,
        cap: usize,
    ) -> Result<Listed, ExactError> {
        let mut pager = self.pages(division, query);
        let mut out = Listed::default();
        while let Some(page) = pager.next_page().await? {
            out.pages += 1;
            out.rows.extend(page.rows);
            if out.rows.len() >= cap {
                out.truncated = out.rows.len() > cap || pager.has_more();
                out.rows.truncate(cap);
                break;
            }
        }
        Ok(out)
    }

    /// Like [`ExactClient::list`] with every row decoded into `R`.
    pub async fn list_as<R: DeserializeOwned>(
        &self,
        division: Division,
        query: &Query,
        cap: usize,
    ) -> Result<(Vec<R>, bool), ExactError> {
        let listed = self.list(division, query, cap).await?;
        let rows = listed
            .rows
            .into_iter()
            .map(|r| {
                serde_json::from_value(serde_json::Value::Object(r))
                    .map_err(|e| ExactError::Malformed(e.to_string()))
            })
            .collect::<Result<Vec<R>, _>>()?;
        Ok((rows, listed.truncated))
    }

    /// `GET /api/v1/current/Me`.
    pub async fn me(&self) -> Result<super::entities::Me, ExactError> {
        let url = format!("{}/api/v1/current/Me", self.base_url);
        let page = self.page(&url).await?;
        let row = page
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| ExactError::Malformed("current/Me returned no row".into()))?;
        serde_json::from_value(serde_json::Value::Object(row))
            .map_err(|e| ExactError::Malformed(e.to_string()))
    }
}

/// Pages of one query; see [`ExactClient::pages`].
pub struct Pager<'c, 'a, T: HttpTransport, C: Clock> {
    client: &'c ExactClient<'a, T, C>,
    next: Option<String>,
}

impl<T: HttpTransport, C: Clock> std::fmt::Debug for Pager<'_, '_, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager").field("next", &self.next).finish()
    }
}

impl<T: HttpTransport, C: Clock> Pager<'_, '_, T, C> {
    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Page>, ExactError> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let page = self.client.page(&url).await?;
        self.next = page.next.clone();
        Ok(Some(page))
    }

    pub fn has_more(&self) -> bool {
        self.next.is_some()
    }
}
