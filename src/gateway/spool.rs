//! Spooling a request body without a length (memory, then a temp file).
