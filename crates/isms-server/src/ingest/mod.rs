//! Turning received bytes into events. Each step is its own module with a pure interface over
//! bytes and values, so HTTP, file and queue sources share them and they test without a server.

pub mod body;
