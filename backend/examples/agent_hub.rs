//! An agent hub: a coordinator assigns tasks to worker agents by capability.
//!
//! - Workers announce their capabilities on the `capabilities` topic.
//! - The coordinator assigns each task to a capable worker with `request` (timeout, retry
//!   on another worker), and publishes progress on the `progress` topic.
//! - Workers run the CPU part of a task on the hub's worker pool, so their receive loops
//!   never stall.
//! - A writer agent streams a summary chunk by chunk (`request_stream` / `respond`); the
//!   coordinator reads one summary whole and cancels the next after its first chunk, and
//!   the writer stops (its next `send` fails with `Cancelled`).
//!
//! `cargo run --release --example agent_hub`

use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use swarmbus::{AgentId, Error, Hub, HubConfig, Priority};

const CAPABILITIES: [&str; 3] = ["parse", "score", "plan"];

#[derive(Debug, Clone)]
struct Task {
    id: u32,
    needs: &'static str,
    input: String,
}

fn work(needs: &str, input: &str) -> String {
    // Real CPU work: a hash chain whose length depends on the skill.
    let rounds = match needs {
        "parse" => 20_000,
        "score" => 40_000,
        _ => 80_000,
    };
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..rounds {
        for b in input.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{needs}({input})={h:016x}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let hub = Hub::start(HubConfig::default())?;
    let coordinator = hub.register("coordinator")?;
    let mut monitor = hub.register("monitor")?;
    monitor.subscribe("progress")?;
    let mut registry_inbox = hub.register("capability-registry")?;
    registry_inbox.subscribe("capabilities")?;

    // Six workers, two per capability.
    let mut workers = Vec::new();
    for (i, skill) in CAPABILITIES.iter().cycle().take(6).enumerate() {
        let mut agent = hub.register(format!("worker-{i}-{skill}"))?;
        let hub = hub.clone();
        let skill = *skill;
        agent.publish("capabilities", skill).await?;
        workers.push(tokio::spawn(async move {
            let mut done = 0u32;
            while let Some(env) = agent.recv().await {
                if !env.is_request() {
                    continue;
                }
                let body = env.payload().to_text()?;
                let (needs, input) = body.split_once(':').unwrap_or(("", ""));
                if needs != skill {
                    agent
                        .reply(&env, format!("error: {skill} cannot {needs}"))
                        .await?;
                    continue;
                }
                let (needs, input) = (needs.to_string(), input.to_string());
                let result = hub
                    .submit(Priority::Normal, move || work(&needs, &input))
                    .await?;
                agent.reply(&env, result).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    hub.flush();

    // Learn who can do what from the announcements.
    let mut capable: HashMap<String, Vec<AgentId>> = HashMap::new();
    for _ in 0..workers.len() {
        let env = tokio::time::timeout(Duration::from_secs(2), registry_inbox.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("hub closed"))?;
        capable
            .entry(env.payload().to_text()?)
            .or_default()
            .push(env.from());
    }

    let tasks: Vec<Task> = (0..60)
        .map(|id| Task {
            id,
            needs: CAPABILITIES[id as usize % 3],
            input: format!("doc-{id}"),
        })
        .collect();

    let monitor_task = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(env) = monitor.recv().await {
            seen += 1;
            if seen % 20 == 0 {
                println!("monitor: {}", env.payload().to_text().unwrap_or_default());
            }
        }
        seen
    });

    let started = Instant::now();
    let mut results = Vec::new();
    let mut next: HashMap<&str, usize> = HashMap::new();
    for task in &tasks {
        let pool = capable
            .get(task.needs)
            .ok_or_else(|| anyhow::anyhow!("nobody can {}", task.needs))?;
        let turn = next.entry(task.needs).or_default();
        let worker = pool[*turn % pool.len()];
        *turn += 1;
        let reply = coordinator
            .request(
                worker,
                format!("{}:{}", task.needs, task.input),
                Duration::from_secs(5),
            )
            .await?;
        let text = reply.payload().to_text()?;
        anyhow::ensure!(
            !text.starts_with("error"),
            "task {} failed: {text}",
            task.id
        );
        coordinator
            .publish(
                "progress",
                format!("task {} done by {}", task.id, reply.from()),
            )
            .await?;
        results.push(text);
    }
    let elapsed = started.elapsed();

    // Streamed replies: a writer that sends its summary word by word until it is done or
    // its caller cancels.
    let mut writer = hub.register("writer")?;
    let writer_id = writer.id();
    let writing = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let req = writer
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("closed"))?;
            let mut out = writer.respond(&req)?;
            let words = format!("summary of {}", req.payload().to_text()?);
            let mut stopped = None;
            for word in words.split(' ').chain(std::iter::repeat_n("more", 1000)) {
                if let Err(e) = out.send(word.to_string()).await {
                    stopped = Some(e);
                    break;
                }
                tokio::task::yield_now().await;
            }
            match stopped {
                Some(e) => outcomes.push(e.to_string()),
                None => {
                    out.finish("end").await?;
                    outcomes.push("finished".into());
                }
            }
        }
        Ok::<_, anyhow::Error>(outcomes)
    });
    let mut stream = coordinator
        .request_stream(writer_id, "all 60 tasks", Duration::from_secs(5))
        .await?;
    let mut words = 0;
    while let Some(chunk) = stream.next().await {
        chunk?;
        words += 1;
    }
    let mut stream = coordinator
        .request_stream(
            writer_id,
            "nothing, on second thought",
            Duration::from_secs(5),
        )
        .await?;
    let first = stream
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("no chunk"))??;
    stream.cancel(); // the user gave up: the writer stops, no more paid-for words
    let outcomes = writing.await??;
    println!(
        "streamed a summary of {words} chunks; cancelled the second after {:?}; writer: {outcomes:?}",
        first.payload().to_text()?
    );
    anyhow::ensure!(outcomes.len() == 2 && outcomes[0] == "finished");
    anyhow::ensure!(outcomes[1] == Error::Cancelled.to_string());

    let report = hub.shutdown().await?;
    let mut per_worker = Vec::new();
    for w in workers {
        per_worker.push(w.await??);
    }
    let progress = monitor_task.await?;
    let m = hub.metrics();
    println!(
        "{} tasks in {:.1} ms; per worker {:?}; progress messages seen {}",
        results.len(),
        elapsed.as_secs_f64() * 1e3,
        per_worker,
        progress
    );
    println!(
        "requests {} replies {}; worker pool completed {} units; shutdown: delivered {}, undelivered {}",
        m.requests,
        m.replies,
        m.workers.tasks_completed.total(),
        report.delivered,
        report.undelivered
    );
    anyhow::ensure!(results.len() == tasks.len() && progress == tasks.len());
    anyhow::ensure!(report.undelivered == 0);
    Ok(())
}
