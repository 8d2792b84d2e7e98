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
    let runtime = match runtime() {
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

/// The tokio runtime, sized from the CPUs this process may use.
///
/// On one CPU (a container's share, or pinned with taskset) it is the
/// current-thread runtime: its one FIFO queue serves woken connections in
/// the order they woke. The multi-thread runtime with one worker keeps 256
/// of them in the worker's queue and the rest in the shared one, and at
/// 1,000 connections the two groups were served at different rates (p50
/// 5 ms, p90 15 ms). Measured with the current-thread runtime: a 1 KB file at
/// 1,000 connections p99 16 -> 10 ms (+3 % req/s), 100 KB p99 48 -> 26 ms
/// (+12 %), php-fpm at 10 connections +8 %, at 100 -2.5 %.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let one_cpu = std::thread::available_parallelism().map_or(true, |n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    // The blocking pool reads files and checks scripts; past a few dozen
    // threads more of them only add context switches and stacks.
    // Connections woken together overflow a worker's local queue into the
    // shared one; checked only every ~31 polls, those waited behind the rest
    // for rounds on end: at 1,000 connections p99 was 160 ms with p50 3 ms.
    // Every other poll: p99 18 ms, and throughput up 7%.
    builder
        .enable_all()
        .max_blocking_threads(64)
        .global_queue_interval(2)
        .build()
}
