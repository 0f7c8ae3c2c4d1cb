use super::*;
use crate::model::{STALE_NAN_BITS, Sample};
use proptest::prelude::*;

/// The one conformance check every codec pair goes through: if the pair applies, its estimate
/// is exact and it decodes to the same bits; the chosen encoding is no larger than any pair and
/// decodes too.
fn check_codecs(samples: &[Sample]) {
    let mut best = usize::MAX;
    for ts in TsCodec::ALL {
        for v in ValueCodec::ALL {
            let Some(bytes) = encode_chunk_with(samples, ts, v) else {
                assert_eq!(estimate_chunk_with(samples, ts, v), None);
                continue;
            };
            assert_eq!(estimate_chunk_with(samples, ts, v), Some(bytes.len()), "{ts:?}/{v:?} estimate");
            let back = decode_chunk(&bytes).unwrap_or_else(|e| panic!("{ts:?}/{v:?}: {e}"));
            assert_eq!(back, samples, "{ts:?}/{v:?} round trip");
            // Cut anywhere: an error, never a panic or a wrong answer.
            for cut in [0, 1, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                if cut < bytes.len() {
                    assert!(decode_chunk(&bytes[..cut]).is_err(), "{ts:?}/{v:?} truncated at {cut}");
                }
            }
            best = best.min(bytes.len());
        }
    }
    let mut out = Vec::new();
    let used = encode_chunk(&mut out, samples);
    assert_eq!(out.len(), estimate_chunk(samples));
    assert_eq!(out.len(), best, "the smallest pair is chosen");
    assert_eq!(decode_chunk(&out).unwrap(), samples);
    assert!(used.value.is_some() || samples.iter().all(|s| s.v.to_bits() == STALE_NAN_BITS));
    // What the block writer calls: the same chunk, plus a classic alternative exactly when the
    // chosen codec is entropy-coded, which decodes too and is the smallest classic pair.
    let mut same = Vec::new();
    let (used2, classic) = encode_chunk_with_classic(&mut same, samples);
    assert_eq!((same.as_slice(), used2), (out.as_slice(), used));
    assert_eq!(classic.is_some(), used.value.is_some_and(ValueCodec::is_entropy_coded));
    if let Some(alt) = classic {
        assert_eq!(decode_chunk(&alt).unwrap(), samples);
        let mut among = Vec::new();
        let c = encode_chunk_among(&mut among, samples, &ValueCodec::CLASSIC);
        assert!(!c.value.is_some_and(ValueCodec::is_entropy_coded));
        assert_eq!(alt, among);
    }
}

fn special_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::from_bits(0x7ff8_0000_0000_0001)),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(9_007_199_254_740_993.0),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => any::<f64>(),
        2 => special_value(),
        3 => (-1_000_000i64..1_000_000).prop_map(|m| m as f64),
        3 => (0i64..1 << 40, 0usize..8).prop_map(|(m, e)| m as f64 / 10f64.powi(e as i32)),
    ]
}

fn timestamps(n: usize) -> impl Strategy<Value = Vec<i64>> {
    prop_oneof![
        // Scrapes: a grid with jitter, gaps and the odd outlier.
        (any::<i32>(), 1i64..100_000, proptest::collection::vec((-5i64..=5, 0u8..40), n)).prop_map(
            |(start, iv, j)| {
                let mut t = i64::from(start) * 1000;
                j.into_iter()
                    .map(|(jit, gap)| {
                        t += iv * if gap == 0 { 3 } else { 1 };
                        t + if gap == 1 { 777 } else { jit }
                    })
                    .collect()
            }
        ),
        // Anything at all, including equal, backwards and extreme timestamps.
        proptest::collection::vec(prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), 0i64..10], n),
        // Increasing with arbitrary steps.
        (any::<i64>(), proptest::collection::vec(1i64..1 << 40, n)).prop_map(|(s, d)| d
            .into_iter()
            .scan(s, |t, d| {
                *t = t.wrapping_add(d);
                Some(*t)
            })
            .collect()),
    ]
}

