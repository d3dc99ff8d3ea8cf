//! Every object a tenant can name is its own; the operator alone steers endpoints.
