//! The one aligner: pairs expected patterns with actual lines at the least cost.
//!
//! Cost is the number of expected lines left unmatched plus actual lines left unmatched;
//! output passes exactly when the cheapest alignment costs nothing. The same alignment is the
//! diff a reader sees and the map `--update` uses to keep patterns.
//!
//! The search is a shortest path (A*, with a lower bound on the cost still to pay) over
//! states `(pattern i, line j, inside a multi-line pattern?)`, so it only visits states that
//! could lead to the cheapest answer: a passing or nearly passing output costs about two
//! states a line. Runs of single-line
//! patterns that match at the start and at the end are paired off first. When the cheapest
//! alignment is expensive, the search is narrowed and run again: expected lines that match
//! no line are set aside, and each run of lines that no pattern but `...` can take becomes one
//! weighted unit. All of this keeps the optimum. No recursion, no backtracking: at worst the
//! search visits every state once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use regex::bytes::RegexSetBuilder;

use super::normalize::Actual;
use super::pattern::{PatternLine, Rule};

/// One step of an alignment, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Actual line `line` matched by pattern `pattern`.
    Matched { pattern: usize, line: usize },
    /// A pattern that may take zero lines took none: no diff line, nothing wrong.
    Skipped { pattern: usize },
    /// A pattern that needed a line got none.
    Missing { pattern: usize },
    /// An actual line no pattern took.
    Unexpected { line: usize },
}

impl Step {
    fn pattern(self) -> Option<usize> {
        match self {
            Step::Matched { pattern, .. }
            | Step::Skipped { pattern }
            | Step::Missing { pattern } => Some(pattern),
            Step::Unexpected { .. } => None,
        }
    }
}

/// The cheapest alignment of a set of patterns with an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Alignment {
    pub steps: Vec<Step>,
    /// Missing patterns plus unexpected lines; zero means the output passes.
    pub cost: usize,
}

/// Aligns `patterns` with `actual` at the least cost.
pub(crate) fn align(patterns: &[PatternLine], actual: &Actual) -> Alignment {
    let lines = &actual.lines;
    let matches =
        |p: usize, l: usize| patterns[p].matches(&lines[l], actual.is_unterminated_last(l));

    // Pair off single-line patterns matching at both ends: some cheapest alignment pairs
    // them too, and a diff of a long output with one change is then a tiny search.
    let (mut p0, mut l0) = (0, 0);
    while p0 < patterns.len() && l0 < lines.len() && patterns[p0].is_single() && matches(p0, l0) {
        p0 += 1;
        l0 += 1;
    }
    let (mut p1, mut l1) = (patterns.len(), lines.len());
    while p1 > p0 && l1 > l0 && patterns[p1 - 1].is_single() && matches(p1 - 1, l1 - 1) {
        p1 -= 1;
        l1 -= 1;
    }

    let mut steps: Vec<Step> = (0..l0)
        .map(|k| Step::Matched {
            pattern: k,
            line: k,
        })
        .collect();
    let middle = align_middle(patterns, actual, p0..p1, l0..l1);
    let cost = middle
        .iter()
        .filter(|s| matches!(s, Step::Missing { .. } | Step::Unexpected { .. }))
        .count();
    steps.extend(middle);
    steps.extend((0..patterns.len() - p1).map(|k| Step::Matched {
        pattern: p1 + k,
        line: l1 + k,
    }));
    Alignment { steps, cost }
}

/// Aligns the patterns and lines between the paired-off ends.
fn align_middle(
    patterns: &[PatternLine],
    actual: &Actual,
    pats: Range<usize>,
    lines: Range<usize>,
) -> Vec<Step> {
    // A passing or nearly passing output needs few states: try that first, line by line.
    // A pass through `...` expands about two states a line; the limits keep the work thrown
    // away small when the search has to be narrowed instead.
    let all_pats: Vec<usize> = pats.clone().collect();
    let units: Vec<Unit> = lines
        .clone()
        .map(|first| Unit {
            first,
            count: 1,
            blank: false,
        })
        .collect();
    let first = Problem::new(patterns, actual, &all_pats, &units, None);
    let budget = Budget {
        states: 3 * (all_pats.len() + units.len()) + 10_000,
        cost: 32,
    };
    match first.solve(Some(budget)) {
        Some(steps) => steps,
        None => align_narrowed(patterns, actual, pats, lines),
    }
}