fn chunk() -> impl Strategy<Value = Vec<Sample>> {
    (1usize..600).prop_flat_map(|n| {
        (timestamps(n), proptest::collection::vec(value(), n), any::<u8>()).prop_map(|(ts, vs, shape)| {
            let vs: Vec<f64> = match shape % 4 {
                // A counter in microseconds.
                0 => vs
                    .iter()
                    .enumerate()
                    .map(|(i, _)| (1_000_000 + i as i64 * 15_123_457) as f64 / 1e6)
                    .collect(),
                // A constant with a staleness marker at the end.
                1 => (0..vs.len())
                    .map(|i| if i + 1 == vs.len() { f64::from_bits(STALE_NAN_BITS) } else { 4096.0 })
                    .collect(),
                _ => vs,
            };
            ts.into_iter().zip(vs).map(|(t, v)| Sample::new(t, v)).collect()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn every_codec_round_trips_every_chunk_bit_exactly(samples in chunk()) {
        check_codecs(&samples);
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_chunk(&bytes);
    }
}

#[test]
fn edge_chunks_round_trip() {
    check_codecs(&[Sample::new(0, 0.0)]);
    check_codecs(&[Sample::new(i64::MIN, f64::from_bits(STALE_NAN_BITS))]);
    check_codecs(&[Sample::new(i64::MIN, -0.0), Sample::new(i64::MAX, f64::NAN)]);
    check_codecs(&[Sample::new(5, 1.0), Sample::new(5, 2.0), Sample::new(4, 3.0)]);
    // Timestamps whose spacing is near i64::MAX: the grid planner's rounding once overflowed.
    check_codecs(&[Sample::new(0, 1.0), Sample::new(i64::MAX, 16.123457)]);
    check_codecs(&[Sample::new(0, 1.0), Sample::new(i64::MAX / 2, 2.0), Sample::new(i64::MAX, 3.0)]);
    check_codecs(&[Sample::new(i64::MIN, 1.0), Sample::new(-1, 2.0)]);
    let full: Vec<Sample> =
        (0..MAX_CHUNK_SAMPLES as i64).map(|i| Sample::new(i * 15_000, i as f64)).collect();
    check_codecs(&full);
}

#[test]
fn every_codec_id_byte_maps_to_at_most_one_codec_and_back() {
    let mut ts = 0;
    let mut vals = 0;
    for b in 0..=255u8 {
        if let Some(c) = TsCodec::try_from_code(b) {
            assert_eq!(c.to_code(), b);
            ts += 1;
        }
        if let Some(c) = ValueCodec::try_from_code(b) {
            assert_eq!(c.to_code(), b);
            vals += 1;
        }
    }
    assert_eq!(ts, TsCodec::ALL.len());
    assert_eq!(vals, ValueCodec::ALL.len());
    assert_eq!(TsCodec::try_from_code(0), None, "0 is never a codec: a zeroed chunk is corrupt");
    assert_eq!(ValueCodec::try_from_code(0), None);
}

#[test]
fn an_unknown_codec_id_is_named_in_the_error() {
    let mut out = Vec::new();
    encode_chunk(&mut out, &[Sample::new(1, 1.0)]);
    out[1] = 200;
    assert_eq!(decode_chunk(&out), Err(CodecError::UnknownTsCodec(200)));
}

fn scrape_times(n: usize) -> Vec<i64> {
    // ±3 ms of jitter around a 15 s grid, as Prometheus scrapes.
    (0..n as i64).map(|i| 1_795_737_604_321 + i * 15_000 + [0, 2, -1, 3, -3, 1, -2][i as usize % 7]).collect()
}

#[test]
fn jittered_scrape_timestamps_take_under_half_a_byte_each() {
    let samples: Vec<Sample> = scrape_times(480).into_iter().map(|t| Sample::new(t, 1.0)).collect();
    let mut out = Vec::new();
    let used = encode_chunk(&mut out, &samples);
    assert_eq!(used.ts, TsCodec::Grid);
    assert!(out.len() < 480 / 2, "{} bytes", out.len());
}

#[test]
fn a_missed_scrape_costs_an_anchor_not_the_rest_of_the_chunk() {
    let mut ts = scrape_times(481);
    ts.remove(200);
    let samples: Vec<Sample> = ts.into_iter().map(|t| Sample::new(t, 1.0)).collect();
    let (with_gap, without) = (estimate_chunk(&samples), estimate_chunk(&samples[..1]) + 480 * 3 / 8);
    assert!(with_gap < without + 16, "{with_gap} vs {without}");
}

#[test]
fn microsecond_cpu_counters_are_decimal_with_exponent_6() {
    let mut usec = 123_456_789_012i64;
    let samples: Vec<Sample> = scrape_times(480)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            usec += 1_500_000 + (i as i64 * 7919) % 20_000;
            Sample::new(t, usec as f64 / 1e6)
        })
        .collect();
    let mut out = Vec::new();
    let used = encode_chunk(&mut out, &samples).value;
    assert!(matches!(used, Some(ValueCodec::Decimal | ValueCodec::DecimalRc)), "{used:?}");
    // ~15 bits of increment entropy per sample: well under the 8 bytes of raw.
    assert!(out.len() < 480 * 3, "{} bytes", out.len());
    assert_eq!(decode_chunk(&out).unwrap(), samples);
}

#[test]
fn constant_series_cost_a_few_bytes() {
    let samples: Vec<Sample> = scrape_times(480).into_iter().map(|t| Sample::new(t, 2.5e9)).collect();
    let mut out = Vec::new();
    assert_eq!(encode_chunk(&mut out, &samples).value, Some(ValueCodec::Const));
    // 480 samples: 3 bits of jitter each (zstd removes the copies shared across series), 8 bytes of value.
    assert!(out.len() < 215, "{} bytes", out.len());
}

#[test]
fn float_seconds_with_nanosecond_noise_are_bit_patterns_range_coded() {
    // node_time_seconds as node_exporter computes it: float64(UnixNano) / 1e9, a scrape's time
    // plus a few hundred microseconds of varying delay. No exponent holds it below 2^53.
    let mut delay = 300_000i64;
    let samples: Vec<Sample> = scrape_times(480)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            delay = 300_000 + (i as i64 * 7_919_101) % 2_000_000;
            Sample::new(t, (t * 1_000_000 + delay) as f64 / 1e9)
        })
        .collect();
    check_codecs(&samples);
    let mut out = Vec::new();
    assert_eq!(encode_chunk(&mut out, &samples).value, Some(ValueCodec::BitsRc));
    // ~2 ms of spread is ~2^13 ulps (2^-22 s): about 2 bytes where raw takes 8.
    assert!(out.len() < 480 * 5 / 2, "{} bytes", out.len());
}

#[test]
fn bits_rc_is_not_tried_where_decimal_holds_every_value() {
    let samples: Vec<Sample> =
        scrape_times(100).into_iter().enumerate().map(|(i, t)| Sample::new(t, i as f64 * 0.25)).collect();
    assert_eq!(encode_chunk_with(&samples, TsCodec::Grid, ValueCodec::BitsRc), None);
    let consts: Vec<Sample> = scrape_times(100).into_iter().map(|t| Sample::new(t, f64::MAX)).collect();
    assert_eq!(encode_chunk_with(&consts, TsCodec::Grid, ValueCodec::BitsRc), None);
    let mut with_nan = samples.clone();
    with_nan[50].v = f64::NAN;
    assert!(encode_chunk_with(&with_nan, TsCodec::Grid, ValueCodec::BitsRc).is_some());
}
