//! The binary as a user runs it: flags, exit codes, signals.
