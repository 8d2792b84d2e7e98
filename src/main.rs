//! The `gatehouse` binary: parse the command line, load the configuration,
//! run the server, and map failures to exit codes (2: configuration, 1: start-up).

use std::process::ExitCode;

use clap::Parser;
use gatehouse::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match gatehouse::config::load_for_cli(cli.config.as_deref(), &cli.listen) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = gatehouse::log::init_error_log(&config) {
        eprintln!("gatehouse: cannot open the error log: {e}");
        return ExitCode::from(1);
    }
    gatehouse::server::raise_open_file_limit();
    let runtime = match gatehouse::server::runtime(config.workers) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gatehouse: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(gatehouse::server::run(config));
    // Do not wait for a blocking file read that a gone client left behind.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(1)
        }
    }
}