/// The search run to the end, over patterns that match some line and with each run of lines
/// that only `...` can take folded into one unit.
fn align_narrowed(
    patterns: &[PatternLine],
    actual: &Actual,
    pats: Range<usize>,
    lines: Range<usize>,
) -> Vec<Step> {
    let hits = hits(patterns, actual, pats.clone(), lines.clone());
    let kept_pats: Vec<usize> = pats
        .clone()
        .filter(|p| hits.last_line[p - pats.start].is_some())
        .collect();
    // Positions in the narrowed search of the patterns, and the last `...` among them.
    let position = |p: usize| kept_pats.partition_point(|&k| k < p);
    let last_any = kept_pats
        .iter()
        .rposition(|&p| matches!(patterns[p], PatternLine::AnyLines));
    let mut units: Vec<Unit> = Vec::new();
    let mut last_pattern: Vec<usize> = Vec::new();
    // For each line, the index of the unit holding it.
    let mut unit_of = Vec::with_capacity(lines.len());
    for l in lines.clone() {
        let taker = hits.line_last_pattern[l - lines.start];
        let blank = taker.is_none();
        match units.last_mut() {
            Some(unit) if blank && unit.blank => unit.count += 1,
            _ => {
                units.push(Unit {
                    first: l,
                    count: 1,
                    blank,
                });
                let last = taker.map(|p| position(p) + 1).max(last_any.map(|a| a + 1));
                last_pattern.push(last.unwrap_or(0));
            }
        }
        unit_of.push(units.len() - 1);
    }
    let last_unit: Vec<usize> = kept_pats
        .iter()
        .map(|&p| match (&patterns[p], hits.last_line[p - pats.start]) {
            (PatternLine::AnyLines, _) | (_, None) => units.len(),
            (_, Some(line)) => unit_of[line - lines.start],
        })
        .collect();
    let reach = Reach {
        last_unit: &last_unit,
        last_pattern: &last_pattern,
    };
    let narrowed = Problem::new(patterns, actual, &kept_pats, &units, Some(&reach));
    let steps = narrowed.solve(None).unwrap_or_else(|| {
        // Cannot happen (the goal is always reachable); still a valid, if poor, alignment.
        let missing = kept_pats.iter().map(|&pattern| Step::Missing { pattern });
        missing
            .chain(lines.clone().map(|line| Step::Unexpected { line }))
            .collect()
    });

    // Put back the patterns set aside, each after the steps of the patterns before it.
    let untaken = |pattern: usize| {
        if patterns[pattern].min_lines() == 0 {
            Step::Skipped { pattern }
        } else {
            Step::Missing { pattern }
        }
    };
    let mut aside = pats
        .clone()
        .filter(|p| hits.last_line[p - pats.start].is_none())
        .peekable();
    let mut merged = Vec::with_capacity(steps.len() + pats.len());
    for step in steps {
        if let Some(at) = step.pattern() {
            while let Some(pattern) = aside.next_if(|&p| p < at) {
                merged.push(untaken(pattern));
            }
        }
        merged.push(step);
    }
    merged.extend(aside.map(untaken));
    merged
}

/// Most single pattern tests spent on narrowing when the regex set cannot be built.
const TEST_BUDGET: usize = 2_000_000;

/// Compiled-size limit of the regex set used by [`hits`].
const SET_SIZE_LIMIT: usize = 16 << 20;

/// Which lines each pattern can take, summarised for narrowing the search.
struct Hits {
    /// Per pattern: the last line it matches (`...` counts as matching the last line), or
    /// `None` when it matches none.
    last_line: Vec<Option<usize>>,
    /// Per line: the last pattern other than `...` that matches it.
    line_last_pattern: Vec<Option<usize>>,
}

