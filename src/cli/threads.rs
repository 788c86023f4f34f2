//! `-t/--threads`: the size of the CPU thread pool, at least 1 and at most
//! the machine's CPUs (more threads than CPUs only add switching; thousands
//! of them exhaust memory before any work is done).

/// The `-t` value parser: a whole number of at least 1.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "threads = {s} is out of range: it must be a whole number of at least 1"
        )),
    }
}

/// A count flag (`-r`, `--chunks`): a whole number of at least 1.
pub fn parse_at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s} is out of range: it must be a whole number of at least 1"
        )),
    }
}

/// Sets the size of the CPU thread pool, once, before any work. A request
/// above the machine's CPUs is capped, with a one-line notice.
pub fn set_threads(threads: Option<usize>) {
    let Some(asked) = threads else { return };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = asked.clamp(1, cpus);
    if n < asked {
        eprintln!("note: -t {asked}: this machine has {cpus} CPUs; using {n} threads");
    }
    // An error only means the pool was already built; keep that one.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}
