//! An agent hub: a coordinator assigns tasks to spawned, supervised worker agents found by
//! capability.
//!
//! - Six workers are spawned (`hub.spawn_with`) with a capability each (two per skill) and
//!   join a group per skill. The hub runs their handlers and restarts them when they fail;
//!   one worker fails on its first task, like a model call that timed out.
//! - The coordinator finds the workers (`hub.find`) and sends each task by capability
//!   (`request_capability`), eight at a time: the member with the shortest mailbox takes it.
//!   A task whose handler failed comes back as an error at once and is sent again.
//! - Workers run the CPU part of a task on the hub's worker pool, so they never stall the
//!   runtime; progress goes out on the `progress` topic.
//! - A writer agent streams a summary chunk by chunk (`request_stream` / `respond`); the
//!   coordinator reads one summary whole and cancels the next after its first chunk, and
//!   the writer stops (its next `send` fails with `Cancelled`).
//!
//! `cargo run --release --example agent_hub`

use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarmbus::{AgentId, Context, Envelope, Error, Hub, HubConfig, Priority, Restart};

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

    // Six spawned workers, two per capability; worker 0 fails on its first task.
    let mut workers = Vec::new();
    for (i, skill) in CAPABILITIES.iter().cycle().take(6).enumerate() {
        let pool = hub.clone();
        let calls = Arc::new(AtomicU32::new(0));
        let handle = hub.spawn_with(
            format!("worker-{i}-{skill}"),
            [*skill],
            move |ctx: Context, env: Envelope| {
                let (pool, calls) = (pool.clone(), calls.clone());
                async move {
                    if i == 0 && calls.fetch_add(1, Ordering::Relaxed) == 0 {
                        anyhow::bail!("the model call timed out");
                    }
                    let body = env.payload().to_text()?;
                    let (needs, input) = body.split_once(':').unwrap_or(("", ""));
                    let (needs, input) = (needs.to_string(), input.to_string());
                    let result = pool
                        .submit(Priority::Normal, move || work(&needs, &input))
                        .await?;
                    ctx.reply(&env, result).await?;
                    Ok(())
                }
            },
            Restart::default(),
        )?;
        handle.join_group(&format!("{skill}-workers"))?;
        workers.push(handle);
    }
    for skill in CAPABILITIES {
        println!("{skill}: {} workers", hub.find(skill).len());
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
    let coordinator_ref = &coordinator;
    let outcomes: Vec<anyhow::Result<(String, AgentId, u32)>> = futures_util::stream::iter(&tasks)
        .map(|task| async move {
            let body = format!("{}:{}", task.needs, task.input);
            for attempt in 1..=3 {
                match coordinator_ref
                    .request_capability(task.needs, body.clone(), Duration::from_secs(5))
                    .await
                {
                    Ok(reply) => {
                        coordinator_ref
                            .publish(
                                "progress",
                                format!("task {} done by {}", task.id, reply.from()),
                            )
                            .await?;
                        return Ok((reply.payload().to_text()?, reply.from(), attempt));
                    }
                    // The worker's handler failed: it restarts; send the task again.
                    Err(Error::StreamFailed(why)) => println!("task {}: {why}; again", task.id),
                    Err(e) => return Err(e.into()),
                }
            }
            anyhow::bail!("task {} failed three times", task.id)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut results = Vec::new();
    let mut per_worker: HashMap<AgentId, u32> = HashMap::new();
    let mut retried = 0;
    for outcome in outcomes {
        let (text, by, attempts) = outcome?;
        *per_worker.entry(by).or_default() += 1;
        retried += u32::from(attempts > 1);
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

    let restarts: u32 = workers.iter().map(|w| w.restarts()).sum();
    let per_worker: Vec<u32> = workers
        .iter()
        .map(|w| per_worker.get(&w.id()).copied().unwrap_or(0))
        .collect();
    let report = hub.shutdown().await?;
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
    println!(
        "restarts {restarts}, tasks sent again {retried}, handler failures kept as dead letters {}",
        m.dead_letters_recorded
            .get("handler_failed")
            .copied()
            .unwrap_or(0)
    );
    anyhow::ensure!(results.len() == tasks.len() && progress == tasks.len());
    anyhow::ensure!(
        restarts == 1 && retried == 1,
        "one failure, one restart, one retry"
    );
    anyhow::ensure!(per_worker.iter().all(|&n| n > 0), "every worker took tasks");
    anyhow::ensure!(report.undelivered == 0);
    Ok(())
}
