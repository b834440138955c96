//! Counter-based seeds: every random stream of a run is a pure function of
//! (run seed, purpose, counter), e.g. the data order of epoch e or the device RNG of
//! step s. A checkpoint therefore restores all RNG state by storing the step and
//! epoch, and a resumed run draws exactly what the uninterrupted run would have.

/// A 64-bit seed for `purpose` at `counter` (SplitMix64 finaliser over the inputs).
pub fn derive(seed: u64, purpose: &str, counter: u64) -> u64 {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for b in purpose.bytes().chain(counter.to_le_bytes()) {
        h = mix(h ^ u64::from(b));
    }
    h
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
