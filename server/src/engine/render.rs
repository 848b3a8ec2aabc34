//! Views of the engine state in wire form: tickets with position and wait
//! estimate, the board snapshot, `/site`, and events as clients see them.
//! Pure functions of the state; nothing here changes it.

use luot_protocol::{
    BoardCounter, BoardService, BoardState, CounterInfo, EventKind, RecentCall, SiteCounter,
    SiteInfo, SiteService, Ticket, TicketStatus, WireEvent,
};

use super::{Event, Millis, State, TicketRec};

impl State {
    /// Rule 19: 1 + waiting tickets ahead of it in its service's order.
    pub fn position(&self, t: &TicketRec) -> Option<u32> {
        if t.status != TicketStatus::Waiting {
            return None;
        }
        let s = self.site.service_idx(&t.service)?;
        let q = &self.queues[s];
        let b = self.site.bucket(t.front, t.priority.as_deref());
        let before: u32 = q.counts[..b as usize].iter().sum();
        // Most lookups are of the newest ticket of its bucket: count from the end.
        let after_in_bucket = q
            .waiting
            .range((b, t.order + 1)..(b + 1, 0))
            .take(64)
            .count() as u32;
        let in_bucket = if after_in_bucket < 64 {
            q.counts[b as usize] - 1 - after_in_bucket
        } else {
            q.waiting.range((b, 0)..(b, t.order)).count() as u32
        };
        Some(before + in_bucket + 1)
    }

    /// Rule 20: position × mean service time of the last 20 done tickets ÷
    /// open counters serving the service; null without a basis.
    pub fn estimated_wait_s(&self, t: &TicketRec, position: Option<u32>) -> Option<u64> {
        let position = position?;
        let s = self.site.service_idx(&t.service)?;
        if self.done_today[s] < super::ESTIMATE_MIN_DONE {
            return None;
        }
        let open = self
            .site
            .counters
            .iter()
            .zip(&self.counters)
            .filter(|(d, c)| c.open && d.services.contains(&s))
            .count();
        if open == 0 {
            return None;
        }
        let times = &self.service_times[s];
        if times.is_empty() {
            return None;
        }
        let mean_ms = times.iter().sum::<Millis>() as f64 / times.len() as f64;
        Some((position as f64 * mean_ms / 1000.0 / open as f64).round() as u64)
    }

    /// A ticket as clients see it now.
    pub fn render_ticket(&self, t: &TicketRec) -> Ticket {
        let position = self.position(t);
        render_record(&self.site, t, position, self.estimated_wait_s(t, position))
    }

    /// The numbers a counter serving only `service` would call, up to `max`
    /// (rule 23): the same order as calling next (`CallOrder`).
    pub fn next_numbers(&self, service: usize, max: usize) -> Vec<String> {
        self.call_order(&[service], 0)
            .take(max)
            .map(|i| self.tickets[i].number.clone())
            .collect()
    }

    /// The board view of the named services.
    pub fn board_services(&self, ids: &[&str]) -> Vec<BoardService> {
        let mut out: Vec<BoardService> = Vec::with_capacity(ids.len());
        for id in ids {
            if out.iter().any(|s| s.id == *id) {
                continue;
            }
            if let Some(i) = self.site.service_idx(id) {
                out.push(self.board_service(i));
            }
        }
        out
    }

    fn board_service(&self, i: usize) -> BoardService {
        let s = &self.site.services[i];
        BoardService {
            id: s.id.clone(),
            name: s.name.clone(),
            prefix: s.prefix.clone(),
            waiting: self.waiting_count(i),
            next_numbers: self.next_numbers(i, 5),
        }
    }

    pub fn board(&self) -> BoardState {
        let site = &self.site;
        BoardState {
            day: self.day.map(|d| d.to_string()).unwrap_or_default(),
            services: (0..site.services.len())
                .map(|i| self.board_service(i))
                .collect(),
            counters: site
                .counters
                .iter()
                .enumerate()
                .map(|(i, c)| BoardCounter {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    open: self.counters[i].open,
                    serving: self.serving(i).map(|t| self.render_ticket(t)),
                    services: c
                        .services
                        .iter()
                        .map(|&s| site.services[s].id.clone())
                        .collect(),
                })
                .collect(),
            recent_calls: self
                .recent
                .iter()
                .map(|r| RecentCall {
                    number: r.number.clone(),
                    counter: r.counter.clone(),
                    counter_name: self.counter_name(&r.counter),
                    service_name: self.service_name(&r.service),
                    at: site.fmt_time(r.at),
                })
                .collect(),
        }
    }

