//! Paging for list endpoints: `?page=N&size=M` (numbered pages) or
//! `?cursor=...&size=M` (an opaque `next` link), as provider APIs do.

use std::collections::HashMap;

/// A numbered page request, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The page number, from 1.
    pub page: usize,
    /// Items per page, at least 1.
    pub size: usize,
}

impl PageRequest {
    /// Reads `page` and `size` from a query string; missing or unreadable
    /// values fall back to page 1 and `default_size`; `size` is capped at
    /// `max_size`.
    pub fn from_query(query: &str, default_size: usize, max_size: usize) -> Self {
        let params = crate::form::parse(query.as_bytes());
        let number = |key: &str| params.get(key).and_then(|v| v.parse::<usize>().ok());
        Self {
            page: number("page").filter(|p| *p > 0).unwrap_or(1),
            size: number("size")
                .filter(|s| *s > 0)
                .unwrap_or(default_size)
                .clamp(1, max_size.max(1)),
        }
    }
}

/// One page of items and the link to the next one.
#[derive(Debug, PartialEq, Eq)]
pub struct Paged<'a, T> {
    /// The page's items.
    pub items: &'a [T],
    /// How many items there are in all.
    pub total: usize,
    /// The next page's path and query, when there is one.
    pub next: Option<String>,
}

/// The page `request` asks for, out of `items`; `next` is
/// `{path}?page={n+1}&size={size}`.
pub fn page<'a, T>(items: &'a [T], request: PageRequest, path: &str) -> Paged<'a, T> {
    let start = (request.page - 1)
        .saturating_mul(request.size)
        .min(items.len());
    let end = start.saturating_add(request.size).min(items.len());
    let next = (end < items.len())
        .then(|| format!("{path}?page={}&size={}", request.page + 1, request.size));
    Paged {
        items: &items[start..end],
        total: items.len(),
        next,
    }
}

/// Cursor paging: `query`'s `cursor` (absent on the first call) and `size`;
/// `next` is `{path}?cursor=...&size={size}`. An unknown cursor is `None`
/// (answer 400).
pub fn cursor<'a, T>(
    items: &'a [T],
    query: &str,
    default_size: usize,
    path: &str,
) -> Option<Paged<'a, T>> {
    let params: HashMap<String, String> = crate::form::parse(query.as_bytes());
    let size = params
        .get("size")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(default_size.max(1));
    let start = match params.get("cursor") {
        None => 0,
        Some(c) => decode_cursor(c).filter(|s| *s <= items.len())?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next =
        (end < items.len()).then(|| format!("{path}?cursor={}&size={size}", encode_cursor(end)));
    Some(Paged {
        items: &items[start..end],
        total: items.len(),
        next,
    })
}

fn encode_cursor(offset: usize) -> String {
    format!("c{offset:x}")
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    usize::from_str_radix(cursor.strip_prefix('c')?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_pages() {
        let items: Vec<u32> = (1..=25).collect();
        let req = PageRequest::from_query("page=2&size=10", 20, 100);
        assert_eq!(req, PageRequest { page: 2, size: 10 });
        let p = page(&items, req, "/ops");
        assert_eq!(p.items, &items[10..20]);
        assert_eq!(p.total, 25);
        assert_eq!(p.next.as_deref(), Some("/ops?page=3&size=10"));
        let last = page(&items, PageRequest { page: 3, size: 10 }, "/ops");
        assert_eq!(last.items.len(), 5);
        assert_eq!(last.next, None);
        let beyond = page(&items, PageRequest { page: 9, size: 10 }, "/ops");
        assert!(beyond.items.is_empty());
        assert_eq!(
            PageRequest::from_query("page=0&size=999", 20, 50),
            PageRequest { page: 1, size: 50 }
        );
        assert_eq!(
            PageRequest::from_query("", 20, 50),
            PageRequest { page: 1, size: 20 }
        );
    }

    #[test]
    fn cursor_pages_follow_next_links() {
        let items: Vec<u32> = (0..7).collect();
        let mut seen = Vec::new();
        let mut query = "size=3".to_owned();
        loop {
            let p = cursor(&items, &query, 10, "/tx").expect("valid cursor");
            seen.extend_from_slice(p.items);
            match p.next {
                Some(next) => query = next.split_once('?').expect("query").1.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(cursor(&items, "cursor=zz", 10, "/tx").is_none());
        assert!(cursor(&items, "cursor=c99", 10, "/tx").is_none());
    }
}