/// Finds which patterns match which lines. Literal lines are looked up by hash; regexes and
/// globs run as one regex set, once over each line, and a line the set picks is checked with
/// the pattern itself. When the set is too big to build, the others are tried one by one
/// within a budget, and past it count as matching every line.
fn hits(
    patterns: &[PatternLine],
    actual: &Actual,
    pats: Range<usize>,
    lines: Range<usize>,
) -> Hits {
    let mut last_line: Vec<Option<usize>> = vec![None; pats.len()];
    let mut line_last_pattern: Vec<Option<usize>> = vec![None; lines.len()];
    // Literal patterns by their bytes: the first such pattern, then a chain through `same`.
    let mut literals: HashMap<&[u8], usize> = HashMap::with_capacity(pats.len());
    let mut same: Vec<Option<usize>> = vec![None; pats.len()];
    // Regexes and globs: the distinct regex sources, and the patterns behind each.
    let mut others: Vec<usize> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut owners: Vec<Vec<usize>> = Vec::new();
    let mut source_index: HashMap<String, usize> = HashMap::new();
    let mut add_other = |p: usize, source: String| {
        others.push(p);
        let k = *source_index.entry(source).or_insert_with_key(|source| {
            sources.push(source.clone());
            owners.push(Vec::new());
            sources.len() - 1
        });
        owners[k].push(p);
    };
    for p in pats.clone() {
        match &patterns[p] {
            PatternLine::AnyLines => last_line[p - pats.start] = lines.clone().last(),
            PatternLine::Line(line) => match line.rule() {
                Rule::Literal(bytes) => {
                    if let Some(first) = literals.insert(bytes.as_slice(), p) {
                        same[p - pats.start] = Some(first);
                    }
                }
                Rule::Regex(re) => add_other(p, re.as_str().to_string()),
                Rule::Elided(glob) | Rule::Glob(glob) => add_other(p, glob.superset_regex()),
            },
        }
    }
    let set = if others.is_empty() {
        None
    } else {
        RegexSetBuilder::new(&sources)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(SET_SIZE_LIMIT)
            .build()
            .ok()
    };
    let one_by_one = set.is_none() && others.len().saturating_mul(lines.len()) <= TEST_BUDGET;
    if set.is_none() && !one_by_one {
        for &p in &others {
            last_line[p - pats.start] = lines.clone().last();
        }
        let last_other = others.iter().copied().max();
        line_last_pattern.iter_mut().for_each(|h| *h = last_other);
    }

    let mut mark = |p: usize, l: usize| {
        if patterns[p].matches(&actual.lines[l], actual.is_unterminated_last(l)) {
            last_line[p - pats.start] = Some(l);
            let last = &mut line_last_pattern[l - lines.start];
            *last = (*last).max(Some(p));
        }
    };
    for l in lines.clone() {
        let line = actual.lines[l].as_slice();
        let mut literal = literals.get(line).copied();
        while let Some(p) = literal {
            mark(p, l);
            literal = same[p - pats.start];
        }
        if let Some(set) = &set {
            if set.is_match(line) {
                for k in set.matches(line).iter() {
                    owners[k].iter().for_each(|&p| mark(p, l));
                }
            }
        } else if one_by_one {
            others.iter().for_each(|&p| mark(p, l));
        }
    }
    Hits {
        last_line,
        line_last_pattern,
    }
}

/// A stretch of output the search steps over at once: one line, or a run of lines that
/// only `...` can take (`blank`), which costs its length when left unexpected.
#[derive(Debug, Clone, Copy)]
struct Unit {
    first: usize,
    count: usize,
    blank: bool,
}

/// How a state was reached; three bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Move {
    /// `(i, j, out)` to `(i + 1, j, out)`: a pattern that may take no line took none.
    Skip = 0,
    /// `(i, j, out)` to `(i + 1, j, out)`: a pattern that needed a line got none.
    Miss = 1,
    /// `(i, j, out)` to `(i + 1, j + 1, out)`: a single-line pattern took unit j.
    Take = 2,
    /// `(i, j, out)` to `(i, j + 1, in)`: a multi-line pattern took its first unit.
    Start = 3,
    /// `(i, j, in)` to `(i, j + 1, in)`: a multi-line pattern took another unit.
    More = 4,
    /// `(i, j, in)` to `(i + 1, j, out)`: a multi-line pattern is done.
    Finish = 5,
    /// `(i, j, out)` to `(i, j + 1, out)`: unit j is unexpected.
    Extra = 6,
    /// `(i, j, in)` to `(i, j + 1, in)`: unit j is unexpected inside a multi-line run.
    ExtraInside = 7,
}

impl Move {
    fn from_bits(bits: u32) -> Move {
        match bits & 7 {
            0 => Move::Skip,
            1 => Move::Miss,
            2 => Move::Take,
            3 => Move::Start,
            4 => Move::More,
            5 => Move::Finish,
            6 => Move::Extra,
            _ => Move::ExtraInside,
        }
    }
}

/// When a search gives up: after expanding `states` states, or when the cheapest
/// alignment left is estimated to cost more than `cost`.
#[derive(Debug, Clone, Copy)]
struct Budget {
    states: usize,
    cost: u32,
}

