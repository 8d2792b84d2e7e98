//! What CGI and FastCGI share: the RFC 3875 variables, the parser for the
//! program's response head, and spooling of bodies without a length.

pub mod env;
pub mod response;
pub mod spool;
