//! Jobs on all cores, results in order, memory bounded.
//!
//! Backups and their verification both cut an archive into chunks that can be worked on
//! independently but must be consumed in order. [`in_order`] runs the jobs on rayon's pool with
//! at most `in_flight` of them started and not yet consumed (a ticket is returned as each result
//! is consumed), and hands the results to `consume` on the calling thread, in job order.

use std::collections::BTreeMap;
use std::sync::mpsc;

/// Runs `jobs` in parallel and gives their results to `consume` in order. Stops starting jobs
/// as soon as `consume` fails, and returns that error.
pub(crate) fn in_order<T, E, J>(
    jobs: impl Iterator<Item = J> + Send,
    in_flight: usize,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send + 'static,
    J: FnOnce() -> T + Send + 'static,
{
    let in_flight = in_flight.max(1);
    let (ticket_tx, ticket_rx) = mpsc::sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        ticket_tx
            .send(())
            .expect("the channel has room for every ticket");
    }
    let (done_tx, done_rx) = mpsc::channel::<(usize, T)>();
    std::thread::scope(|s| {
        s.spawn(move || {
            for (i, job) in jobs.enumerate() {
                if ticket_rx.recv().is_err() {
                    break; // the consumer gave up
                }
                let done = done_tx.clone();
                rayon::spawn(move || {
                    let _ = done.send((i, job()));
                });
            }
        });
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        // Ends when the producer is done and every started job has reported.
        for (i, result) in done_rx.iter() {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&next) {
                if let Err(e) = consume(result) {
                    drop(ticket_tx); // unblocks and stops the producer
                    return Err(e);
                }
                next += 1;
                let _ = ticket_tx.send(());
            }
        }
        Ok(())
    })
}

/// Chunks in flight for this machine: enough to keep every core busy while the consumer works.
pub(crate) fn default_in_flight() -> usize {
    rayon::current_num_threads() * 2 + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_and_errors_stop_early() {
        let mut seen = Vec::new();
        let jobs = (0..200u64).map(|i| {
            move || {
                // Later jobs finish first sometimes.
                std::thread::sleep(std::time::Duration::from_micros((200 - i) % 7 * 50));
                i * 2
            }
        });
        in_order(jobs, 4, |v| -> Result<(), ()> {
            seen.push(v);
            Ok(())
        })
        .expect("no error");
        assert_eq!(seen, (0..200).map(|i| i * 2).collect::<Vec<_>>());

        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&started);
        let jobs = (0..10_000).map(move |i| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            move || i
        });
        let err = in_order(jobs, 3, |v| if v == 5 { Err(v) } else { Ok(()) });
        assert_eq!(err, Err(5));
        assert!(
            started.load(std::sync::atomic::Ordering::SeqCst) < 20,
            "stopped starting jobs"
        );
    }
}