/// Per-state record: 0 when unreached, else `(cost + 1) << 4 | done << 3 | move`.
trait Table {
    fn get(&self, state: usize) -> u32;
    fn set(&mut self, state: usize, value: u32);
}

/// Largest search that gets a flat table (4 bytes a state, pages touched only when reached).
const DENSE_STATES: usize = 1 << 24;

const DONE: u32 = 1 << 3;

/// Costs are kept below this so `(cost + 1) << 4` fits a record; no real output gets near.
const MAX_COST: u32 = (1 << 27) - 1;

impl Table for Vec<u32> {
    fn get(&self, state: usize) -> u32 {
        self[state]
    }
    fn set(&mut self, state: usize, value: u32) {
        self[state] = value;
    }
}

/// A multiplicative hasher for state numbers; the keys are not attacker-chosen strings.
#[derive(Default)]
struct StateHasher(u64);

impl Hasher for StateHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type SparseTable = HashMap<usize, u32, BuildHasherDefault<StateHasher>>;

impl Table for SparseTable {
    fn get(&self, state: usize) -> u32 {
        HashMap::get(self, &state).copied().unwrap_or(0)
    }
    fn set(&mut self, state: usize, value: u32) {
        self.insert(state, value);
    }
}

/// States waiting to be expanded, grouped by estimated total cost: the cheapest group in a
/// vector, the others in an ordered map, so memory follows the states pushed and not the
/// size of the costs. Within a group the newest comes first, so a run of free moves is
/// followed to its end before anything else.
struct Queue {
    estimate: u32,
    now: Vec<usize>,
    later: BTreeMap<u32, Vec<usize>>,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            estimate: 0,
            now: Vec::new(),
            later: BTreeMap::new(),
        }
    }

    fn push(&mut self, estimate: u32, state: usize) {
        if estimate == self.estimate {
            self.now.push(state);
        } else if estimate > self.estimate {
            self.later.entry(estimate).or_default().push(state);
        } else {
            // Never happens with a consistent bound; stay correct regardless.
            let earlier = std::mem::replace(&mut self.now, vec![state]);
            if !earlier.is_empty() {
                self.later.entry(self.estimate).or_default().extend(earlier);
            }
            self.estimate = estimate;
        }
    }

    /// The newest state of the cheapest group, with that group's estimate.
    fn pop(&mut self) -> Option<(u32, usize)> {
        loop {
            if let Some(state) = self.now.pop() {
                return Some((self.estimate, state));
            }
            let (estimate, states) = self.later.pop_first()?;
            self.estimate = estimate;
            self.now = states;
        }
    }
}

/// One search: patterns and units by their indices into the full lists.
struct Problem<'a> {
    patterns: &'a [PatternLine],
    actual: &'a Actual,
    pats: &'a [usize],
    units: &'a [Unit],
    bound: LowerBound,
}

/// What a narrowed search knows about which units each pattern can take.
struct Reach<'a> {
    /// Per pattern position: the last unit the pattern matches (`...`: the last unit).
    last_unit: &'a [usize],
    /// Per unit: one past the position of the last pattern that can take it, 0 for none.
    last_pattern: &'a [usize],
}

/// A lower bound on the cost still to pay from a state, so the search (A*) leaves alone
/// states that cannot lead to a cheap alignment. No move lowers it by more than the move
/// costs, so the first alignment found is a cheapest one. It is the largest of: required
/// patterns left beyond the units left that they could take; lines left beyond what the
/// patterns left can take; and, once the search is narrowed, required patterns whose last
/// matching unit is already behind plus lines that no pattern left can take.
struct LowerBound {
    /// Per pattern position: patterns from there on that need at least one line.
    required_from: Vec<u32>,
    /// Per pattern position: how many lines the patterns from there on can take at most,
    /// `None` when one of them can take any number.
    capacity_from: Vec<Option<u64>>,
    /// Per unit position: units from there on that are not blank.
    open_units_from: Vec<u32>,
    /// Per unit position: lines from there on.
    lines_from: Vec<u64>,
    patterns_behind: PatternsBehind,
    /// Per unit: the largest [`Reach::last_pattern`] up to it. Units whose value is at most
    /// `i` form a prefix, and no pattern from `i` on can take them.
    lines_behind: Option<Vec<usize>>,
}

