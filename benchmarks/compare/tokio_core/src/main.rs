//! Tokio versions of corio's core benchmarks (benchmarks/bench_core.cpp), for a
//! side-by-side comparison. Not part of the CMake/meson build: see ../run.sh.
//!
//!   cargo build --release --offline      # in benchmarks/compare/tokio_core/
//!
//!   tokio_core [--glibc-trim]
//!
//! Every workload runs on a fresh single-threaded (current_thread) runtime,
//! 3 times; the best (minimum) of the 3 is printed. Tasks are started with
//! tokio::spawn from inside block_on, so they run on that same thread.
//!
//! glibc's heap trimming is turned off (mallopt M_TRIM_THRESHOLD) unless
//! --glibc-trim is given. Dropping a runtime frees all its task memory at
//! once, and by default glibc then hands the top of the heap back to the OS,
//! so every run would pay the first-touch page faults of a cold heap again
//! (on the reference VM: spawn about 3x slower, timers +0.4 s). Asio's and
//! Python's runs reuse the memory their allocator kept; with trimming off,
//! Tokio's best of 3 is the warm case too.
use std::alloc::{GlobalAlloc, Layout, System};
use std::process;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::task::{self, JoinHandle};

// ---- heap bytes in use ---------------------------------------------------
// A counting wrapper around the system allocator (glibc malloc): the bytes
// currently allocated, as requested by Rust. Exact, like glibc's mallinfo2()
// in-use figure that asio_core.cpp reads (which also counts malloc's own
// per-chunk overhead, 8-16 bytes a block; this does not).
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            IN_USE.fetch_add(layout.size(), Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        System.dealloc(p, layout);
        IN_USE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, layout, new_size);
        if !q.is_null() {
            IN_USE.fetch_add(new_size, Relaxed);
            IN_USE.fetch_sub(layout.size(), Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// glibc's mallopt(3); M_TRIM_THRESHOLD is -1 in <malloc.h>.
extern "C" {
    fn mallopt(param: i32, value: i32) -> i32;
}
const M_TRIM_THRESHOLD: i32 = -1;

fn heap_in_use() -> usize {
    IN_USE.load(Relaxed)
}

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("tokio_core: check failed: {what}");
        process::exit(1);
    }
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

// One single-threaded runtime per run, with the timer driver (no I/O driver).
fn runtime() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

// ---- 1. spawn: mirrors corio's spawn benchmark ---------------------------
// Create n tasks that each return their index, then await each in turn and sum.
fn bench_spawn(n: u64) -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let t0 = Instant::now();
        let handles: Vec<JoinHandle<u64>> = (0..n).map(|i| task::spawn(async move { i })).collect();
        let mut sum = 0u64;
        for h in handles {
            sum += h.await.expect("spawn task failed");
        }
        let ms = ms_since(t0);
        check(sum == n * (n - 1) / 2, "spawn sum");
        ms
    })
}

// ---- 2. switch: mirrors corio's sleep(0) switch benchmark ----------------
// `tasks` tasks each yield to the scheduler `yields` times (yield_now).
async fn yield_task(yields: u64) -> u64 {
    let mut done = 0;
    for _ in 0..yields {
        task::yield_now().await;
        done += 1;
    }
    done
}

fn bench_switch(tasks: u64, yields: u64) -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let t0 = Instant::now();
        let handles: Vec<JoinHandle<u64>> = (0..tasks).map(|_| task::spawn(yield_task(yields))).collect();
        let mut done = 0u64;
        for h in handles {
            done += h.await.expect("switch task failed");
        }
        let ms = ms_since(t0);
        check(done == tasks * yields, "switch count");
        ms
    })
}

// ---- 3. timers: mirrors corio's many-sleepers benchmark ------------------
// Task i sleeps i * (1 s / n), so the n sleeps are spread over one second.
// The Sleep (with its timer-wheel entry) lives inside the task; it joins the
// wheel on its first poll, so the heap is read once every task has been
// polled once. Tasks are counted as they start; a task's first poll goes on
// to poll its Sleep before the main task can look at the count again.
static STARTED: AtomicUsize = AtomicUsize::new(0);

