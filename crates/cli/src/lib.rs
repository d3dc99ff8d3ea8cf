//! `hookline`, a webhook test bench for anyone's receiver (and sender):
//! [`check`] runs a Standard Webhooks conformance battery against a URL,
//! [`listen`] is a local receiver that verifies, counts and misbehaves on
//! request. The binary (`src/main.rs`) only parses arguments and prints.

/// `hookline check`: the conformance battery and its judgement.
pub mod check;
/// `hookline listen`: a local receiver.
pub mod listen;