/// How to count required patterns from a position on that match no unit from `j` on.
enum PatternsBehind {
    Unknown,
    /// Per pattern position: the sorted last units of the required patterns from there on.
    /// Exact, and quadratic in size, so only for moderate numbers of patterns.
    Exact(Vec<Vec<usize>>),
    /// The positions of the required patterns, and per required pattern the largest last
    /// unit up to it: a count that is never too high and needs linear space.
    Monotone {
        required_at: Vec<usize>,
        reach: Vec<usize>,
    },
}

/// Most patterns for which [`PatternsBehind::Exact`] is built.
const EXACT_BEHIND_MAX_PATTERNS: usize = 512;

impl LowerBound {
    fn new(
        patterns: &[PatternLine],
        pats: &[usize],
        units: &[Unit],
        reach: Option<&Reach<'_>>,
    ) -> LowerBound {
        let m = pats.len();
        let required = |i: usize| patterns[pats[i]].min_lines() > 0;
        let mut required_from = vec![0u32; m + 1];
        let mut capacity_from = vec![Some(0u64); m + 1];
        for i in (0..m).rev() {
            required_from[i] = required_from[i + 1] + u32::from(required(i));
            capacity_from[i] = if patterns[pats[i]].is_multi() {
                None
            } else {
                capacity_from[i + 1].map(|c| c + 1)
            };
        }
        let n = units.len();
        let mut open_units_from = vec![0u32; n + 1];
        let mut lines_from = vec![0u64; n + 1];
        for j in (0..n).rev() {
            open_units_from[j] = open_units_from[j + 1] + u32::from(!units[j].blank);
            lines_from[j] = lines_from[j + 1] + units[j].count as u64;
        }

        let patterns_behind = match reach {
            None => PatternsBehind::Unknown,
            Some(reach) if m <= EXACT_BEHIND_MAX_PATTERNS => {
                let mut from = vec![Vec::new(); m + 1];
                for i in (0..m).rev() {
                    let mut here = from[i + 1].clone();
                    if required(i) {
                        let last = reach.last_unit[i];
                        here.insert(here.partition_point(|&u| u < last), last);
                    }
                    from[i] = here;
                }
                PatternsBehind::Exact(from)
            }
            Some(reach) => {
                let required_at: Vec<usize> = (0..m).filter(|&i| required(i)).collect();
                let reach = required_at
                    .iter()
                    .scan(0, |max, &i| {
                        *max = reach.last_unit[i].max(*max);
                        Some(*max)
                    })
                    .collect();
                PatternsBehind::Monotone { required_at, reach }
            }
        };
        let lines_behind = reach.map(|reach| {
            reach
                .last_pattern
                .iter()
                .scan(0, |max, &p| {
                    *max = p.max(*max);
                    Some(*max)
                })
                .collect()
        });
        LowerBound {
            required_from,
            capacity_from,
            open_units_from,
            lines_from,
            patterns_behind,
            lines_behind,
        }
    }

    fn at(&self, i: usize, j: usize, inside: bool) -> u32 {
        // Inside a run, pattern i has its line already and can take any number more.
        let next = if inside { i + 1 } else { i };
        let required = u64::from(self.required_from[next].saturating_sub(self.open_units_from[j]));
        let overflow = match self.capacity_from[i] {
            Some(capacity) if !inside => self.lines_from[j].saturating_sub(capacity),
            _ => 0,
        };
        let patterns_behind = match &self.patterns_behind {
            PatternsBehind::Unknown => 0,
            PatternsBehind::Exact(from) => from[next].partition_point(|&u| u < j),
            PatternsBehind::Monotone { required_at, reach } => reach
                .partition_point(|&u| u < j)
                .saturating_sub(required_at.partition_point(|&p| p < next)),
        } as u64;
        let lines_behind = self.lines_behind.as_ref().map_or(0, |last| {
            let end = last.partition_point(|&p| p <= i);
            if end > j {
                self.lines_from[j] - self.lines_from[end]
            } else {
                0
            }
        });
        let bound = required.max(overflow).max(patterns_behind + lines_behind);
        u32::try_from(bound).unwrap_or(u32::MAX)
    }
}

/// The state a move leads to and what it costs.
struct Edge {
    to: usize,
    cost: u32,
    how: Move,
}