async fn sleep_task(i: u64, n: u64) {
    STARTED.fetch_add(1, Relaxed);
    tokio::time::sleep(Duration::from_nanos(1_000_000_000 * i / n)).await;
}

struct TimerResult {
    ms: f64,
    bytes_per_task: f64,
}

fn bench_timers(n: u64) -> TimerResult {
    let rt = runtime();
    rt.block_on(async {
        STARTED.store(0, Relaxed);
        let mut handles: Vec<JoinHandle<()>> = Vec::with_capacity(n as usize);
        let before = heap_in_use();
        let t0 = Instant::now();
        for i in 0..n {
            handles.push(task::spawn(sleep_task(i, n)));
        }
        // yield_now() defers our wake-up to the scheduler's next driver turn,
        // which comes after a batch of up to 61 tasks (event_interval), so
        // this takes about n / 61 yields. The heap figure no longer moves
        // after that (checked: one more yield reads the same bytes).
        while STARTED.load(Relaxed) < n as usize {
            task::yield_now().await;
        }
        let during = heap_in_use();
        for h in handles {
            h.await.expect("timer task failed");
        }
        let ms = ms_since(t0);
        TimerResult { ms, bytes_per_task: (during as f64 - before as f64) / n as f64 }
    })
}

// Each run's time goes to stderr ("# ..."), so the noise can be seen.
fn note_run(what: &str, rep: usize, ms: f64) {
    eprintln!("# tokio {what} run {}: {ms:.1} ms", rep + 1);
}

fn main() {
    const REPS: usize = 3;
    const SPAWN_N: u64 = 1_000_000;
    const SWITCH_TASKS: u64 = 1_000;
    const SWITCH_YIELDS: u64 = 1_000;
    const TIMER_N: u64 = 100_000;

    let glibc_trim = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--glibc-trim") => true,
        Some(_) => {
            eprintln!("usage: tokio_core [--glibc-trim]");
            process::exit(2);
        }
    };
    if !glibc_trim {
        // Never give freed heap back to the OS (see the top of this file).
        check(unsafe { mallopt(M_TRIM_THRESHOLD, i32::MAX) } == 1, "mallopt(M_TRIM_THRESHOLD)");
        eprintln!("# tokio: glibc heap trimming off (--glibc-trim keeps it on)");
    }

    let mut best = f64::INFINITY;
    for r in 0..REPS {
        let ms = bench_spawn(SPAWN_N);
        note_run("spawn", r, ms);
        best = best.min(ms);
    }
    println!(
        "tokio spawn {SPAWN_N} tasks: {best:.1} ms ({:.1} ns/task)",
        best * 1e6 / SPAWN_N as f64
    );

    let switches = SWITCH_TASKS * SWITCH_YIELDS;
    best = f64::INFINITY;
    for r in 0..REPS {
        let ms = bench_switch(SWITCH_TASKS, SWITCH_YIELDS);
        note_run("switch", r, ms);
        best = best.min(ms);
    }
    println!(
        "tokio switch {switches} switches: {best:.1} ms ({:.1} ns/switch)",
        best * 1e6 / switches as f64
    );

    // Wall time: best of 3. Memory: exact heap bytes (not RSS), so it barely
    // varies between runs; the smallest is printed.
    let mut bt = TimerResult { ms: f64::INFINITY, bytes_per_task: f64::INFINITY };
    for r in 0..REPS {
        let t = bench_timers(TIMER_N);
        note_run("timers", r, t.ms);
        bt.ms = bt.ms.min(t.ms);
        bt.bytes_per_task = bt.bytes_per_task.min(t.bytes_per_task);
    }
    println!(
        "tokio timers {TIMER_N} tasks: {:.1} ms wall, {:.0} bytes/sleeping task",
        bt.ms, bt.bytes_per_task
    );
}
