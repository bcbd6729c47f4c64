//! What one filter worker pays to take a new policy snapshot: `policy::Policy::from_json` on the
//! snapshot bytes as served (parse + compile), its time and its heap.
//!
//! Native:  `cargo run --release -p portcullis-policy --example snapshot_load -- SNAPSHOT.json [N]`
//! wasm32:  `cargo build --release -p portcullis-policy --example snapshot_load --target wasm32-wasip1`
//!          then run it on V8 as Envoy does, with Node's `node:wasi` (the file's directory
//!          pre-opened):
//!
//! ```text
//! node --no-warnings --input-type=module -e "
//!   import { readFile } from 'node:fs/promises'; import { WASI } from 'node:wasi';
//!   import { dirname } from 'node:path';
//!   const [wasm, snap, n] = process.argv.slice(1);
//!   const wasi = new WASI({ version: 'preview1', args: ['snapshot_load', snap, n ?? '10'],
//!                           preopens: { [dirname(snap)]: dirname(snap) } });
//!   const m = await WebAssembly.compile(await readFile(wasm));
//!   wasi.start(await WebAssembly.instantiate(m, wasi.getImportObject()));
//! " target/wasm32-wasip1/release/examples/snapshot_load.wasm /abs/path/snapshot.json 10
//! ```
//!
//! `bench/sync/run.sh` with `REGISTRY_SERVERS` runs both on the snapshot it fetched. Prints one
//! JSON line: the snapshot's size and counts; `Policy::from_json` times in ms (first run, then
//! median/min/max of N), the same split into deserializing the `Snapshot` and `Policy::compile`
//! (medians); the heap the compiled `Policy` keeps, and the peak heap while loading (the bytes
//! themselves not counted). Then what a change costs a worker that holds the policy: a delta
//! replacing one group mapping, parsed from its JSON line and applied (`Policy::apply`),
//! median of N. Timings are the caller's to judge: nothing here asserts on them.

// A counting allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use policy::snapshot::{GroupMappingSpec, Snapshot, SnapshotDelta};
use policy::Policy;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let live =
                    LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
                PEAK.fetch_max(live, Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: snapshot_load SNAPSHOT.json [ITERATIONS]")?;
    let iterations: usize = args.next().map_or(Ok(10), |n| n.parse())?.max(1);
    let bytes = std::fs::read(&path)?;

    // The heap one worker's policy keeps, and the peak while it is built (first load: cold).
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let policy = Policy::from_json(&bytes)?;
    let first_ms = ms(t);
    let retained = LIVE.load(Relaxed) - base;
    let peak = PEAK.load(Relaxed) - base;
    let counts = (
        policy.server_count(),
        policy.scope_names.len(),
        policy.version,
    );
    drop(policy);

    let (mut total, mut parse, mut compile) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        let policy = Policy::from_json(&bytes)?;
        total.push(ms(t));
        drop(policy);

        let t = Instant::now();
        let snapshot: Snapshot = serde_json::from_slice(&bytes)?;
        parse.push(ms(t));
        let t = Instant::now();
        let policy = Policy::compile(snapshot)?;
        compile.push(ms(t));
        drop(policy);
    }
    // One change: the first group's mapping flips between its own scopes and the first scope.
    let snapshot: Snapshot = serde_json::from_slice(&bytes)?;
    let policy = Policy::compile(snapshot.clone())?;
    let mut delta_ms = Vec::new();
    if let (Some(mapping), Some(scope)) = (snapshot.group_mappings.first(), snapshot.scopes.first())
    {
        for i in 0..iterations {
            let scopes = match i % 2 {
                0 => vec![scope.name.clone()],
                _ => mapping.scopes.clone(),
            };
            let line = serde_json::to_vec(&SnapshotDelta {
                format: 1,
                version: snapshot.version + 1,
                group_mappings: vec![GroupMappingSpec {
                    group: mapping.group.clone(),
                    scopes,
                }],
                ..SnapshotDelta::default()
            })?;
            let t = Instant::now();
            let delta = SnapshotDelta::from_json(&line)?;
            let next = policy.apply(&delta)?;
            delta_ms.push(ms(t));
            drop(next);
        }
    }
    drop(policy);
    let (min, max) = total.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    });
    println!(
        "{{\"target\": \"{}\", \"bytes\": {}, \"version\": {}, \"servers\": {}, \"scopes\": {}, \
         \"iterations\": {iterations}, \"from_json_first_ms\": {first_ms:.3}, \
         \"from_json_p50_ms\": {:.3}, \"from_json_min_ms\": {min:.3}, \"from_json_max_ms\": {max:.3}, \
         \"parse_p50_ms\": {:.3}, \"compile_p50_ms\": {:.3}, \"retained_bytes\": {retained}, \
         \"peak_bytes\": {peak}, \"delta_apply_p50_ms\": {:.3}}}",
        std::env::consts::ARCH,
        bytes.len(),
        counts.2,
        counts.0,
        counts.1,
        median(total),
        median(parse),
        median(compile),
        median(delta_ms),
    );
    Ok(())
}
