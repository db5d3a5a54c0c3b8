//! Banking: what bank konnectors and the passes over their documents share.
//!
//! [`linking`] links bills to the bank operations that paid them.

pub mod linking;
