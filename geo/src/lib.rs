//! Meridian's geo routing, as plain data and pure decisions.
//!
//! - [`distance`]: great-circle distance between a client and a region.
//! - [`cidr`] and [`client_addr`]: which address a request comes from, honouring
//!   `X-Forwarded-For` / `Forwarded` only from trusted proxies.
//! - [`locate`]: where that address is (the CIDR map of `cluster.toml`, then MMDB databases,
//!   then the default region).
//! - [`load`]: the latest load report of every node and how fresh it is.
//! - [`mod@plan`]: which node an upload or a download should go to, with the full explanation.
//!
//! Nothing here does network I/O: the node crate measures and exchanges load, the admin crate
//! answers the routing API; both feed this crate plain data.

pub mod cidr;
pub mod client_addr;
pub mod distance;
pub mod load;
pub mod locate;
#[cfg(any(test, feature = "mmdb-writer"))]
pub mod mmdb_writer;
pub mod plan;

pub use cidr::{CidrError, contains, parse_cidr};
pub use client_addr::{AddressSource, ClientAddress, ForwardedHeader, TrustedProxies};
pub use distance::{GeoPoint, haversine_km};
pub use load::{Health, LoadBoard, NodeLoad, PeerView};
pub use locate::{ClientLocator, ClientPosition, LocateError, PositionSource, Region};
pub use plan::{Candidate, CandidateReport, Decision, Operation, Outcome, PlanSettings, plan};
