//! End-to-end tests: the real server wiring on a real socket, over SQLite and
//! PostgreSQL (when `TEST_DATABASE_URL` is set), driven by an HTTP client.
//!
//! One test binary for the workspace: each module holds one area, and
//! [`both_backends!`] turns a scenario into one test per database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, unreachable_pub)]

mod helpers;
mod smtp;

mod accounts;
mod admin;
mod api_keys;
mod audit;
mod bad_input;
mod binary;
mod broadcast;
mod cache;
mod clients;
mod concurrency;
mod hardening;
mod limits;
mod metrics;
mod mfa;
mod oauth;
mod oidc;
mod outage;
mod packaging;
mod pages;
mod passwords;
mod production;
mod refresh_tokens;
mod sessions;
mod signing_keys;
mod surface;
mod tls;
mod verification;
