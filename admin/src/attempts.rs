//! Sliding-window budgets per subject and per client address, on this node: how many wrong
//! share-link passwords, sign-in attempts or share downloads are allowed before the answer is
//! 429. One limiter for all of them, so every budget bounds its memory and answers
//! `Retry-After` the same way.
//!
//! A subject is whatever the budget is about: a share link's id, a login. A client is an IPv4
//! address, or the /64 of an IPv6 address (one host usually owns a whole /64 and can rotate
//! through it). Not replicated: an attacker spreading attempts over N nodes gets N times the
//! budget, which the limits are chosen to tolerate.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most subjects, and most client addresses, tracked at once. Past it, a new one is refused
/// (429) until old entries age out: memory stays bounded whatever the attacker rotates.
const MAX_TRACKED: usize = 100_000;
/// Shortest pause between two sweeps of the maps when they are full (a sweep walks the whole
/// map under the lock).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A budget: how many attempts are tolerated (`[shares]` and `[auth]` in `cluster.toml`).
#[derive(Debug, Clone, Copy)]
pub struct AttemptLimits {
    /// Attempts per subject (a share link, a login) within `window`, from anyone.
    pub per_link: u32,
    /// Attempts per client (IPv4 address, or IPv6 /64) within `window`, over all subjects.
    pub per_client: u32,
    /// The sliding window.
    pub window: Duration,
}

impl Default for AttemptLimits {
    /// The share-link password budget.
    fn default() -> Self {
        Self { per_link: 20, per_client: 5, window: Duration::from_secs(300) }
    }
}

/// A client as the limits see it: an IPv4 address, or the /64 of an IPv6 address. IPv4-mapped
/// IPv6 counts as IPv4.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The counters, behind one lock so a check and its reservation are one step.
#[derive(Default)]
struct Book {
    /// Times of recent attempts by subject (each list holds at most `per_link`).
    by_subject: HashMap<String, Vec<Instant>>,
    /// Times of recent attempts by client key (each list holds at most `per_client`).
    by_client: HashMap<IpAddr, Vec<Instant>>,
    /// When the maps were last swept of stale entries.
    last_sweep: Option<Instant>,
}

/// Which budget refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The subject's budget is spent.
    Subject,
    /// The client's budget is spent.
    Client,
    /// Too many subjects or clients are tracked.
    Full,
}

/// An attempt that was not allowed, and when asking again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Which budget refused.
    pub(crate) why: Refusal,
    /// When the oldest attempt of that budget leaves the window (at least a second).
    pub(crate) retry_after: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds, rounded up.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// An attempt counted before its outcome is known; released if it turns out not to count.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// The subject.
    subject: String,
    /// The client key.
    client: IpAddr,
    /// The instant recorded in both lists.
    at: Instant,
}

/// Recent attempts, per subject and per client, on this node.
pub(crate) struct Attempts {
    /// The limits.
    limits: AttemptLimits,
    /// The counters.
    book: Mutex<Book>,
}

