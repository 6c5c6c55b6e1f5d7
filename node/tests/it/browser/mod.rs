//! The admin panel in a real browser.

mod panel;
