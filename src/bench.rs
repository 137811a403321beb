pub async fn run(
    _w: crate::cli::BenchKind,
    _n: Option<u64>,
    _r: u32,
    _s: u64,
) -> anyhow::Result<u8> {
    anyhow::bail!("bench: not yet")
}
