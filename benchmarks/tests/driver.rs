//! The shared driver: every system runs every workload, counts honestly and loses nothing.

use std::time::Duration;
use swarmbus_benchmarks::peers::matrix::{self, MatrixOptions, Workload};
use swarmbus_benchmarks::peers::{PeerPattern, PeerSpec, System};

#[test]
fn every_system_runs_every_workload() {
    let opts = MatrixOptions {
        duration: Duration::from_millis(200),
        ..MatrixOptions::default()
    };
    let workloads: Vec<Workload> = [
        "one-to-one",
        "direct",
        "request",
        "low-load",
        "one-to-one-open",
    ]
    .iter()
    .map(|w| w.parse().expect("workload"))
    .collect();
    for &workload in &workloads {
        for system in System::ALL {
            let mut spec = matrix::spec_for(workload, system, &opts);
            if system == System::FlumeVec50 && workload.pattern == PeerPattern::Direct {
                // A partial Vec per destination must fit under the cap: fewer agents.
                spec.agents = 100;
            }
            let what = format!("{} {}", system.as_str(), workload.name());
            let r = matrix::run_once(spec).unwrap_or_else(|e| panic!("{what}: {e:#}"));
            assert_eq!(r.messages_lost, 0, "{what}");
            assert_eq!(r.messages, r.messages_sent, "{what}");
            assert_eq!(r.send_errors, 0, "{what}");
            assert!(r.messages > 0, "{what} moved nothing");
            assert!(r.per_sec > 0.0, "{what}");
            assert!(r.latency_us.samples > 0, "{what} has no latency");
            assert_eq!(r.system, system.as_str());
            assert_eq!(r.workload, workload.name());
            assert_eq!(r.in_flight.is_none(), workload.open, "{what}");
            if workload.pattern == PeerPattern::LowLoad {
                // One message a millisecond, every one timed: ~200 in 200 ms.
                assert!(
                    (100..=250).contains(&r.messages),
                    "{what}: {} messages",
                    r.messages
                );
                assert_eq!(r.latency_us.samples, r.messages, "{what}");
            }
        }
    }
}

#[test]
fn the_cap_bounds_what_is_in_flight() {
    // One request in flight at a time across 100 requesters: round trips never overlap,
    // so the count is far below what the uncapped run does with the same requesters.
    let mut capped = PeerSpec::new(
        System::Tokio,
        PeerPattern::Request,
        Duration::from_millis(300),
    );
    capped.in_flight = Some(1);
    let capped = matrix::run_once(capped).expect("capped run");
    let mut open = PeerSpec::new(
        System::Tokio,
        PeerPattern::Request,
        Duration::from_millis(300),
    );
    open.in_flight = None;
    let open = matrix::run_once(open).expect("open run");
    assert!(capped.messages > 0 && open.messages > 0);
    assert!(
        capped.per_sec * 1.5 < open.per_sec,
        "cap 1: {:.0}/s, open: {:.0}/s",
        capped.per_sec,
        open.per_sec
    );
}

#[test]
fn the_matrix_summarizes_every_cell() {
    let opts = MatrixOptions {
        cells: vec![
            ("one-to-one".parse().expect("w"), System::Swarmbus),
            ("one-to-one".parse().expect("w"), System::Flume),
        ],
        reps: 2,
        duration: Duration::from_millis(150),
        ..MatrixOptions::default()
    };
    let mut runs = Vec::new();
    let result = matrix::run_matrix(&opts, |rep, w, s, r| {
        runs.push((rep, w, s, r.is_ok()));
    })
    .expect("matrix");
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    // Interleaved: rep 1 of both cells before rep 2 of either.
    let reps: Vec<usize> = runs.iter().map(|r| r.0).collect();
    assert_eq!(reps, [1, 1, 2, 2]);
    assert_eq!(result.cells.len(), 2);
    for (_, _, cell) in &result.cells {
        assert_eq!(cell.reps, 2);
        assert_eq!(cell.per_sec_reps.len(), 2);
        assert!(cell.per_sec > 0.0);
        assert_eq!(cell.messages_lost, 0);
    }
    let table = matrix::markdown(&result, &opts);
    assert!(table.contains("| one-to-one |"), "{table}");
    assert!(table.contains("swarmbus ÷ raw flume"), "{table}");
}
