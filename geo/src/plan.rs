//! Which node serves a request: plain data in, a decision with its full explanation out.
//!
//! - **Upload** (`put`): the nearest healthy node.
//! - **Download** (`get`): among the healthy nodes that hold the object, the *near tier* (those
//!   within `near_tier_km` of the nearest such holder), then the less loaded of two tier members
//!   picked at random ("power of two choices", on [`NodeLoad::score`]); with one or two tier
//!   members that is simply the less loaded one, ties going to the nearer. A far holder is thus
//!   never chosen over a near one, however busy the near ones are. No healthy holder: the
//!   nearest healthy node, which streams the bytes from a holder.
//!
//! A node that is down is never chosen. A node without a fresh report (health unknown) may be
//! chosen, but its load counts as worse than any known load. For uploads, a node that reports
//! it is not ready (no leader) is skipped while some other node is ready: its writes would
//! fail. When none is (a cluster still starting), readiness is ignored rather than refusing.
//!
//! Loads closer than [`LOAD_TIE`] count as equal, and equal loads go to the nearer node: the
//! byte rate is an average that decays towards zero but never reaches it, and a trickle of
//! bytes must not send a client to a farther node.
//!
//! The random pick is a parameter, so tests decide it.

use serde::Serialize;

use crate::distance::{GeoPoint, haversine_km};
use crate::load::{Health, NodeLoad, PeerView};

/// Scores closer than this (in requests in flight) are a tie, won by the nearer node.
pub const LOAD_TIE: f64 = 0.5;

/// What the client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Download an object.
    Get,
    /// Upload an object.
    Put,
}

impl Operation {
    /// `get` or `put`, for metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
        }
    }
}

/// One node the planner may choose.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Raft node id.
    pub id: u64,
    /// Region name.
    pub region: String,
    /// The region's coordinates.
    pub position: GeoPoint,
    /// Health and load as the load board sees them.
    pub view: PeerView,
    /// Whether it holds the object's bytes (downloads).
    pub holds: bool,
}

/// Tunables of the planner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanSettings {
    /// Holders within this many km of the nearest holder share its tier.
    pub near_tier_km: f64,
    /// Outgoing bytes per second that count as one more request in flight.
    pub bytes_per_request: f64,
}

/// Why the chosen node was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Upload: the nearest healthy node.
    Nearest,
    /// Download: the nearest healthy holder (alone in its tier, or the least loaded of it).
    NearestHolder,
    /// Download: another holder of the near tier, less loaded than the nearest one.
    NearTierAlternative,
    /// Download: no healthy node holds the object; the nearest healthy node streams it.
    NonHolderFallback,
    /// No healthy node at all.
    NoHealthyNode,
}

impl Outcome {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::NearestHolder => "nearest_holder",
            Self::NearTierAlternative => "near_tier_alternative",
            Self::NonHolderFallback => "non_holder_fallback",
            Self::NoHealthyNode => "no_healthy_node",
        }
    }
}

/// One candidate as the planner saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateReport {
    /// Raft node id.
    pub id: u64,
    /// Region name.
    pub region: String,
    /// Distance from the client, km.
    pub distance_km: f64,
    /// Up, unknown or down.
    pub health: Health,
    /// Its latest fresh load report.
    pub load: Option<NodeLoad>,
    /// Age of that report, ms.
    pub report_age_ms: Option<u64>,
    /// [`NodeLoad::score`], when the load is known.
    pub score: Option<f64>,
    /// Whether it holds the object (always false for uploads).
    pub holds: bool,
    /// Whether it could be chosen for this operation.
    pub eligible: bool,
    /// Whether it was in the download near tier.
    pub near_tier: bool,
    /// Whether it was one of the two compared.
    pub compared: bool,
    /// Why it was not eligible, or the poll error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The operation planned.
    pub op: Operation,
    /// Every candidate, nearest first.
    pub candidates: Vec<CandidateReport>,
    /// The chosen node's id, if any node could be chosen.
    pub chosen: Option<u64>,
    /// The chosen node's region.
    pub chosen_region: Option<String>,
    /// The kind of choice.
    pub outcome: Outcome,
    /// The choice in one sentence, for people.
    pub reason: String,
}

