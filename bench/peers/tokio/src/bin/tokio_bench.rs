//! tokio_bench: magpie's scheduler, sync and blocking-pool micro-benchmarks
//! written on Tokio, so both can be measured side by side in one run.
//!
//!     tokio_bench [--workers N] [--quick] [name...]
//!
//! Each result is one line on stdout, `name workers ns_per_op`, except
//! parked_1m, which prints KiB of RSS per parked task.  Every benchmark runs
//! REPS times (5, or 3 with --quick) on one runtime and the median is
//! printed; parked_1m runs once (see there).  --quick also shrinks
//! spawn_join_1m and parked_1m from 1,000,000 to 100,000 tasks.
//!
//! The shapes follow Tokio's own benches (benches/rt_multi_threaded.rs,
//! sync_mpsc.rs, sync_semaphore.rs, sync_rwlock.rs, sync_notify.rs) scaled to
//! the sizes magpie uses; go_bench mirrors this file line for line.

#[path = "../common.rs"]
mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, Mutex, Notify, RwLock, Semaphore};
use tokio::task::yield_now;

/// Benchmarks in the order they run (parked_1m last: it is the slowest and
/// leaves the most memory behind in the allocator).
const ALL: &[&str] = &[
    "ctx_switch",
    "spawn_many",
    "spawn_join_1m",
    "yield_many",
    "chained_spawn",
    "ping_pong",
    "chan_contention_bounded",
    "chan_contention_unbounded",
    "mutex_contention",
    "sem_concurrent",
    "rwlock_read_concurrent",
    "notify_one",
    "spawn_blocking",
    "parked_1m",
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ns_per(start: Instant, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// Runs `make()`'s future `reps` times, each time as a spawned task (so the
/// benchmark body is a task on a worker, like magpie's, not the block_on
/// thread), and returns the median of the ns/op values it reports.
fn measure<F, Fut>(rt: &Runtime, reps: usize, make: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = f64> + Send + 'static,
{
    let v = (0..reps)
        .map(|_| rt.block_on(async { tokio::spawn(make()).await.unwrap() }))
        .collect();
    median(v)
}

// ---------------------------------------------------------------- scheduler

/// Two tasks each yield YIELDS times; ns per yield over both tasks.
async fn ctx_switch() -> f64 {
    const YIELDS: usize = 100_000;
    let start = Instant::now();
    let a = tokio::spawn(async {
        for _ in 0..YIELDS {
            yield_now().await;
        }
    });
    let b = tokio::spawn(async {
        for _ in 0..YIELDS {
            yield_now().await;
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    ns_per(start, 2 * YIELDS)
}

/// One task spawns 100,000 tasks that each decrement a counter; the last one
/// notifies the spawner.  ns per spawned task.
async fn spawn_many() -> f64 {
    const TASKS: usize = 100_000;
    let rem = Arc::new(AtomicUsize::new(TASKS));
    let done = Arc::new(Notify::new());
    let start = Instant::now();
    for _ in 0..TASKS {
        let rem = rem.clone();
        let done = done.clone();
        tokio::spawn(async move {
            if rem.fetch_sub(1, Relaxed) == 1 {
                done.notify_one(); // stores a permit if the spawner is not waiting yet
            }
        });
    }
    done.notified().await;
    ns_per(start, TASKS)
}

/// Spawns `tasks` tasks keeping their JoinHandles, then joins them in order.
async fn spawn_join(tasks: usize) -> f64 {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        handles.push(tokio::spawn(async move { i }));
    }
    let mut sum = 0usize;
    for h in handles {
        sum = sum.wrapping_add(h.await.unwrap());
    }
    let ns = ns_per(start, tasks);
    assert_eq!(sum, tasks * (tasks - 1) / 2);
    ns
}

/// 200 tasks × 1,000 yields; ns per yield.
async fn yield_many() -> f64 {
    const TASKS: usize = 200;
    const YIELDS: usize = 1_000;
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async {
                for _ in 0..YIELDS {
                    yield_now().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    ns_per(start, TASKS * YIELDS)
}

/// Each task spawns the next, depth 1,000; the last signals completion.  One
/// chain takes tens of microseconds, so a measurement runs CHAINS chains
/// back to back; ns per spawn.
async fn chained_spawn() -> f64 {
    const DEPTH: usize = 1_000;
    const CHAINS: usize = 100;
    fn link(n: usize, done: oneshot::Sender<()>) {
        if n == 0 {
            let _ = done.send(());
        } else {
            tokio::spawn(async move { link(n - 1, done) });
        }
    }
    let start = Instant::now();
    for _ in 0..CHAINS {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move { link(DEPTH - 1, tx) }); // DEPTH tasks in all
        rx.await.unwrap();
    }
    ns_per(start, CHAINS * DEPTH)
}

/// One million tasks asleep at once: RSS before spawning and once all are
/// parked in the timer, in KiB per task.  Each task sleeps 1 s plus up to
/// 1 s (spread so wake-ups do not all land on one tick), which normally
/// outlasts the spawning.  On a slow or loaded machine some wake before the
/// measurement: such a task sleeps again for twice as long each time, so
/// every task is parked on a timer when RSS is read (bar the odd one
/// re-arming) without a storm of wake-ups.  Runs once, not REPS times:
/// memory freed by one run stays in the allocator, so a second run in the
/// same process would read low.
async fn parked(tasks: usize) -> f64 {
    let parked = Arc::new(AtomicUsize::new(0));
    let measured = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicUsize::new(tasks));
    let done = Arc::new(Notify::new());
    let before = rss_kib();
    for i in 0..tasks {
        let (parked, measured) = (parked.clone(), measured.clone());
        let (left, done) = (left.clone(), done.clone());
        tokio::spawn(async move {
            parked.fetch_add(1, Relaxed);
            let mut nap = Duration::from_millis(1_000 + (i % 1_000) as u64);
            loop {
                tokio::time::sleep(nap).await;
                if measured.load(Relaxed) {
                    break;
                }
                nap *= 2;
            }
            if left.fetch_sub(1, Relaxed) == 1 {
                done.notify_one();
            }
        });
    }
    // Every task has started once the counter is full; the short sleep lets
    // a task that is between its increment and its timer registration (on
    // another worker) finish parking.
    while parked.load(Relaxed) < tasks {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after = rss_kib();
    measured.store(true, Relaxed);
    done.notified().await; // all wake up (within 2 s unless they re-slept) and finish
    after.saturating_sub(before) as f64 / tasks as f64
}

/// Resident set size of this process in KiB (VmRSS in /proc/self/status).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// --------------------------------------------------------------------- sync

/// 1,000 rounds as in Tokio's ping_pong: a driver spawns every round; each
/// round spawns a partner task and exchanges two one-shot messages with it;
/// the last round to finish signals the driver.  The rounds take well under
/// a millisecond, so one measurement is ROUNDS_REPEAT batches; ns per round.
async fn ping_pong() -> f64 {
    const ROUNDS: usize = 1_000;
    const ROUNDS_REPEAT: usize = 10;
    let start = Instant::now();
    for _ in 0..ROUNDS_REPEAT {
        let rem = Arc::new(AtomicUsize::new(ROUNDS));
        let done = Arc::new(Notify::new());
        for _ in 0..ROUNDS {
            let (rem, done) = (rem.clone(), done.clone());
            tokio::spawn(async move {
                let (tx1, rx1) = oneshot::channel::<()>();
                let (tx2, rx2) = oneshot::channel::<()>();
                tokio::spawn(async move {
                    rx1.await.unwrap();
                    tx2.send(()).unwrap();
                });
                tx1.send(()).unwrap();
                rx2.await.unwrap();
                if rem.fetch_sub(1, Relaxed) == 1 {
                    done.notify_one();
                }
            });
        }
        done.notified().await;
    }
    ns_per(start, ROUNDS_REPEAT * ROUNDS)
}

const PRODUCERS: usize = 5;
const MESSAGES: usize = 1_000; // per producer
/// Channel rounds per measurement (5,000 messages take about a millisecond).
const CHAN_REPEAT: usize = 20;

/// 5 producer tasks × 1,000 messages into one consumer (the benchmark task)
/// through a bounded channel of capacity 1,000; ns per message.
async fn chan_bounded() -> f64 {
    let start = Instant::now();
    for _ in 0..CHAN_REPEAT {
        let (tx, mut rx) = mpsc::channel::<usize>(1_000);
        for _ in 0..PRODUCERS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..MESSAGES {
                    tx.send(i).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, PRODUCERS * MESSAGES);
    }
    ns_per(start, CHAN_REPEAT * PRODUCERS * MESSAGES)
}

/// The same through an unbounded channel.
async fn chan_unbounded() -> f64 {
    let start = Instant::now();
    for _ in 0..CHAN_REPEAT {
        let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
        for _ in 0..PRODUCERS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..MESSAGES {
                    tx.send(i).unwrap();
                }
            });
        }
        drop(tx);
        let mut got = 0;
        while rx.recv().await.is_some() {
            got += 1;
        }
        assert_eq!(got, PRODUCERS * MESSAGES);
    }
    ns_per(start, CHAN_REPEAT * PRODUCERS * MESSAGES)
}

const CONTENDERS: usize = 5;
const LOCKS: usize = 10_000; // per contender

/// Runs CONTENDERS copies of `body` as tasks and waits for all; ns per
/// iteration of the loop inside `body` (LOCKS per task).
async fn contend<F, Fut>(body: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..CONTENDERS).map(|_| tokio::spawn(body())).collect();
    for h in handles {
        h.await.unwrap();
    }
    ns_per(start, CONTENDERS * LOCKS)
}

/// 5 tasks × 10,000 lock/unlock of tokio::sync::Mutex, incrementing a
/// counter inside; ns per lock.
async fn mutex_contention() -> f64 {
    let m = Arc::new(Mutex::new(0usize));
    let ns = contend(|| {
        let m = m.clone();
        async move {
            for _ in 0..LOCKS {
                *m.lock().await += 1;
            }
        }
    })
    .await;
    assert_eq!(*m.lock().await, CONTENDERS * LOCKS);
    ns
}

/// 5 tasks × 10,000 acquire/release of a Semaphore with 2 permits.
async fn sem_concurrent() -> f64 {
    let s = Arc::new(Semaphore::new(2));
    contend(|| {
        let s = s.clone();
        async move {
            for _ in 0..LOCKS {
                let permit = s.acquire().await.unwrap();
                drop(permit);
            }
        }
    })
    .await
}

/// 5 tasks × 10,000 read locks of tokio::sync::RwLock.
async fn rwlock_read_concurrent() -> f64 {
    let l = Arc::new(RwLock::new(1usize));
    contend(|| {
        let l = l.clone();
        async move {
            let mut sum = 0usize;
            for _ in 0..LOCKS {
                sum += *l.read().await;
            }
            assert_eq!(sum, LOCKS);
        }
    })
    .await
}

/// A waiter task waits on a Notify 10,000 times and acknowledges each wake
/// through a second Notify; the benchmark task calls notify_one and waits for
/// the ack each time.  ns per notification (round trip).
async fn notify_one() -> f64 {
    const ROUNDS: usize = 10_000;
    let notify = Arc::new(Notify::new());
    let ack = Arc::new(Notify::new());
    let start = Instant::now();
    let waiter = {
        let (notify, ack) = (notify.clone(), ack.clone());
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                notify.notified().await;
                ack.notify_one();
            }
        })
    };
    for _ in 0..ROUNDS {
        notify.notify_one();
        ack.notified().await;
    }
    waiter.await.unwrap();
    ns_per(start, ROUNDS)
}

