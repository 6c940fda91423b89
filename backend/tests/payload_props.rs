//! Property tests: any payload comes back byte-for-byte, compressed or not; any corruption
//! of a compressed payload is an error or the exact original, never a panic.

use proptest::prelude::*;
use swarmbus::{Hub, HubConfig, Payload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

fn payloads() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        // Compressible: few distinct bytes, long.
        proptest::collection::vec(prop::sample::select(b"ab{}\":,".to_vec()), 1000..6000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_through_the_hub(bodies in proptest::collection::vec(payloads(), 1..8)) {
        let rt = runtime();
        rt.block_on(async {
            let hub = Hub::start(HubConfig::default()).unwrap();
            let a = hub.register("a").unwrap();
            let mut b = hub.register("b").unwrap();
            for body in &bodies {
                a.send(b.id(), body.clone()).await.unwrap();
            }
            hub.flush();
            for body in &bodies {
                let env = b.recv().await.unwrap();
                prop_assert_eq!(env.payload().len(), body.len());
                prop_assert_eq!(&*env.payload().bytes().unwrap(), &body[..]);
                if env.payload().is_compressed() {
                    prop_assert!(body.len() > 1024);
                    prop_assert!(env.payload().wire_len() < body.len());
                }
            }
            hub.shutdown().await.unwrap();
            Ok(())
        })?;
    }

    #[test]
    fn corruption_never_panics(body in proptest::collection::vec(prop::sample::select(b"xyz".to_vec()), 1100..3000),
                               flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
                               cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let rt = runtime();
        let compressed = rt.block_on(async {
            // Every payload over 1 KiB compressed, as for a backlog or another hub.
            let mut config = HubConfig::default();
            config.compress_backlog = 0;
            let hub = Hub::start(config).unwrap();
            let a = hub.register("a").unwrap();
            let mut b = hub.register("b").unwrap();
            a.send(b.id(), body.clone()).await.unwrap();
            hub.flush();
            let env = b.recv().await.unwrap();
            env.payload().clone()
        });
        prop_assert!(compressed.is_compressed());
        let mut wire = compressed.wire_bytes().to_vec();
        for (i, x) in flips {
            let i = i.index(wire.len());
            wire[i] ^= x;
        }
        if truncate {
            wire.truncate(cut.index(wire.len()));
        }
        match Payload::from_compressed(wire, body.len()).bytes() {
            Ok(bytes) => prop_assert_eq!(&*bytes, &body[..]),
            Err(swarmbus::Error::CorruptPayload(_)) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
