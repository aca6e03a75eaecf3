//! # berth-iam: identity and access, the way IAM and ECR do it
//!
//! Owns who a caller is and what they may do: accounts, principals (users, roles,
//! assumed-role sessions, service principals, anonymous), access keys and their
//! encryption at rest (`secret`), ECR-style authorization tokens (`token`), OIDC federation (`federation`) and STS role
//! sessions (`service::sts`), SigV4
//! verification (`sigv4`), presigned blob URLs (`presign`), IAM JSON policy documents and
//! their evaluation (`policy`), and the service that puts them together with the identity
//! tables of `berth-meta` and the audit trail (`service`, `audit`). Knows nothing about
//! HTTP servers or blob storage.

#![deny(missing_docs)]

pub mod action;
pub mod audit;
pub mod federation;
pub mod policy;
pub mod presign;
pub mod principal;
pub mod secret;
pub mod service;
pub mod sigv4;
pub mod token;

pub use action::{Action, EcrAction, EcrPermission, EventsAction};
pub use principal::{AccountId, Principal, PrincipalKind};
pub use service::{
    AssumedRole, AuthError, AuthorizationToken, Caller, Denied, Iam, IamConfig, IamError, StsError,
};
