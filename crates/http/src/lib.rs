//! The Portcullis HTTP API on actix-web.
//!
//! Turns HTTP into calls on the domain's services and their results into the
//! contract's responses: routes, the authentication extractors, DTOs (with
//! `TryFrom` into domain values), the one error type every failure goes
//! through, and the OpenAPI document. Handlers hold no rule of their own.
//! Depends on `portcullis-domain` only among our crates: never on a store,
//! on crypto, or on any concrete adapter.

#![deny(clippy::unwrap_used, clippy::expect_used)]

mod app;
mod body;
mod client_ip;
mod context;
mod dto;
mod error;
mod extract;
mod limits;
mod metrics;
mod middleware;
mod openapi;
mod pages;
mod routes;
mod state;

pub use app::{configure, metrics_app};
pub use client_ip::TrustedProxies;
pub use context::HttpRequestContext;
pub use error::{ApiError, ErrorBody};
pub use metrics::{CacheEntries, CountReading, LimiterKeys, Metrics, QueueDepth};
pub use openapi::ApiDoc;
pub use state::{AppState, HttpSettings};
