//! Per-key request rates, `/metrics` in O(1) and behind a token.
