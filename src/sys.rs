//! Small OS facts: uname, process CPU time, TCP_INFO.
