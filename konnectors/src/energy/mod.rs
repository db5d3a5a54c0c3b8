//! Energy providers.

pub mod enedis;