/// Plans `op` for a client at `client`. `pick(n)` returns a number in `0..n` (the random part
/// of the power of two choices); values outside are wrapped.
pub fn plan(
    op: Operation,
    client: GeoPoint,
    candidates: &[Candidate],
    settings: &PlanSettings,
    pick: &mut dyn FnMut(usize) -> usize,
) -> Decision {
    let skip_not_ready = op == Operation::Put
        && candidates.iter().any(|c| c.view.health == Health::Up && c.view.load.is_some_and(|l| l.ready));
    let mut reports: Vec<CandidateReport> =
        candidates.iter().map(|c| report(client, c, settings, op, skip_not_ready)).collect();
    reports.sort_by(|a, b| a.distance_km.total_cmp(&b.distance_km).then(a.id.cmp(&b.id)));
    let nearest_eligible = |reports: &[CandidateReport], holders_only: bool| {
        reports.iter().position(|r| r.eligible && (!holders_only || r.holds))
    };
    let (chosen, outcome, reason) = match op {
        Operation::Put => match nearest_eligible(&reports, false) {
            Some(i) => {
                let r = &reports[i];
                let skipped = skipped_nearer(&reports[..i]);
                (
                    Some(i),
                    Outcome::Nearest,
                    format!("nearest healthy node: {} ({:.0} km){skipped}", r.region, r.distance_km),
                )
            }
            None => (None, Outcome::NoHealthyNode, "no healthy node".to_owned()),
        },
        Operation::Get => match nearest_eligible(&reports, true) {
            Some(first) => choose_in_tier(&mut reports, first, settings, pick),
            None => match nearest_eligible(&reports, false) {
                Some(i) => (
                    Some(i),
                    Outcome::NonHolderFallback,
                    format!(
                        "no healthy node holds the object; {} ({:.0} km) is the nearest healthy node and streams it \
                         from a holder",
                        reports[i].region, reports[i].distance_km
                    ),
                ),
                None => (None, Outcome::NoHealthyNode, "no healthy node".to_owned()),
            },
        },
    };
    Decision {
        op,
        chosen: chosen.map(|i| reports[i].id),
        chosen_region: chosen.map(|i| reports[i].region.clone()),
        candidates: reports,
        outcome,
        reason,
    }
}

/// The report of one candidate before any choice.
fn report(
    client: GeoPoint,
    c: &Candidate,
    settings: &PlanSettings,
    op: Operation,
    skip_not_ready: bool,
) -> CandidateReport {
    let not_ready = skip_not_ready && c.view.load.is_some_and(|l| !l.ready);
    let (eligible, note) = match c.view.health {
        Health::Down => (false, Some(format!("down: {}", c.view.error.as_deref().unwrap_or("does not answer")))),
        _ if not_ready => (false, Some("not ready (no leader): cannot take writes".to_owned())),
        Health::Unknown => (true, Some("no fresh load report: load unknown".to_owned())),
        Health::Up => (true, None),
    };
    CandidateReport {
        id: c.id,
        region: c.region.clone(),
        distance_km: haversine_km(client, c.position),
        health: c.view.health,
        load: c.view.load,
        report_age_ms: c.view.report_age_ms,
        score: c.view.load.map(|l| l.score(settings.bytes_per_request)),
        holds: op == Operation::Get && c.holds,
        eligible,
        near_tier: false,
        compared: false,
        note,
    }
}

/// ", nearer X is down" for the nodes skipped before the chosen one.
fn skipped_nearer(nearer: &[CandidateReport]) -> String {
    nearer
        .iter()
        .filter(|r| !r.eligible)
        .map(|r| format!("; nearer {} skipped ({})", r.region, r.note.as_deref().unwrap_or("not eligible")))
        .collect()
}

/// Download among holders: the near tier of the nearest healthy holder `first`, then the power
/// of two choices. Marks the tier and the compared pair in `reports`.
fn choose_in_tier(
    reports: &mut [CandidateReport],
    first: usize,
    settings: &PlanSettings,
    pick: &mut dyn FnMut(usize) -> usize,
) -> (Option<usize>, Outcome, String) {
    let limit = reports[first].distance_km + settings.near_tier_km.max(0.0);
    let tier: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].eligible && reports[i].holds && reports[i].distance_km <= limit)
        .collect();
    for &i in &tier {
        reports[i].near_tier = true;
    }
    let skipped = skipped_nearer(&reports[..first]);
    if tier.len() == 1 {
        let r = &reports[first];
        return (
            Some(first),
            Outcome::NearestHolder,
            format!(
                "nearest healthy holder: {} ({:.0} km); no other healthy holder within {:.0} km of it{skipped}",
                r.region, r.distance_km, settings.near_tier_km
            ),
        );
    }
    let (a, b) = if tier.len() == 2 {
        (tier[0], tier[1])
    } else {
        let n = tier.len();
        let i = pick(n) % n;
        let mut j = pick(n - 1) % (n - 1);
        if j >= i {
            j += 1;
        }
        (tier[i], tier[j])
    };
    reports[a].compared = true;
    reports[b].compared = true;
    let chosen = if less_loaded(&reports[b], &reports[a]) { b } else { a };
    let other = if chosen == a { b } else { a };
    let score = |r: &CandidateReport| r.score.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.2}"));
    let names: Vec<&str> = tier.iter().map(|&i| reports[i].region.as_str()).collect();
    let outcome = if chosen == first { Outcome::NearestHolder } else { Outcome::NearTierAlternative };
    let reason = format!(
        "near tier (healthy holders within {:.0} km of the nearest, {}): {}; compared {} (load {}) with {} (load {}): \
         {} ({:.0} km){skipped}",
        settings.near_tier_km,
        reports[first].region,
        names.join(", "),
        reports[a].region,
        score(&reports[a]),
        reports[b].region,
        score(&reports[b]),
        if !less_loaded_by_score(&reports[chosen], &reports[other]) {
            format!("loads within {LOAD_TIE} of each other, the nearer wins: {}", reports[chosen].region)
        } else {
            format!("less loaded: {}", reports[chosen].region)
        },
        reports[chosen].distance_km,
    );
    (Some(chosen), outcome, reason)
}

