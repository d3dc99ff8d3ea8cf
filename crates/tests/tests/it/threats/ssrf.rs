//! Every spelling of an internal address, and a strict policy that reads alike.
