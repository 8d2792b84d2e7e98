//! The RFC 3875 meta-variables, built once for CGI and FastCGI.