impl Attempts {
    pub(crate) fn new(limits: AttemptLimits) -> Self {
        Self { limits, book: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks both budgets and, when both have room, records the attempt in both, in one step:
    /// concurrent requests cannot all pass the check before any is recorded.
    pub(crate) fn reserve(&self, subject: &str, client: IpAddr) -> Result<Reservation, Refused> {
        let client = client_key(client);
        let window = self.limits.window;
        let now = Instant::now();
        let fresh = |times: &mut Vec<Instant>| times.retain(|t| now.duration_since(*t) < window);
        // The oldest attempt of a full list leaves the window first.
        let wait = |times: Option<&Vec<Instant>>| {
            times
                .and_then(|t| t.iter().min())
                .map_or(SWEEP_EVERY, |oldest| window.saturating_sub(now.duration_since(*oldest)))
        };
        let mut book = self.lock();
        let book = &mut *book;
        let subject_used = book.by_subject.get_mut(subject).map_or(0, |t| {
            fresh(t);
            t.len()
        });
        let client_used = book.by_client.get_mut(&client).map_or(0, |t| {
            fresh(t);
            t.len()
        });
        if subject_used >= self.limits.per_link as usize {
            return Err(Refused { why: Refusal::Subject, retry_after: wait(book.by_subject.get(subject)) });
        }
        if client_used >= self.limits.per_client as usize {
            return Err(Refused { why: Refusal::Client, retry_after: wait(book.by_client.get(&client)) });
        }
        let full = |book: &Book| {
            (subject_used == 0 && book.by_subject.len() >= MAX_TRACKED)
                || (client_used == 0 && book.by_client.len() >= MAX_TRACKED)
        };
        if full(book) {
            if book.last_sweep.is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY) {
                book.last_sweep = Some(now);
                book.by_subject.retain(|_, t| t.iter().any(|t| now.duration_since(*t) < window));
                book.by_client.retain(|_, t| t.iter().any(|t| now.duration_since(*t) < window));
            }
            if full(book) {
                return Err(Refused { why: Refusal::Full, retry_after: SWEEP_EVERY });
            }
        }
        book.by_subject.entry(subject.to_owned()).or_default().push(now);
        book.by_client.entry(client).or_default().push(now);
        Ok(Reservation { subject: subject.to_owned(), client, at: now })
    }

    /// Gives a reserved attempt back (it succeeded, or was never judged).
    pub(crate) fn release(&self, reservation: &Reservation) {
        let mut book = self.lock();
        let drop_one = |times: &mut Vec<Instant>| {
            if let Some(i) = times.iter().position(|t| *t == reservation.at) {
                times.swap_remove(i);
            }
        };
        if let Some(times) = book.by_subject.get_mut(&reservation.subject) {
            drop_one(times);
        }
        if let Some(times) = book.by_client.get_mut(&reservation.client) {
            drop_one(times);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The subject's budget holds across clients, the client's across subjects, and both
    /// recover when the window has passed; a released attempt does not count.
    #[test]
    fn attempts_are_limited_per_subject_and_per_client() {
        let window = Duration::from_millis(200);
        let attempts = Attempts::new(AttemptLimits { per_link: 2, per_client: 3, window });
        let (a, b, c) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into(), [127, 0, 0, 3].into());
        attempts.reserve("link", a).expect("first");
        attempts.reserve("link", b).expect("second");
        let refused = attempts.reserve("link", c).err().map(|r| r.why);
        assert_eq!(refused, Some(Refusal::Subject), "the link's budget is spent, whoever asks");
        let released = attempts.reserve("other", a).expect("another link, a client with budget left");
        attempts.release(&released);
        attempts.reserve("other", a).expect("released: the budget is back");
        attempts.reserve("third", a).expect("third");
        assert_eq!(attempts.reserve("fourth", a).err().map(|r| r.why), Some(Refusal::Client), "client spent");
        std::thread::sleep(window);
        attempts.reserve("link", a).expect("the window has passed");
    }

    /// `Retry-After` says when the oldest attempt of the spent budget leaves the window.
    #[test]
    fn refusals_say_when_to_come_back() {
        let attempts = Attempts::new(AttemptLimits { per_link: 1, per_client: 10, window: Duration::from_secs(90) });
        attempts.reserve("login", [10, 0, 0, 1].into()).expect("first");
        let refused = attempts.reserve("login", [10, 0, 0, 2].into()).expect_err("spent");
        assert!((89..=90).contains(&refused.retry_after_secs()), "{refused:?}");
    }

    /// An IPv6 client is one /64: rotating the host part gives no new budget.
    #[test]
    fn ipv6_clients_count_per_64() {
        let attempts = Attempts::new(AttemptLimits { per_link: 100, per_client: 2, window: Duration::from_secs(60) });
        let ip = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, last));
        attempts.reserve("a", ip(1)).expect("first");
        attempts.reserve("b", ip(2)).expect("second");
        assert_eq!(attempts.reserve("c", ip(3)).err().map(|r| r.why), Some(Refusal::Client), "same /64");
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        attempts.reserve("c", other).expect("another /64");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]), "IPv4-mapped counts as IPv4");
    }

    /// Many threads racing for one budget get exactly the budget.
    #[test]
    fn reservations_are_atomic() {
        let attempts =
            Arc::new(Attempts::new(AttemptLimits { per_link: 1000, per_client: 5, window: Duration::from_secs(60) }));
        let granted: usize = (0..16)
            .map(|_| {
                let attempts = Arc::clone(&attempts);
                std::thread::spawn(move || {
                    (0..20).filter(|_| attempts.reserve("link", [10, 0, 0, 1].into()).is_ok()).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .sum();
        assert_eq!(granted, 5);
    }
}
