//! The WebSocket broadcast server (feature `server`).
//!
//! This feature is reserved for the hub that broadcasts events to WebSocket clients
//! with topic subscriptions, isolated per-run streams, replay and slow-client isolation.
