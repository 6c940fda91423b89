//! Fuzzes the NATS frame decoder: any bytes must decode or be refused, never panic, and
//! never allocate beyond the limits. `cargo fuzz run frame` (see docs/scale-out.md).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    swarmbus::nats::fuzz_decode_frame(data);
});
