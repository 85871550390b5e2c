//! The I/O around the protocol: listeners, control connections, data streams.
