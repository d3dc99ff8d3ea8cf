//! `hookline`, a webhook test bench for anyone's receiver (and sender):
//! [`check`] runs a Standard Webhooks conformance battery against a URL,
//! [`listen`] is a local receiver that verifies, counts and misbehaves on
//! request, [`trigger`] has a help desk send reviews (with chaos) to a URL,
//! [`grade`] is a receiver that misbehaves on a script and grades the
//! sender. The binary (`src/main.rs`) only parses arguments and prints.

/// `hookline check`: the conformance battery and its judgement.
pub mod check;
/// `hookline grade`: a receiver that scripts its answers and grades the sender.
pub mod grade;
/// JUnit XML reports (`--junit`), for CI.
pub mod junit;
/// `hookline listen`: a local receiver.
pub mod listen;
/// `hookline trigger`: reviews sent through a help desk, and what became of them.
pub mod trigger;

/// `text` in the ANSI colour `code` when `colour`, else as it is.
pub(crate) fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}
