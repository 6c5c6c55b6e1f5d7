//! What `meridian node` does with a bad configuration.

mod errors;
