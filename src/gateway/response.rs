//! The RFC 3875 section 6 response parser, shared by CGI and FastCGI.
