//! Bounded walks over the values a template makes.
//!
//! minijinja prints, compares and orders a list or a map by recursing through it, with
//! no fuel charged for the items it visits and no limit on the depth: a namespace that
//! holds itself recurses until the stack overflows, and 64 nested lists of two references
//! to one list are 2^64 items to print, made by a template of a few hundred bytes. Its
//! lazy views (`a + b`, `a[1:]`, `a * n`, `a|items`, `a|chain(b)`) are free to make and
//! cost a step per item and per level of views below when read, so views of views make
//! each step slow without charge. The guards (see `guards`) summarize a value here
//! before an operation that may visit all of it, and make every new view a plain list.
//!
//! A summary counts the items and bytes of text the value holds as an operation
//! visiting it would meet them (a list held twice counts twice) and how deep it nests.
//! The messages are summarized once ([`Known`]), so that a value made of messages (the
//! list of messages, or a namespace accumulating them) is summarized in a step per
//! message.

use std::collections::HashMap;
use std::sync::OnceLock;

use indexmap::IndexMap;

use minijinja::Environment;
use minijinja::value::{DynObject, ObjectRepr, Tuple, Value};

/// How deep lists and maps may nest. Chat templates see messages (a list of maps of
/// strings, tool calls a few levels more); JSON schemas of tools nest about ten levels.
pub(super) const MAX_DEPTH: u64 = 64;

/// Why a walk refused a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Breach {
    /// The walk visited as many items as it was allowed to (the fuel left).
    Visits,
    /// The value is larger than the size allowed: one unit per item and per byte of
    /// text, about what printing it would write.
    Size,
    /// Lists and maps nest more than [`MAX_DEPTH`] levels (or hold themselves).
    Depth,
}

/// What a value holds, as an operation visiting all of it would meet it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Summary {
    /// The value and every item below it.
    pub(super) items: u64,
    /// The bytes of text of those items.
    pub(super) bytes: u64,
    /// How many levels of lists and maps it nests (0 for a string or a number).
    pub(super) depth: u64,
    /// Whether a namespace is among the items.
    pub(super) namespace: bool,
}

impl Summary {
    fn size(&self) -> u64 {
        self.items.saturating_add(self.bytes)
    }

    fn add(&mut self, item: &Summary) {
        self.items = self.items.saturating_add(item.items);
        self.bytes = self.bytes.saturating_add(item.bytes);
        self.depth = self.depth.max(item.depth.saturating_add(1));
        self.namespace |= item.namespace;
    }
}

/// Summaries of the render's input: the lists and maps of messages, by the address of
/// their items, with the values kept alive so that no address is reused while known.
#[derive(Default)]
pub(super) struct Known {
    summaries: HashMap<usize, Summary>,
    alive: Vec<Value>,
}

impl Known {
    /// The summaries of `input` and of every list and map in it.
    pub(super) fn new(input: &Value) -> Known {
        let mut found = Vec::new();
        let none = Known::default();
        // The input is the caller's conversation: a list of maps of strings.
        let summarized = Walk {
            known: &none,
            visits_left: u64::MAX,
            max_size: u64::MAX,
            visits: 0,
            found: Some(&mut found),
        }
        .summarize(input);
        let mut known = Known::default();
        if summarized.is_ok() {
            for (value, address, summary) in found {
                known.summaries.insert(address, summary);
                known.alive.push(value);
            }
        }
        known
    }
}

/// One walk's allowances and what it spent.
pub(super) struct Walk<'k> {
    known: &'k Known,
    /// Items the walk may still visit.
    visits_left: u64,
    /// The largest size a value may have (see [`Breach::Size`]).
    max_size: u64,
    /// Items visited so far.
    pub(super) visits: u64,
    /// Where [`Known::new`] collects the lists and maps it summarizes.
    found: Option<&'k mut Vec<(Value, usize, Summary)>>,
}

