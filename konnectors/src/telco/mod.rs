//! Telcos: phone and internet invoices.

pub mod free_mobile;
