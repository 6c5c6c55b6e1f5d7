//! Geo routing of clients to regions.

mod routing;