impl<'k> Walk<'k> {
    pub(super) fn new(known: &'k Known, max_visits: u64, max_size: u64) -> Walk<'k> {
        Walk {
            known,
            visits_left: max_visits,
            max_size,
            visits: 0,
            found: None,
        }
    }

    /// Summarizes `value`, refusing it when it is larger or deeper than allowed or when
    /// the walk would visit more items than it may.
    pub(super) fn summarize(&mut self, value: &Value) -> Result<Summary, Breach> {
        self.summary(value, 0)
    }

    /// `value` made a plain list (or map) if it is a lazy view, visiting its items but
    /// not what they hold (each counts one to the size); `None` if it is no view.
    pub(super) fn flatten(&mut self, value: &Value) -> Result<Option<Value>, Breach> {
        let Some(object) = value.as_object() else {
            return Ok(None);
        };
        let types = known_types();
        match object.repr() {
            ObjectRepr::Iterable => {}
            ObjectRepr::Seq if object.type_name() == types.merged_list => {}
            ObjectRepr::Map if object.type_name() == types.merged_map => {
                let mut map = IndexMap::new();
                for (key, item) in object.try_iter_pairs().into_iter().flatten() {
                    self.take(map.len())?;
                    map.insert(key, item);
                }
                return Ok(Some(Value::from(map)));
            }
            _ => return Ok(None),
        }
        let mut list = Vec::new();
        for item in object.try_iter().into_iter().flatten() {
            self.take(list.len())?;
            list.push(item);
        }
        Ok(Some(Value::from(list)))
    }

    /// Visits one more item for a copy holding `copied` so far.
    fn take(&mut self, copied: usize) -> Result<(), Breach> {
        self.visit()?;
        if u64::try_from(copied).unwrap_or(u64::MAX) >= self.max_size {
            return Err(Breach::Size);
        }
        Ok(())
    }

    /// The summary of `value`, `depth` levels below the value the walk started at.
    fn summary(&mut self, value: &Value, depth: u64) -> Result<Summary, Breach> {
        self.visit()?;
        let bytes = value
            .as_str()
            .map(str::len)
            .or_else(|| value.as_bytes().map(<[u8]>::len))
            .unwrap_or(0);
        let mut summary = Summary {
            items: 1,
            bytes: u64::try_from(bytes).unwrap_or(u64::MAX),
            ..Summary::default()
        };
        if let Some(object) = value.as_object() {
            if let Some(known) = self.container(value, object, depth)? {
                summary = known;
            }
        }
        if summary.size() > self.max_size {
            return Err(Breach::Size);
        }
        if summary.depth > MAX_DEPTH {
            return Err(Breach::Depth);
        }
        Ok(summary)
    }

    /// The summary of a list or map, from the known ones where it is one; `None` for other
    /// objects.
    fn container(
        &mut self,
        value: &Value,
        object: &DynObject,
        depth: u64,
    ) -> Result<Option<Summary>, Breach> {
        let mut summary = Summary {
            items: 1,
            namespace: object.repr() == ObjectRepr::Map
                && object.type_name() == known_types().namespace,
            ..Summary::default()
        };
        let mut below = |walk: &mut Self, item: &Value| -> Result<(), Breach> {
            if depth >= MAX_DEPTH {
                return Err(Breach::Depth);
            }
            let item = walk.summary(item, depth + 1)?;
            summary.add(&item);
            Ok(())
        };
        // Lists and maps of values: read in place, known if they are the input's.
        let built = if let Some(items) = object.downcast_ref::<Vec<Value>>() {
            Some((items.as_ptr().addr(), Built::List(items)))
        } else if let Some(tuple) = object.downcast_ref::<Tuple>() {
            Some((tuple.as_ptr().addr(), Built::List(tuple)))
        } else {
            object
                .downcast_ref::<IndexMap<Value, Value>>()
                .map(|map| (std::ptr::from_ref(map).addr(), Built::Map(map)))
        };
        if let Some((address, built)) = built {
            if let Some(known) = self.known.summaries.get(&address) {
                return Ok(Some(*known));
            }
            match built {
                Built::List(items) => items.iter().try_for_each(|item| below(self, item))?,
                Built::Map(map) => map.iter().try_for_each(|(key, item)| {
                    below(self, key)?;
                    below(self, item)
                })?,
            }
            // An empty list's items have no address of their own.
            if let (Some(found), true) = (self.found.as_mut(), summary.items > 1) {
                found.push((value.clone(), address, summary));
            }
            return Ok(Some(summary));
        }
        // Other lists and maps (namespaces, views), through minijinja's iterators.
        let items: Box<dyn Iterator<Item = Value> + Send + Sync> = match object.repr() {
            ObjectRepr::Map => match object.try_iter_pairs() {
                Some(pairs) => Box::new(pairs.flat_map(|(key, item)| [key, item])),
                None => return Ok(Some(summary)),
            },
            ObjectRepr::Seq | ObjectRepr::Iterable => match object.try_iter() {
                Some(items) => items,
                None => return Ok(Some(summary)),
            },
            _ => return Ok(None),
        };
        for item in items {
            below(self, &item)?;
        }
        Ok(Some(summary))
    }

    fn visit(&mut self) -> Result<(), Breach> {
        if self.visits_left == 0 {
            return Err(Breach::Visits);
        }
        self.visits_left -= 1;
        self.visits += 1;
        Ok(())
    }
}

/// The items of a list, tuple or map the template built (minijinja's maps, with
/// `preserve_order`, keep their keys in order of insertion, as Python's dicts do).
enum Built<'a> {
    List(&'a [Value]),
    Map(&'a IndexMap<Value, Value>),
}

/// The type names of the minijinja values a walk tells apart from other lists and maps:
/// its namespaces and its lazy concatenations of lists (`a|chain(b)`) and maps. Taken
/// from values of those types, so they follow minijinja's naming.
struct KnownTypes {
    namespace: &'static str,
    merged_list: &'static str,
    merged_map: &'static str,
}

fn known_types() -> &'static KnownTypes {
    static TYPES: OnceLock<KnownTypes> = OnceLock::new();
    TYPES.get_or_init(|| {
        let env = Environment::new();
        let type_of = |expr: &str| {
            let value = env.compile_expression(expr).and_then(|e| e.eval(()));
            value
                .ok()
                .as_ref()
                .and_then(Value::as_object)
                .map_or("", |o| o.type_name())
        };
        KnownTypes {
            namespace: type_of("namespace()"),
            merged_list: type_of("[0]|chain([0])"),
            merged_map: type_of("{}|chain({})"),
        }
    })
}
