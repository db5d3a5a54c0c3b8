//! Where "now" comes from: the framework's clock, shared with OAuth token
//! expiry. The daemon reads the system clock; tests inject a
//! [`ManualClock`] and move it by hand, so no test sleeps.

pub use gleaner_framework::clock::{Clock, ManualClock, SystemClock};
