//! Endpoints only through cases, caps that hold under concurrency.