impl<'a> Problem<'a> {
    fn new(
        patterns: &'a [PatternLine],
        actual: &'a Actual,
        pats: &'a [usize],
        units: &'a [Unit],
        reach: Option<&Reach<'_>>,
    ) -> Problem<'a> {
        Problem {
            patterns,
            actual,
            pats,
            units,
            bound: LowerBound::new(patterns, pats, units, reach),
        }
    }

    /// The cheapest alignment, or `None` when it lies beyond `budget`.
    fn solve(&self, budget: Option<Budget>) -> Option<Vec<Step>> {
        let states = (self.pats.len() + 1)
            .saturating_mul(self.units.len() + 1)
            .saturating_mul(2);
        let budget = budget.unwrap_or(Budget {
            states: usize::MAX,
            cost: u32::MAX,
        });
        if states <= DENSE_STATES {
            self.search(vec![0u32; states], budget)
        } else {
            self.search(SparseTable::default(), budget)
        }
    }

    /// State numbers run pattern-major: a search that walks down the output under a few
    /// patterns (the usual `...`) touches a few rows of the table, not all of it.
    fn state(&self, i: usize, j: usize, inside: bool) -> usize {
        (i * (self.units.len() + 1) + j) * 2 + usize::from(inside)
    }

    fn unpack(&self, state: usize) -> (usize, usize, bool) {
        let inside = state % 2 == 1;
        let cell = state / 2;
        (
            cell / (self.units.len() + 1),
            cell % (self.units.len() + 1),
            inside,
        )
    }

    fn pattern(&self, i: usize) -> &PatternLine {
        &self.patterns[self.pats[i]]
    }

    fn matches(&self, i: usize, j: usize) -> bool {
        let unit = self.units[j];
        if unit.blank {
            return matches!(self.pattern(i), PatternLine::AnyLines);
        }
        let line = unit.first;
        self.pattern(i).matches(
            &self.actual.lines[line],
            self.actual.is_unterminated_last(line),
        )
    }

    /// The moves out of a state. Of two free moves the one pushed last is tried first: ending
    /// a multi-line run, or passing over a pattern that may take nothing, so `...` takes as
    /// few lines as it can and each line is looked at about once per `...`.
    fn edges(&self, i: usize, j: usize, inside: bool, out: &mut Vec<Edge>) {
        let (m, n) = (self.pats.len(), self.units.len());
        let extra = |j: usize| u32::try_from(self.units[j].count).unwrap_or(u32::MAX);
        out.clear();
        if inside {
            if j < n {
                out.push(Edge {
                    to: self.state(i, j + 1, true),
                    cost: extra(j),
                    how: Move::ExtraInside,
                });
            }
            if j < n && self.matches(i, j) {
                out.push(Edge {
                    to: self.state(i, j + 1, true),
                    cost: 0,
                    how: Move::More,
                });
            }
            out.push(Edge {
                to: self.state(i + 1, j, false),
                cost: 0,
                how: Move::Finish,
            });
            return;
        }
        if j < n {
            out.push(Edge {
                to: self.state(i, j + 1, false),
                cost: extra(j),
                how: Move::Extra,
            });
        }
        if i < m {
            let pattern = self.pattern(i);
            if j < n && self.matches(i, j) {
                out.push(if pattern.is_multi() {
                    Edge {
                        to: self.state(i, j + 1, true),
                        cost: 0,
                        how: Move::Start,
                    }
                } else {
                    Edge {
                        to: self.state(i + 1, j + 1, false),
                        cost: 0,
                        how: Move::Take,
                    }
                });
            }
            let (cost, how) = if pattern.min_lines() == 0 {
                (0, Move::Skip)
            } else {
                (1, Move::Miss)
            };
            out.push(Edge {
                to: self.state(i + 1, j, false),
                cost,
                how,
            });
        }
    }

    fn search<T: Table>(&self, mut table: T, mut budget: Budget) -> Option<Vec<Step>> {
        let goal = self.state(self.pats.len(), self.units.len(), false);
        let mut queue = Queue::new();
        table.set(0, 1 << 4);
        queue.push(self.bound.at(0, 0, false), 0);
        let mut edges = Vec::with_capacity(3);
        while let Some((estimate, state)) = queue.pop() {
            let record = table.get(state);
            if record & DONE != 0 {
                continue;
            }
            table.set(state, record | DONE);
            if state == goal {
                return Some(self.trace(&table, goal));
            }
            if budget.states == 0 || estimate > budget.cost {
                return None;
            }
            budget.states -= 1;
            let cost = (record >> 4) - 1;
            let (i, j, inside) = self.unpack(state);
            self.edges(i, j, inside, &mut edges);
            for edge in &edges {
                let to_cost = cost.saturating_add(edge.cost).min(MAX_COST);
                let old = table.get(edge.to);
                if old != 0 && (old & DONE != 0 || (old >> 4) <= to_cost + 1) {
                    continue;
                }
                table.set(edge.to, ((to_cost + 1) << 4) | edge.how as u32);
                let (ti, tj, tin) = self.unpack(edge.to);
                queue.push(to_cost.saturating_add(self.bound.at(ti, tj, tin)), edge.to);
            }
        }
        // Unreachable: every state leads to the goal by paid moves.
        None
    }

    /// Walks the recorded moves back from the goal and returns the steps in output order.
    fn trace<T: Table>(&self, table: &T, goal: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut state = goal;
        let lines_of = |j: usize| {
            let unit = self.units[j];
            (unit.first..unit.first + unit.count).rev()
        };
        while state != 0 {
            let (i, j, _) = self.unpack(state);
            match Move::from_bits(table.get(state)) {
                Move::Skip => {
                    steps.push(Step::Skipped {
                        pattern: self.pats[i - 1],
                    });
                    state = self.state(i - 1, j, false);
                }
                Move::Miss => {
                    steps.push(Step::Missing {
                        pattern: self.pats[i - 1],
                    });
                    state = self.state(i - 1, j, false);
                }
                Move::Take => {
                    let pattern = self.pats[i - 1];
                    steps.extend(lines_of(j - 1).map(|line| Step::Matched { pattern, line }));
                    state = self.state(i - 1, j - 1, false);
                }
                how @ (Move::Start | Move::More) => {
                    let pattern = self.pats[i];
                    steps.extend(lines_of(j - 1).map(|line| Step::Matched { pattern, line }));
                    state = self.state(i, j - 1, how == Move::More);
                }
                Move::Finish => state = self.state(i - 1, j, true),
                how @ (Move::Extra | Move::ExtraInside) => {
                    steps.extend(lines_of(j - 1).map(|line| Step::Unexpected { line }));
                    state = self.state(i, j - 1, how == Move::ExtraInside);
                }
            }
        }
        steps.reverse();
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::super::normalize::normalize;
    use super::super::pattern::parse_expected;
    use super::super::test_support::Rng;
    use super::*;

    fn setup(expected: &str, output: &str) -> (Vec<PatternLine>, Actual) {
        (
            parse_expected(expected).unwrap(),
            normalize(output.as_bytes(), false),
        )
    }

    #[test]
    fn narrowed_search_agrees_with_the_full_one() {
        // Cases whose cheapest alignment is expensive go through the narrowed search; its
        // cost must equal that of the plain search run to the end.
        let cases: &[(&str, &str)] = &[
            ("a\nb\nc", "x\ny\nz\n"),
            ("...\nc\nb\na\n...", "0\na\n1\nb\n2\nc\n3\n"),
            ("a\n...\nz (re)\nq (glob)\n[..]x", "1\n2\nz\n3\nq\n4\n"),
            ("\\d (re+)\n...\nend", "x\n1\n2\ny\nend\nz\n"),
            ("gone (re?)\n...\ngone too (re*)", "a\nb\n"),
        ];
        for (expected, output) in cases {
            let (patterns, actual) = setup(expected, output);
            let all_pats: Vec<usize> = (0..patterns.len()).collect();
            let units: Vec<Unit> = (0..actual.lines.len())
                .map(|first| Unit {
                    first,
                    count: 1,
                    blank: false,
                })
                .collect();
            let full = Problem::new(&patterns, &actual, &all_pats, &units, None)
                .solve(None)
                .unwrap();
            let full_cost = full
                .iter()
                .filter(|s| matches!(s, Step::Missing { .. } | Step::Unexpected { .. }))
                .count();
            let narrowed = align_narrowed(&patterns, &actual, 0..patterns.len(), 0..units.len());
            let narrowed_cost = narrowed
                .iter()
                .filter(|s| matches!(s, Step::Missing { .. } | Step::Unexpected { .. }))
                .count();
            assert_eq!(narrowed_cost, full_cost, "{expected:?} / {output:?}");
        }
    }

    /// The cheapest cost by plain memoised recursion over the same moves: a reference that
    /// shares nothing with the search but the cost model.
    fn reference_cost(patterns: &[PatternLine], actual: &Actual) -> usize {
        fn go(
            p: &[PatternLine],
            a: &Actual,
            i: usize,
            j: usize,
            inside: bool,
            memo: &mut HashMap<(usize, usize, bool), usize>,
        ) -> usize {
            if i == p.len() {
                return a.lines.len() - j;
            }
            if let Some(&c) = memo.get(&(i, j, inside)) {
                return c;
            }
            let n = a.lines.len();
            let fits = j < n && p[i].matches(&a.lines[j], a.is_unterminated_last(j));
            let mut best = usize::MAX;
            if inside {
                best = best.min(go(p, a, i + 1, j, false, memo));
                if j < n {
                    best = best.min(1 + go(p, a, i, j + 1, true, memo));
                }
                if fits {
                    best = best.min(go(p, a, i, j + 1, true, memo));
                }
            } else {
                let skip = usize::from(p[i].min_lines() > 0);
                best = best.min(skip + go(p, a, i + 1, j, false, memo));
                if j < n {
                    best = best.min(1 + go(p, a, i, j + 1, false, memo));
                }
                if fits {
                    let after = if p[i].is_multi() {
                        go(p, a, i, j + 1, true, memo)
                    } else {
                        go(p, a, i + 1, j + 1, false, memo)
                    };
                    best = best.min(after);
                }
            }
            memo.insert((i, j, inside), best);
            best
        }
        go(patterns, actual, 0, 0, false, &mut HashMap::new())
    }

    fn cost_of(steps: &[Step]) -> usize {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Missing { .. } | Step::Unexpected { .. }))
            .count()
    }

    /// Every line appears once and in order, every pattern once, in order.
    fn assert_well_formed(steps: &[Step], patterns: usize, lines: usize) {
        let seen_lines: Vec<usize> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Matched { line, .. } | Step::Unexpected { line } => Some(*line),
                _ => None,
            })
            .collect();
        assert_eq!(seen_lines, (0..lines).collect::<Vec<_>>());
        let mut seen_patterns: Vec<usize> = steps.iter().filter_map(|s| s.pattern()).collect();
        seen_patterns.dedup();
        assert_eq!(seen_patterns, (0..patterns).collect::<Vec<_>>());
    }

    #[test]
    fn every_route_finds_the_cheapest_alignment() {
        let mut rng = Rng::new(11);
        let pieces: &[&str] = &[
            "a",
            "b",
            "c",
            "...",
            "[..]",
            "a[..]",
            "[abc] (re+)",
            "b (re?)",
            "c* (glob*)",
            "a (no-eol)",
            "",
            "b (+)",
            "x",
        ];
        let words: &[&str] = &["a", "b", "c", "ab", "", "x", "y"];
        for _ in 0..3_000 {
            let expected: Vec<&str> = (0..rng.below(7)).map(|_| *rng.pick(pieces)).collect();
            let mut output = (0..rng.below(9))
                .map(|_| *rng.pick(words))
                .collect::<Vec<_>>()
                .join("\n");
            if rng.below(3) > 0 {
                output.push('\n');
            }
            let (patterns, actual) = setup(&expected.join("\n"), &output);
            let want = reference_cost(&patterns, &actual);
            let (m, n) = (patterns.len(), actual.lines.len());

            let alignment = align(&patterns, &actual);
            assert_eq!(alignment.cost, want, "{expected:?} / {output:?}");
            assert_eq!(cost_of(&alignment.steps), want);
            assert_well_formed(&alignment.steps, m, n);

            let narrowed = align_narrowed(&patterns, &actual, 0..m, 0..n);
            assert_eq!(
                cost_of(&narrowed),
                want,
                "narrowed {expected:?} / {output:?}"
            );
            assert_well_formed(&narrowed, m, n);
        }
    }

    #[test]
    fn many_patterns_out_of_order_around_elisions() {
        // 100 expected lines in the reverse of their output order, between `...` lines, in
        // 50,000 lines: the narrowed search handles it.
        let lines: Vec<String> = (0..50_000).map(|i| format!("line {i}")).collect();
        let expected: Vec<String> = (0..100)
            .rev()
            .map(|k| format!("line {}", k * 400))
            .collect();
        let (patterns, actual) = setup(
            &format!("...\n{}\n...", expected.join("\n")),
            &(lines.join("\n") + "\n"),
        );
        let start = std::time::Instant::now();
        let alignment = align(&patterns, &actual);
        assert_eq!(alignment.cost, 99);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
