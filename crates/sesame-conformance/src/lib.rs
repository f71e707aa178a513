//! Conformance suites for Sesame stores.
