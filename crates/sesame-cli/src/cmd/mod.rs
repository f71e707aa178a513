//! One module per subcommand.

pub mod clearsessions;
pub mod migrate;
pub mod serve;
