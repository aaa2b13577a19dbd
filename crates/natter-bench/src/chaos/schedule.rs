//! The seeded fault schedule: once each a gateway frozen (SIGSTOP) for 10 s and restarts of
//! NATS, Redis, etcd and PostgreSQL (fast shutdown); between them `kill -9` of a random natter
//! process (restarted a second later). Faults come one after another, each in a slot of its
//! own, so that each one's convergence can be measured.

use std::time::Duration;

use super::Rng;
use super::cluster::NODE_NAMES;

/// Devices connect and send for this long before the first fault, and the last slot ends this
/// long before the end of the run.
const MARGIN: Duration = Duration::from_secs(10);
/// About one fault per this much time in long runs (the issue: a kill every ~30 s, plus the
/// others): 25 s gives ≥ 20 faults in 10 minutes.
const SLOT: Duration = Duration::from_secs(25);
/// Short runs still get every kind of fault and a few kills.
const MIN_FAULTS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` of natter process `node` ([`NODE_NAMES`]), restarted a second later.
    Kill {
        node: usize,
    },
    /// SIGSTOP of gateway `gateway`, SIGCONT `secs` later.
    Freeze {
        gateway: usize,
        secs: u64,
    },
    RestartNats,
    RestartRedis,
    RestartEtcd,
    /// `pg_ctl stop -m fast`, then start.
    RestartPostgres,
}

impl Fault {
    /// The name `--faults` knows it by.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill",
            Fault::Freeze { .. } => "freeze",
            Fault::RestartNats => "nats",
            Fault::RestartRedis => "redis",
            Fault::RestartEtcd => "etcd",
            Fault::RestartPostgres => "postgres",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill { .. } => "kill -9",
            Fault::Freeze { .. } => "SIGSTOP 10 s",
            Fault::RestartNats => "restart",
            Fault::RestartRedis => "restart",
            Fault::RestartEtcd => "restart",
            Fault::RestartPostgres => "restart",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// From the start of the run (after set-up).
    pub at: Duration,
    pub fault: Fault,
}

/// The names of the faults, for `--faults`.
pub const NAMES: [&str; 6] = ["kill", "freeze", "nats", "redis", "etcd", "postgres"];

/// The schedule for a run of `duration`; with `only` not empty, only the faults it names (the
/// others' slots stay empty), to reproduce one kind of fault.
pub fn plan(mut rng: Rng, duration: Duration, only: &[String]) -> Vec<Planned> {
    let window = duration.saturating_sub(MARGIN * 2);
    let count = ((window.as_secs() / SLOT.as_secs()) as usize).max(MIN_FAULTS);
    let slot = window / count as u32;
    let once = [
        Fault::Freeze { gateway: rng.below(2) as usize, secs: 10 },
        Fault::RestartNats,
        Fault::RestartRedis,
        Fault::RestartEtcd,
        Fault::RestartPostgres,
    ];
    let mut faults: Vec<Fault> = (0..count.saturating_sub(once.len()))
        .map(|_| Fault::Kill { node: rng.below(NODE_NAMES.len() as u64) as usize })
        .collect();
    // The once-only faults go to random places among the kills.
    for fault in once {
        let place = rng.below(faults.len() as u64 + 1) as usize;
        faults.insert(place, fault);
    }
    faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| Planned { at: MARGIN + slot * i as u32, fault })
        .filter(|planned| only.is_empty() || only.iter().any(|name| name == planned.fault.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule_with_every_kind() {
        let a = plan(Rng::new(7), Duration::from_secs(600), &[]);
        let b = plan(Rng::new(7), Duration::from_secs(600), &[]);
        assert_eq!(a.iter().map(|p| p.fault).collect::<Vec<_>>(), b.iter().map(|p| p.fault).collect::<Vec<_>>());
        assert!(a.len() >= 20, "{} faults in 10 minutes", a.len());
        for fault in [Fault::RestartNats, Fault::RestartRedis, Fault::RestartEtcd, Fault::RestartPostgres] {
            assert_eq!(a.iter().filter(|p| p.fault == fault).count(), 1);
        }
        assert_eq!(a.iter().filter(|p| matches!(p.fault, Fault::Freeze { .. })).count(), 1);
        let short = plan(Rng::new(7), Duration::from_secs(120), &[]);
        assert_eq!(short.len(), MIN_FAULTS);
        assert!(short.last().is_some_and(|p| p.at < Duration::from_secs(110)));
    }
}
