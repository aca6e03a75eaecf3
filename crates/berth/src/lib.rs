//! The `berth` binary's code as a library, so that tests drive exactly what the server
//! serves: [`serve::app`] is the whole HTTP router (`/v2/`, the ECR API on `POST /`,
//! `/healthz`, `/readyz`, `/metrics`), and `berth-test-support` calls it with
//! `tower::ServiceExt::oneshot` (no socket). `src/main.rs` is only the command line.

pub mod admin;
mod admin_gc;
mod admin_jobs;
mod admin_migrate;
pub mod backends;
pub mod config;
pub mod credential_helper;
pub mod events;
mod housekeeping;
mod identity;
pub mod image_digest;
pub mod lifecycle;
pub mod login;
pub mod replication_wait;
pub mod scan_gate;
pub mod scanning;
pub mod serve;
