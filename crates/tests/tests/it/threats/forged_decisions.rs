//! Callbacks signed per tenant; the consumer matches its own ids exactly.
