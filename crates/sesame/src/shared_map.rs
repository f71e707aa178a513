//! `SharedMap`: a session's data, shared copy-on-write with the store.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use sesame_codec::SessionMap;

/// A session's data as a [`Session`](crate::Session) holds it.
///
/// Loading from a store that keeps records in memory shares the store's map
/// (an `Arc` clone); the first write copies it (`Arc::make_mut`), and saving
/// hands the map back by reference count. A request that only reads copies
/// nothing; one that writes copies once. An empty map allocates nothing, so a
/// session that is never used costs no allocation for its data.
#[derive(Clone, Default)]
pub(crate) struct SharedMap(Option<Arc<SessionMap>>);

/// What an empty `SharedMap` reads as.
static EMPTY: LazyLock<SessionMap> = LazyLock::new(SessionMap::new);

impl SharedMap {
    /// The data to write: the same allocation this map reads from.
    pub(crate) fn share(&self) -> Arc<SessionMap> {
        self.0.clone().unwrap_or_default()
    }

    /// The data for writing, copied first if anyone else shares it.
    pub(crate) fn make_mut(&mut self) -> &mut SessionMap {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default))
    }

    /// Empties the map (dropping this holder's share, copying nothing).
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}

impl From<Arc<SessionMap>> for SharedMap {
    fn from(data: Arc<SessionMap>) -> Self {
        Self(Some(data))
    }
}

impl Deref for SharedMap {
    type Target = SessionMap;

    fn deref(&self) -> &SessionMap {
        self.0.as_deref().unwrap_or(&EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn writes_copy_only_what_is_shared() {
        let mut stored = SessionMap::new();
        stored.insert("n".into(), json!(1));
        let stored = Arc::new(stored);
        let mut data = SharedMap::from(Arc::clone(&stored));
        assert!(Arc::ptr_eq(&data.share(), &stored), "a load shares");
        data.make_mut().insert("n".into(), json!(2));
        assert_eq!(stored["n"], json!(1), "the store's copy is untouched");
        assert_eq!(data["n"], json!(2));
        let written = data.share();
        assert!(Arc::ptr_eq(&written, &data.share()), "a save shares");
    }

    #[test]
    fn an_empty_map_reads_empty_and_clears_to_empty() {
        let mut data = SharedMap::default();
        assert!(data.is_empty());
        assert!(data.share().is_empty());
        data.make_mut().insert("k".into(), json!("v"));
        assert_eq!(data.len(), 1);
        data.clear();
        assert!(data.is_empty() && data.get("k").is_none());
    }
}
