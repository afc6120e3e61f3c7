//! Reading the tokenizer fixtures that scripts/gen-tokenizer-fixtures.py writes: one JSON
//! object a line, with token ids as arrays of numbers. A test that uses this module also
//! declares `mod common`.

/// Every line of the JSON Lines file at `relative` under tests/fixtures (blank lines
/// skipped).
pub fn read_jsonl(relative: &str) -> Vec<serde_json::Value> {
    let path = crate::common::fixture_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("fixture line is JSON"))
        .collect()
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id")).expect("32-bit id"))
        .collect()
}
