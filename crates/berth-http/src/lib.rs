//! # berth-http: HTTP plumbing shared by the API adapters
//!
//! What both adapters (OCI Distribution and ECR) need from HTTP itself and neither owns:
//! [`body`] keeps HTTP/1.1 connections usable when an answer is given without reading
//! the request body (issue 17); [`sigv4`] takes from a request what SigV4 verification
//! needs (its host and signable headers), for the ECR, EventBridge and STS adapters alike.
//! It knows nothing about registries, identities or either
//! wire format, so the adapters share it without depending on each other.

#![deny(missing_docs)]

pub mod body;
pub mod sigv4;
