//! Black-box tests of a node: each test starts a real server on port 0 with its own data
//! directory and talks HTTP to it. One test binary (link time on 2 cores).

mod admin;
mod audiences;
mod delivery;
mod destinations;
mod helpers;
mod oauth;
mod observability;
mod privacy;
mod privacy_controls;
mod profiles;
mod syncs;
mod tracking;
