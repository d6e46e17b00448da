//! `auctionctl`'s commands, over the HTTP API of any node: users ([`set_role`]), the status
//! of every member ([`status`]), membership changes, leader transfer and snapshots
//! ([`membership`]), backups and their offline check ([`backup`]).
//!
//! Every command authenticates with the cluster admin token (`X-Admin-Token`), so it works
//! even when the meta group has no quorum. A command prints a human-readable answer, or with
//! `--json` one JSON document on stdout; it exits non-zero when the node refused, with the
//! node's error code and message.
//!
//! Not done yet: TLS to the nodes.

pub mod backup;
pub mod membership;
pub mod status;

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long one request may take. Membership changes walk every group one after the other,
/// each bounded by the node's request time-out.
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 120_000;

/// A connection to one node's HTTP API as the cluster operator.
pub struct Ctl {
    base: String,
    admin_token: Option<String>,
    http: reqwest::Client,
    pub json: bool,
}

/// A node's answer that was not a success.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub body: Value,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.body["error"].as_str().unwrap_or("?");
        let message = self.body["message"].as_str().unwrap_or("");
        write!(f, "refused with {} {code}: {message}", self.status)
    }
}

impl Ctl {
    pub fn new(node: &str, admin_token: Option<String>, json: bool) -> anyhow::Result<Ctl> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(REQUEST_TIMEOUT_MS_MAX))
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Ctl {
            base: node.trim_end_matches('/').to_owned(),
            admin_token,
            http,
            json,
        })
    }

    pub fn node(&self) -> &str {
        &self.base
    }

    fn token(&self) -> anyhow::Result<&str> {
        self.admin_token
            .as_deref()
            .context("the cluster admin token is needed: --admin-token or AUCTION_ADMIN_TOKEN")
    }

    /// Sends one request; a 2xx answer gives its JSON body, anything else `Err(Refused)`
    /// (inside the outer `Ok`), and no answer at all an error naming the node.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, Refused>> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-admin-token", self.token()?);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("node {} did not answer", self.base))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        let body: Value = serde_json::from_str(&text)
            .with_context(|| format!("the answer ({status}) is not JSON: {text:.200}"))?;
        if status.is_success() {
            Ok(Ok(body))
        } else {
            Ok(Err(Refused { status, body }))
        }
    }

    /// Like [`Ctl::call`], with a refusal as an error.
    pub async fn call_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        match self.call(method, path, body).await? {
            Ok(body) => Ok(body),
            Err(refused) => {
                self.print_refusal(&refused)?;
                bail!("{refused}")
            }
        }
    }

    /// Prints a refusal's body (with `--json`) or its per-group results.
    pub fn print_refusal(&self, refused: &Refused) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&refused.body)?);
        } else if let Some(results) = refused.body.get("results") {
            membership::print_results(results);
        }
        Ok(())
    }

    /// Prints a JSON answer as it is.
    pub fn print_json(&self, body: &Value) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string_pretty(body)?);
        Ok(())
    }
}

/// `user grant-admin|revoke-admin EMAIL`.
pub async fn set_role(ctl: &Ctl, email: &str, role: &str) -> anyhow::Result<()> {
    let path = format!("/api/v1/admin/users/{email}/role");
    let body = serde_json::json!({ "role": role });
    let answer = ctl.call_ok(Method::PUT, &path, Some(body)).await?;
    if ctl.json {
        return ctl.print_json(&answer);
    }
    let user = &answer["user"];
    println!(
        "{} ({}) is now {}",
        user["email"].as_str().unwrap_or(email),
        user["id"].as_str().unwrap_or("?"),
        user["role"].as_str().unwrap_or(role)
    );
    Ok(())
}
