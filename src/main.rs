//! The `vigia` binary: parse the command line, validate settings, start logging, run.

use clap::{Parser, Subcommand};
use vigia::config::{Config, ServeArgs, EXIT_CONFIG};

#[derive(Parser)]
#[command(name = "vigia", version, about = "A lean NVR service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the NVR service.
    Serve(ServeArgs),
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() {
    // A .env in the working directory fills in variables the environment does not set.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("vigia: cannot read .env: {e}");
            std::process::exit(EXIT_CONFIG);
        }
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match Config::from_args(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("vigia: {e}");
                    std::process::exit(EXIT_CONFIG);
                }
            };
            init_logging();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vigia: cannot start the runtime: {e}");
                    std::process::exit(1);
                }
            };
            if let Err(e) = rt.block_on(vigia::app::run(config)) {
                tracing::error!("{}", e.message);
                eprintln!("vigia: {}", e.message);
                // a key that does not match the shared database is a configuration error
                let code = if e.kind == vigia::error::Kind::Conflict {
                    EXIT_CONFIG
                } else {
                    1
                };
                std::process::exit(code);
            }
        }
    }
}
