//! Random edits of a snapshot's JSON, for `tests/snapshot.rs`: a value
//! nudged, replaced or flipped, a list entry dropped, duplicated or
//! swapped — anywhere in the document, so every field gets its turn.
#![allow(dead_code)]

use quickcheck::{Arbitrary, Gen};
use serde_json::{Value, json};

/// One edit: which node (index into the document's nodes in pre-order,
/// modulo their number) and what to do to it.
#[derive(Debug, Clone)]
pub struct Edit {
    node: usize,
    how: How,
}

#[derive(Debug, Clone)]
enum How {
    /// A number moved by this much (other values: replaced by it).
    Nudge(i64),
    /// A boolean flipped (other values: replaced by `true`).
    Flip,
    /// Replaced by one of `replacements()`.
    Replace(usize),
    /// A list entry dropped, duplicated, or two swapped (other values:
    /// replaced by `null`).
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
}

/// Plausible values: ids, states, reasons, extremes.
fn replacements() -> Vec<Value> {
    vec![
        Value::Null,
        json!(0),
        json!(1),
        json!(-1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(u32::MAX),
        json!(""),
        json!("#0.1"),
        json!("#0.2"),
        json!("#1.1"),
        json!("#3:0.1"),
        json!("#3:1.2"),
        json!("open"),
        json!("half-closed"),
        json!("closing"),
        json!("offline"),
        json!("kicked(1)"),
        json!("idle-timeout"),
        json!("io-error(TimedOut)"),
        json!("lifecycle"),
        json!("stall"),
        json!([]),
        json!({}),
    ]
}

impl Arbitrary for Edit {
    fn arbitrary(g: &mut Gen) -> Edit {
        let small = |g: &mut Gen| usize::from(u8::arbitrary(g));
        let how = match u8::arbitrary(g) % 10 {
            0..=3 => How::Nudge(match u8::arbitrary(g) % 6 {
                0 => 1,
                1 => -1,
                2 => i64::from(i8::arbitrary(g)),
                3 => 1_000_000 * i64::from(i16::arbitrary(g)),
                4 => 1_000_000_000 * i64::from(i16::arbitrary(g)),
                _ => i64::arbitrary(g),
            }),
            4 => How::Flip,
            5 | 6 => How::Replace(small(g)),
            7 => How::Drop(small(g)),
            8 => How::Duplicate(small(g)),
            _ => How::Swap(small(g), small(g)),
        };
        Edit {
            node: usize::arbitrary(g),
            how,
        }
    }
}

/// Every node of `v`, in pre-order, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(fields) => {
            for (k, item) in fields {
                pointers(item, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Applies `edit` to `doc`.
pub fn apply(doc: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    if matches!(edit.how, How::Drop(_) | How::Duplicate(_) | How::Swap(..)) {
        all.retain(|at| {
            doc.pointer(at)
                .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        });
    }
    let Some(at) = all.get(edit.node % all.len().max(1)) else {
        return;
    };
    let Some(node) = doc.pointer_mut(at) else {
        return;
    };
    match (&edit.how, &mut *node) {
        (How::Nudge(d), Value::Number(n)) => {
            // Unsigned stays unsigned (mostly a field that must be).
            *node = if let Some(u) = n.as_u64() {
                json!(u.saturating_add_signed(*d))
            } else if let Some(i) = n.as_i64() {
                json!(i.saturating_add(*d))
            } else {
                json!(*d)
            };
        }
        (How::Nudge(_) | How::Flip, Value::Bool(b)) => *b = !*b,
        (How::Nudge(d), Value::Null) => *node = json!(*d),
        (How::Flip, Value::Number(n)) => {
            *node = n.as_u64().map_or(json!(0), |u| json!(u.saturating_add(1)));
        }
        (How::Replace(k), _) => {
            // Mostly a value of the same JSON type, so that it parses.
            let values = replacements();
            let same: Vec<&Value> = (values.iter())
                .filter(|v| std::mem::discriminant(*v) == std::mem::discriminant(&*node))
                .collect();
            *node = match same.len() {
                0 => values[k % values.len()].clone(),
                n if k % 4 != 0 => same[k % n].clone(),
                _ => values[k % values.len()].clone(),
            };
        }
        (How::Nudge(_) | How::Flip, _) => *node = json!(null),
        (How::Drop(i), Value::Array(items)) if !items.is_empty() => {
            let i = i % items.len();
            items.remove(i);
        }
        (How::Duplicate(i), Value::Array(items)) if !items.is_empty() => {
            let i = i % items.len();
            let copy = items[i].clone();
            items.insert(i, copy);
        }
        (How::Swap(i, j), Value::Array(items)) if !items.is_empty() => {
            let n = items.len();
            items.swap(i % n, j % n);
        }
        (How::Drop(_) | How::Duplicate(_) | How::Swap(..), _) => *node = Value::Null,
    }
}
