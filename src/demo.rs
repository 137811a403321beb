pub async fn run(_keep: bool) -> anyhow::Result<u8> {
    anyhow::bail!("demo: not yet")
}