// ------------------------------------------------------------ blocking pool

/// Tokio's spawn_blocking bench at concurrency `c`: c tasks each run batches
/// of 16 no-op spawn_blocking jobs and await each batch; 1,024 jobs in all.
/// ns per job.
async fn spawn_blocking(c: usize) -> f64 {
    const TOTAL: usize = 1_024;
    const BATCH: usize = 16;
    let per_task = TOTAL / c; // every c in 1..64 divides 1,024
    let start = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            tokio::spawn(async move {
                let mut left = per_task;
                while left > 0 {
                    let n = left.min(BATCH);
                    let jobs: Vec<_> = (0..n)
                        .map(|_| tokio::task::spawn_blocking(|| ()))
                        .collect();
                    for j in jobs {
                        j.await.unwrap();
                    }
                    left -= n;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    ns_per(start, TOTAL)
}

// --------------------------------------------------------------------- main

fn main() {
    let args = common::parse_args();
    for n in &args.names {
        if !ALL.contains(&n.as_str()) {
            eprintln!("tokio_bench: unknown benchmark {} (known: {})", n, ALL.join(" "));
            std::process::exit(2);
        }
    }
    let w = args.workers;
    let reps = if args.quick { 3 } else { 5 };
    let big = if args.quick { 100_000 } else { 1_000_000 };
    let rt = common::runtime(w);
    for &name in ALL {
        if !args.names.is_empty() && !args.names.iter().any(|n| n == name) {
            continue;
        }
        let ns = match name {
            "ctx_switch" => measure(&rt, reps, ctx_switch),
            "spawn_many" => measure(&rt, reps, spawn_many),
            "spawn_join_1m" => measure(&rt, reps, move || spawn_join(big)),
            "yield_many" => measure(&rt, reps, yield_many),
            "chained_spawn" => measure(&rt, reps, chained_spawn),
            "ping_pong" => measure(&rt, reps, ping_pong),
            "chan_contention_bounded" => measure(&rt, reps, chan_bounded),
            "chan_contention_unbounded" => measure(&rt, reps, chan_unbounded),
            "mutex_contention" => measure(&rt, reps, mutex_contention),
            "sem_concurrent" => measure(&rt, reps, sem_concurrent),
            "rwlock_read_concurrent" => measure(&rt, reps, rwlock_read_concurrent),
            "notify_one" => measure(&rt, reps, notify_one),
            "spawn_blocking" => {
                for c in [1, 2, 4, 8, 16, 32, 64] {
                    let ns = measure(&rt, reps, move || spawn_blocking(c));
                    println!("spawn_blocking_c{} {} {:.1}", c, w, ns);
                }
                continue;
            }
            "parked_1m" => {
                let kib = measure(&rt, 1, move || parked(big));
                // Two decimals: a Tokio task is a fraction of a KiB.
                println!("parked_1m {} {:.2}", w, kib);
                continue;
            }
            _ => unreachable!(),
        };
        println!("{} {} {:.1}", name, w, ns);
    }
}
