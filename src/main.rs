use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tc_ingest::cli::Cli::parse();
    tc_ingest::commands::main(cli)
}
