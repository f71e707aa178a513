//! The forwarding doubles are transparent: wrapped around `MemoryStore`, they
//! pass the store suite exactly as it does.

use std::time::Duration;

use sesame::backends::MemoryStore;
use sesame_conformance::{Caps, CountingStore, SlowStore};

mod counting {
    use super::*;

    sesame_conformance::store_suite!(
        async { Some(CountingStore::new(MemoryStore::new())) },
        Caps::default()
    );
}

mod slow {
    use super::*;

    sesame_conformance::store_suite!(
        async { Some(SlowStore::new(MemoryStore::new(), Duration::from_millis(1))) },
        Caps::default()
    );
}
