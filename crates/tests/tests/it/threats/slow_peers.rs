//! Deadlines on our own servers: slow bodies, idle and too many event streams.
