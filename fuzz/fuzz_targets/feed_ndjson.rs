#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::read(data, tc_ingest::feed::Format::Ndjson);
});
