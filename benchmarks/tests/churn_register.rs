//! `churn` and `register` at tiny sizes: nothing lost, and the counts add up.

use std::time::Duration;
use swarmbus_benchmarks::load::{self, register, LoadSpec, Pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_delivers_to_every_short_lived_agent() {
    let mut spec = LoadSpec::new(Pattern::Churn, 20, Duration::from_millis(500));
    spec.churn_rate = 2_000;
    spec.churn_in_flight = 200;
    let r = load::run(spec).await.expect("churn run");
    assert_eq!(r.messages_lost, 0);
    assert_eq!(r.messages_sent, r.messages_delivered);
    assert!(
        r.messages_delivered > 0,
        "the long-lived agents moved nothing"
    );
    let c = r.churn.expect("churn figures");
    assert_eq!(c.rate_target, 2_000);
    // Half a second at 2,000/s: about 1,000, not far off either way on a busy machine.
    assert!(
        (200..=1_300).contains(&c.registered),
        "registered {}",
        c.registered
    );
    assert_eq!(c.register_errors, 0);
    assert_eq!(c.send_errors, 0);
    assert_eq!(
        c.messages_sent, c.registered,
        "one message per short-lived agent"
    );
    assert_eq!(c.messages_missed, 0);
    assert_eq!(c.messages_delivered, c.messages_sent);
    assert!(c.max_in_flight >= 1 && c.max_in_flight <= 200);
    assert!(c.latency_us.samples > 0);
    assert!(c.compare.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_compare_reports_both_runs() {
    let mut spec = LoadSpec::new(Pattern::Churn, 10, Duration::from_millis(300));
    spec.churn_rate = 1_000;
    let r = load::churn::compare(spec).await.expect("compare");
    let c = r.churn.expect("churn figures");
    let k = c.compare.expect("compare figures");
    assert!(k.without_messages_delivered > 0);
    assert!(k.without_msgs_per_sec > 0.0);
    assert_eq!(k.with_msgs_per_sec, r.msgs_per_sec);
    assert!((k.ratio - r.msgs_per_sec / k.without_msgs_per_sec).abs() < 1e-9);
    assert!(c.registered > 0);
    assert_eq!(c.messages_delivered, c.messages_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_rate_of_zero_is_plain_direct_traffic() {
    let mut spec = LoadSpec::new(Pattern::Churn, 10, Duration::from_millis(200));
    spec.churn_rate = 0;
    let r = load::run(spec).await.expect("run");
    let c = r.churn.expect("churn figures");
    assert_eq!((c.registered, c.messages_sent), (0, 0));
    assert!(r.messages_delivered > 0);
}

#[test]
fn checkpoints_are_powers_of_ten_from_ten_thousand() {
    assert_eq!(register::checkpoints(0), Vec::<usize>::new());
    assert_eq!(register::checkpoints(500), vec![500]);
    assert_eq!(register::checkpoints(10_000), vec![10_000]);
    assert_eq!(register::checkpoints(25_000), vec![10_000, 25_000]);
    assert_eq!(
        register::checkpoints(1_000_000),
        vec![10_000, 100_000, 1_000_000]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_counts_add_up() {
    let spec = LoadSpec::new(Pattern::Register, 25_000, Duration::from_secs(1));
    let r = load::run(spec).await.expect("register run");
    let g = r.register.expect("register figures");
    assert!(g.completed);
    assert_eq!((g.target, g.registered), (25_000, 25_000));
    assert_eq!(r.agents, 25_000);
    let counts: Vec<u64> = g.checkpoints.iter().map(|c| c.agents).collect();
    assert_eq!(counts, vec![10_000, 25_000]);
    for c in &g.checkpoints {
        assert_eq!(c.hub_agents, c.agents, "the hub counts what was registered");
        assert_eq!(c.window_agents, 10_000);
        assert!(c.window_us_per_agent > 0.0);
        assert!(c.elapsed_s > 0.0);
    }
    assert!(g.checkpoints[0].elapsed_s < g.checkpoints[1].elapsed_s);
    assert_eq!(
        g.agents_after_drop, 0,
        "dropping every agent empties the registry"
    );
    assert_eq!(g.shutdown_undelivered, 0);
    assert!(g.total_s > 0.0 && g.agents_per_sec > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_stops_at_the_time_limit_and_says_so() {
    let mut spec = LoadSpec::new(Pattern::Register, 5_000_000, Duration::from_secs(1));
    spec.time_limit = Duration::from_millis(50);
    let r = load::run(spec).await.expect("register run");
    let g = r.register.expect("register figures");
    assert!(!g.completed);
    assert!(g.registered < 5_000_000);
    assert_eq!(r.agents as u64, g.registered);
    let last = g.checkpoints.last().expect("a checkpoint at the stop");
    assert_eq!(last.agents, g.registered);
    assert_eq!(last.hub_agents, g.registered);
    assert_eq!(g.agents_after_drop, 0);
}
