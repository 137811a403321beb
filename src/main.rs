use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = tc_ingest::cli::Cli::parse();
    tc_ingest::commands::main(cli)
}

// mimalloc returns freed memory to the system and copes with memory freed on
// another thread (rows are built by the reader thread and freed after the
// queue commit): the daemon's resident size stays close to what it uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
