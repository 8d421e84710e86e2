//! `null://`: takes every frame and produces none.

use std::io;

use mio::Registry;

use super::{Endpoint, Ready, Stop};
use crate::lane::Lane;
use crate::stats::{LinkStats, StatsTable};

#[derive(Default)]
pub struct NullEndpoint {
    stats: LinkStats,
}

impl Endpoint for NullEndpoint {
    fn label(&self) -> String {
        "null://".into()
    }

    fn register(&mut self, _registry: &Registry, _side: usize) -> io::Result<()> {
        Ok(())
    }

    fn on_event(&mut self, _registry: &Registry, _local: usize, _ready: Ready) -> Result<(), Stop> {
        Ok(())
    }

    fn fill(&mut self, _lane: &mut Lane) -> Result<usize, Stop> {
        Ok(0)
    }

    fn deliver(&mut self, lane: &mut Lane) -> Result<usize, Stop> {
        let n = lane.ring.queued().len();
        for i in 0..n {
            let len = lane.ring.frame(lane.ring.queued()[i]).len();
            self.stats.count_out(len);
        }
        Ok(lane.ring.consume_front(n))
    }

    fn report(&self, table: &mut StatsTable) {
        table.row("null://", &self.stats, "");
    }
}