    pub fn site_info(&self) -> SiteInfo {
        let site = &self.site;
        SiteInfo {
            name: site.name.clone(),
            day: self.day.map(|d| d.to_string()).unwrap_or_default(),
            public_url: site.public_url.clone(),
            services: site
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| SiteService {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    prefix: s.prefix.clone(),
                    waiting: self.waiting_count(i),
                })
                .collect(),
            counters: site
                .counters
                .iter()
                .enumerate()
                .map(|(i, c)| SiteCounter {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    services: c
                        .services
                        .iter()
                        .map(|&s| site.services[s].id.clone())
                        .collect(),
                    open: self.counters[i].open,
                    serving: self.serving(i).map(|t| t.number.clone()),
                })
                .collect(),
        }
    }

    pub fn counter_info(&self, id: &str) -> Option<CounterInfo> {
        let i = self.site.counter_idx(id)?;
        let c = &self.site.counters[i];
        Some(CounterInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            services: c
                .services
                .iter()
                .map(|&s| self.site.services[s].id.clone())
                .collect(),
            open: self.counters[i].open,
            serving: self.serving(i).map(|t| self.render_ticket(t)),
        })
    }

    pub fn counter_name(&self, id: &str) -> String {
        self.site
            .counter_idx(id)
            .map(|i| self.site.counters[i].name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    pub fn service_name(&self, id: &str) -> String {
        self.site
            .service_idx(id)
            .map(|i| self.site.services[i].name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// An event as clients see it (rule 29), rendered against the current state.
    /// `None` for private events.
    pub fn render_event(&self, e: &Event) -> Option<WireEvent> {
        let site = &self.site;
        let blank = |kind| WireEvent {
            kind,
            ticket: None,
            counter: None,
            counter_name: None,
            service_name: None,
            day: None,
            from_service: None,
            at: None,
            services: None,
        };
        let ticket_event = |kind, id: &str, counter: Option<&str>, at: Millis| {
            let mut w = blank(kind);
            if let Some(t) = self.ticket(id) {
                w.service_name = Some(self.service_name(&t.service));
                w.ticket = Some(self.render_ticket(t));
                w.services = Some(self.board_services(&[t.service.as_str()]));
            }
            if let Some(c) = counter {
                w.counter = Some(c.to_string());
                w.counter_name = Some(self.counter_name(c));
            }
            w.at = Some(site.fmt_time(at));
            w
        };
        Some(match e {
            Event::DayStarted { day, at } => {
                let mut w = blank(EventKind::DayStarted);
                w.day = Some(day.to_string());
                w.at = Some(site.fmt_time(*at));
                w
            }
            Event::TicketIssued { ticket, .. } => {
                ticket_event(EventKind::TicketIssued, &ticket.id, None, ticket.issued_at)
            }
            Event::TicketCalled {
                id, counter, at, ..
            } => ticket_event(EventKind::TicketCalled, id, Some(counter), *at),
            Event::TicketRecalled {
                id, counter, at, ..
            } => ticket_event(EventKind::TicketRecalled, id, Some(counter), *at),
            Event::TicketDone {
                id, counter, at, ..
            } => ticket_event(EventKind::TicketDone, id, Some(counter), *at),
            Event::TicketNoShow {
                id, counter, at, ..
            } => ticket_event(EventKind::TicketNoShow, id, Some(counter), *at),
            Event::TicketTransferred {
                id,
                counter,
                from_service,
                at,
                ..
            } => {
                let mut w = ticket_event(EventKind::TicketTransferred, id, Some(counter), *at);
                w.from_service = Some(from_service.clone());
                if let Some(t) = self.ticket(id) {
                    w.services =
                        Some(self.board_services(&[from_service.as_str(), t.service.as_str()]));
                }
                w
            }
            Event::CounterOpened { counter, at, .. } => {
                let mut w = blank(EventKind::CounterOpened);
                w.counter = Some(counter.clone());
                w.counter_name = Some(self.counter_name(counter));
                w.at = Some(site.fmt_time(*at));
                w
            }
            Event::CounterClosed { counter, at, .. } => {
                let mut w = blank(EventKind::CounterClosed);
                w.counter = Some(counter.clone());
                w.counter_name = Some(self.counter_name(counter));
                w.at = Some(site.fmt_time(*at));
                w
            }
            Event::FeedbackGiven { .. } => return None,
        })
    }
}

/// A ticket record in wire form with a given position and estimate.
pub fn render_record(
    site: &super::Site,
    t: &TicketRec,
    position: Option<u32>,
    estimated_wait_s: Option<u64>,
) -> Ticket {
    Ticket {
        id: t.id.clone(),
        number: t.number.clone(),
        service: t.service.clone(),
        priority: t.priority.clone(),
        status: t.status,
        counter: t.counter.clone(),
        issued_at: site.fmt_time(t.issued_at),
        called_at: t.called_at.map(|x| site.fmt_time(x)),
        finished_at: t.finished_at.map(|x| site.fmt_time(x)),
        day: t.day.to_string(),
        position,
        estimated_wait_s,
    }
}
