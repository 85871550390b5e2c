//! The UDP datagram header and the receiver's loss/jitter arithmetic.