/// Whether `x` won on load alone (not by a tie).
fn less_loaded_by_score(x: &CandidateReport, y: &CandidateReport) -> bool {
    match (x.score, y.score) {
        (Some(_), None) => true,
        (Some(xs), Some(ys)) => ys - xs >= LOAD_TIE,
        _ => false,
    }
}

/// Whether `x` should be preferred to `y`: known load before unknown, lower score by more than
/// [`LOAD_TIE`], then nearer, then lower id (so equal nodes give a stable answer).
fn less_loaded(x: &CandidateReport, y: &CandidateReport) -> bool {
    match (x.score, y.score) {
        (Some(_), None) => return true,
        (None, Some(_)) => return false,
        (Some(xs), Some(ys)) if (xs - ys).abs() >= LOAD_TIE => return xs < ys,
        _ => {}
    }
    (x.distance_km, x.id) < (y.distance_km, y.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRANKFURT: GeoPoint = GeoPoint::new(50.1109, 8.6821);
    const AMSTERDAM: GeoPoint = GeoPoint::new(52.3676, 4.9041);
    const PARIS: GeoPoint = GeoPoint::new(48.8566, 2.3522);
    const SINGAPORE: GeoPoint = GeoPoint::new(1.3521, 103.8198);
    const SETTINGS: PlanSettings = PlanSettings { near_tier_km: 1500.0, bytes_per_request: 10.0 * 1024.0 * 1024.0 };

    fn up(in_flight: u32) -> PeerView {
        PeerView {
            health: Health::Up,
            load: Some(NodeLoad { in_flight, bytes_out_per_sec: 0.0, disk_free_bytes: 1 << 30, ready: true }),
            report_age_ms: Some(100),
            error: None,
        }
    }

    fn down() -> PeerView {
        PeerView { health: Health::Down, load: None, report_age_ms: Some(5000), error: Some("refused".into()) }
    }

    fn unknown() -> PeerView {
        PeerView { health: Health::Unknown, load: None, report_age_ms: None, error: None }
    }

    fn node(id: u64, region: &str, position: GeoPoint, view: PeerView, holds: bool) -> Candidate {
        Candidate { id, region: region.into(), position, view, holds }
    }

    fn three(views: [PeerView; 3], holds: [bool; 3]) -> Vec<Candidate> {
        let [f, a, s] = views;
        vec![
            node(1, "frankfurt", FRANKFURT, f, holds[0]),
            node(2, "amsterdam", AMSTERDAM, a, holds[1]),
            node(3, "singapore", SINGAPORE, s, holds[2]),
        ]
    }

    fn no_pick(_: usize) -> usize {
        panic!("no random pick expected")
    }

    #[test]
    fn upload_goes_to_the_nearest_healthy_node() {
        let nodes = three([up(50), up(0), up(0)], [false; 3]);
        let d = plan(Operation::Put, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(1), Outcome::Nearest), "load does not matter for uploads: {d:?}");
        let d = plan(Operation::Put, SINGAPORE, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen_region.as_deref(), Some("singapore"));
        assert_eq!(d.candidates[0].region, "singapore", "candidates are listed nearest first");

        let nodes = three([down(), up(0), up(0)], [false; 3]);
        let d = plan(Operation::Put, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(2));
        assert!(d.reason.contains("nearer frankfurt skipped"), "{}", d.reason);

        let mut not_ready = up(0);
        if let Some(l) = not_ready.load.as_mut() {
            l.ready = false;
        }
        let nodes = three([not_ready.clone(), unknown(), up(0)], [false; 3]);
        let d = plan(Operation::Put, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(2), "not ready is skipped for writes, unknown is eligible: {d:?}");

        // Nobody ready (a cluster starting): readiness is ignored.
        let nodes = three([not_ready.clone(), not_ready.clone(), not_ready], [false; 3]);
        let d = plan(Operation::Put, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(1), "{d:?}");

        let nodes = three([down(), down(), down()], [false; 3]);
        let d = plan(Operation::Put, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (None, Outcome::NoHealthyNode));
    }

    #[test]
    fn download_prefers_the_nearest_holder_when_idle() {
        let nodes = three([up(0), up(0), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(1), Outcome::NearestHolder), "{}", d.reason);
        let tier: Vec<&str> = d.candidates.iter().filter(|c| c.near_tier).map(|c| c.region.as_str()).collect();
        assert_eq!(tier, ["frankfurt", "amsterdam"]);
        let d = plan(Operation::Get, SINGAPORE, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(3));
        assert!(d.reason.contains("no other healthy holder"), "{}", d.reason);
    }

    #[test]
    fn a_busy_nearest_holder_yields_to_the_near_tier_never_to_a_far_one() {
        let nodes = three([up(8), up(1), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(2), Outcome::NearTierAlternative), "{}", d.reason);
        // Amsterdam busy too: Singapore, idle but far, is still not chosen.
        let nodes = three([up(8), up(9), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(1), "{}", d.reason);
        // Bytes per second count: Frankfurt streams 50 MiB/s with one request, Amsterdam has two.
        let mut streaming = up(1);
        if let Some(l) = streaming.load.as_mut() {
            l.bytes_out_per_sec = 50.0 * 1024.0 * 1024.0;
        }
        let nodes = three([streaming, up(2), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(2), "{}", d.reason);
        // A trickle of bytes on the nearest is a tie, and the tie goes to the nearer.
        let mut trickle = up(0);
        if let Some(l) = trickle.load.as_mut() {
            l.bytes_out_per_sec = 100.0;
        }
        let nodes = three([trickle, up(0), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(1), Outcome::NearestHolder), "{}", d.reason);
        assert!(d.reason.contains("the nearer wins"), "{}", d.reason);
        // Unknown load loses to a known one.
        let nodes = three([unknown(), up(3), up(0)], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(2), "{}", d.reason);
    }

    #[test]
    fn down_holders_are_never_chosen_and_non_holders_are_the_fallback() {
        let nodes = three([down(), up(0), up(0)], [true, true, true]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!(d.chosen, Some(2));
        // Only Frankfurt holds it and it is down: the nearest healthy node streams it.
        let nodes = three([down(), up(0), up(0)], [true, false, false]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(2), Outcome::NonHolderFallback), "{}", d.reason);
        // Only Singapore holds it: a far holder beats a near non-holder.
        let nodes = three([up(0), up(0), up(5)], [false, false, true]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (Some(3), Outcome::NearestHolder));
        let nodes = three([down(), down(), down()], [true; 3]);
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut no_pick);
        assert_eq!((d.chosen, d.outcome), (None, Outcome::NoHealthyNode));
    }

    #[test]
    fn power_of_two_choices_uses_the_injected_pick() {
        let nodes = vec![
            node(1, "frankfurt", FRANKFURT, up(5), true),
            node(2, "amsterdam", AMSTERDAM, up(1), true),
            node(3, "paris", PARIS, up(3), true),
            node(4, "singapore", SINGAPORE, up(0), true),
        ];
        // Tier (by distance from Frankfurt): frankfurt, amsterdam, paris. Picks 0 and then 1 of
        // the remaining two (which skips index 0): frankfurt vs paris -> paris.
        let mut picks = vec![0usize, 1].into_iter();
        let mut pick = |n: usize| {
            let p = picks.next().expect("two picks");
            assert!(p < n);
            p
        };
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut pick);
        assert_eq!(d.chosen_region.as_deref(), Some("paris"), "{}", d.reason);
        let compared: Vec<&str> = d.candidates.iter().filter(|c| c.compared).map(|c| c.region.as_str()).collect();
        assert_eq!(compared, ["frankfurt", "paris"]);
        assert!(d.candidates.iter().any(|c| c.region == "singapore" && !c.near_tier));
        // Out-of-range picks wrap instead of panicking.
        let d = plan(Operation::Get, FRANKFURT, &nodes, &SETTINGS, &mut |_| usize::MAX);
        assert!(d.chosen.is_some());
    }

    #[test]
    fn the_near_tier_distance_is_configurable() {
        let nodes = three([up(5), up(0), up(0)], [true; 3]);
        let narrow = PlanSettings { near_tier_km: 100.0, ..SETTINGS };
        let d = plan(Operation::Get, FRANKFURT, &nodes, &narrow, &mut no_pick);
        assert_eq!(d.chosen, Some(1), "Amsterdam (365 km) is outside a 100 km tier: {}", d.reason);
        let wide = PlanSettings { near_tier_km: 20_000.0, ..SETTINGS };
        let d = plan(Operation::Get, FRANKFURT, &nodes, &wide, &mut |n| n - 1);
        assert!(d.chosen != Some(1), "with everyone in the tier, the busy nearest loses: {}", d.reason);
    }
}
