//! Reports of a day: the daily report (contract rules 34, 45 and 59) and the
//! visits report (rule 58), as the protocol's JSON types, as CSV and as Excel
//! workbooks for managers.
//!
//! Pure functions of one day's tickets and the site configuration: the hub
//! hands them the tickets (today's from the state, a past day's report from
//! the store, written by the planner when that day ended). Times are taken at
//! whole seconds, as the tickets print them. Nothing here touches the store,
//! a clock or the network.
//!
//! `daily` and `visits` build the reports; `stats` holds the shared figures
//! (nearest-rank percentiles, means to 0.1 s, shares rounded half up); `csv`
//! and `xlsx` write them out.

pub mod csv;
mod daily;
mod stats;
mod visits;
pub mod xlsx;

pub use daily::daily;
pub use visits::visits;
