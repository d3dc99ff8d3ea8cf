//! The consumer as an app exposed to the internet.
