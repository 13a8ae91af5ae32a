//! Themes of a period: its entries grouped by meaning into a few clusters (spherical k-means
//! over each entry's mean embedding), each labelled with the keywords most particular to it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use metachat_validation::EntryId;

use super::{StoredVectors, dot, mean_unit};

/// At most this many themes per period.
pub const MAX_THEMES: usize = 6;

/// Fewer entries than this give no themes (too few to group).
pub const MIN_ENTRIES: usize = 6;

/// A theme is shown when it holds at least this many entries.
pub const MIN_THEME_ENTRIES: usize = 2;

/// Keywords given per theme; the label is made of the first three.
const KEYWORDS: usize = 5;

/// Entries named per theme: those closest to its centre.
const EXAMPLES: usize = 3;

/// Rounds of k-means at most.
const ROUNDS: usize = 30;

/// One theme of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Its three most particular keywords, joined.
    pub label: String,
    pub keywords: Vec<String>,
    pub entry_count: u32,
    /// Its share of the entries grouped (the period's, at most the latest 2,000), those in
    /// no theme included.
    pub share: f64,
    pub first_written_at: DateTime<Utc>,
    pub last_written_at: DateTime<Utc>,
    /// The entries closest to its centre, closest first.
    pub examples: Vec<EntryId>,
}

/// How many clusters `n` entries are grouped into: about the square root of half of them.
fn clusters_for(n: usize) -> usize {
    (((n as f64) / 2.0).sqrt().round() as usize).clamp(2, MAX_THEMES)
}

/// Groups `entries` into themes, largest first; none for fewer than [`MIN_ENTRIES`].
/// Deterministic: the same entries give the same themes.
pub fn themes(entries: &[StoredVectors]) -> Vec<Theme> {
    if entries.len() < MIN_ENTRIES {
        return Vec::new();
    }
    let points: Vec<Vec<f32>> = entries.iter().map(StoredVectors::centroid).collect();
    let k = clusters_for(points.len());
    let assignment = k_means(&points, k);
    // How many entries name each label (a keyword phrase, or a word of one), everywhere and
    // in each cluster: a label frequent in a cluster and rare elsewhere names it (c-TF-IDF).
    let labels: Vec<Vec<String>> = entries.iter().map(|e| labels_of(&e.keywords)).collect();
    let mut everywhere: HashMap<&str, u32> = HashMap::new();
    for entry_labels in &labels {
        for label in entry_labels {
            *everywhere.entry(label.as_str()).or_default() += 1;
        }
    }
    let total = entries.len() as f64;
    let mut themes = Vec::new();
    for cluster in 0..k {
        let members: Vec<usize> = (0..points.len())
            .filter(|&i| assignment[i] == cluster)
            .collect();
        if members.len() < MIN_THEME_ENTRIES {
            continue;
        }
        let mut here: HashMap<&str, u32> = HashMap::new();
        for &i in &members {
            for label in &labels[i] {
                *here.entry(label.as_str()).or_default() += 1;
            }
        }
        let score = |label: &str, n: u32| {
            // A phrase that recurs says more than its words.
            let phrase = if label.contains(' ') { 1.5 } else { 1.0 };
            phrase * f64::from(n) * (1.0 + total / f64::from(everywhere[label])).ln()
        };
        // Labels shared by entries of the cluster; those of one entry only when none is.
        let shared = here.values().any(|&n| n >= 2);
        let mut scored: Vec<(&str, f64)> = here
            .iter()
            .filter(|&(_, &n)| n >= 2 || !shared)
            .map(|(&label, &n)| (label, score(label, n)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut keywords: Vec<String> = Vec::new();
        for (label, _) in scored {
            // A word of a phrase already chosen, or a phrase holding a chosen word, adds
            // nothing.
            let overlaps = keywords
                .iter()
                .any(|k| k.split(' ').any(|w| w == label) || label.split(' ').any(|w| w == k));
            if !overlaps {
                keywords.push(label.to_owned());
            }
            if keywords.len() == KEYWORDS {
                break;
            }
        }
        if keywords.is_empty() {
            continue;
        }
        let centre = mean_unit(
            &members
                .iter()
                .map(|&i| points[i].clone())
                .collect::<Vec<_>>(),
        );
        let mut closest = members.clone();
        closest.sort_by(|&a, &b| dot(&points[b], &centre).total_cmp(&dot(&points[a], &centre)));
        let written = members.iter().map(|&i| entries[i].written_at);
        themes.push(Theme {
            label: keywords
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            keywords,
            entry_count: members.len() as u32,
            share: members.len() as f64 / total,
            first_written_at: written.clone().min().unwrap_or_default(),
            last_written_at: written.max().unwrap_or_default(),
            examples: closest
                .iter()
                .take(EXAMPLES)
                .map(|&i| entries[i].entry_id)
                .collect(),
        });
    }
    themes.sort_by(|a, b| {
        b.entry_count
            .cmp(&a.entry_count)
            .then_with(|| a.label.cmp(&b.label))
    });
    merge_same_labels(themes)
}

/// Groups that came out with the same label are one theme to a reader: merged into the
/// largest of them (its keywords and examples kept), largest first again.
fn merge_same_labels(themes: Vec<Theme>) -> Vec<Theme> {
    let mut merged: Vec<Theme> = Vec::new();
    for theme in themes {
        match merged.iter_mut().find(|t| t.label == theme.label) {
            Some(into) => {
                into.entry_count += theme.entry_count;
                into.share += theme.share;
                into.first_written_at = into.first_written_at.min(theme.first_written_at);
                into.last_written_at = into.last_written_at.max(theme.last_written_at);
            }
            None => merged.push(theme),
        }
    }
    merged.sort_by(|a, b| {
        b.entry_count
            .cmp(&a.entry_count)
            .then_with(|| a.label.cmp(&b.label))
    });
    merged
}

/// What may label a theme from one entry's keywords: each phrase, and each word of three
/// letters or more in a phrase of several, lower-cased, each once.
fn labels_of(keywords: &[String]) -> Vec<String> {
    let mut labels = std::collections::BTreeSet::new();
    for phrase in keywords {
        let phrase = phrase.to_lowercase();
        let words: Vec<&str> = phrase.split_whitespace().collect();
        if words.len() > 1 {
            for word in &words {
                if word.chars().count() >= 3 && !analysis::keywords::is_stop_word_anywhere(word) {
                    labels.insert((*word).to_owned());
                }
            }
        }
        if !words.is_empty() {
            labels.insert(words.join(" "));
        }
    }
    labels.into_iter().collect()
}

/// Spherical k-means: each point to the centre it is most similar to, `k` centres seeded
/// farthest-first from the first point (deterministic). Returns each point's cluster.
fn k_means(points: &[Vec<f32>], k: usize) -> Vec<usize> {
    let mut centres = vec![points[0].clone()];
    while centres.len() < k {
        // The point least similar to every centre so far.
        let far = (0..points.len())
            .min_by(|&a, &b| {
                let near = |i: usize| {
                    centres
                        .iter()
                        .map(|c| dot(&points[i], c))
                        .fold(f32::NEG_INFINITY, f32::max)
                };
                near(a).total_cmp(&near(b))
            })
            .unwrap_or(0);
        centres.push(points[far].clone());
    }
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..ROUNDS {
        let next: Vec<usize> = points
            .iter()
            .map(|p| {
                (0..centres.len())
                    .max_by(|&a, &b| {
                        dot(p, &centres[a])
                            .total_cmp(&dot(p, &centres[b]))
                            .then(b.cmp(&a))
                    })
                    .unwrap_or(0)
            })
            .collect();
        if next == assignment {
            break;
        }
        assignment = next;
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<Vec<f32>> = points
                .iter()
                .zip(&assignment)
                .filter(|&(_, &a)| a == c)
                .map(|(p, _)| p.clone())
                .collect();
            if !members.is_empty() {
                *centre = mean_unit(&members);
            }
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector pointing mostly along axis `axis`, nudged by `nudge`.
    fn point(axis: usize, nudge: f32) -> Vec<f32> {
        let mut v = vec![0f32; embeddings::DIMENSIONS];
        v[axis] = 1.0;
        v[100] = nudge;
        let norm = dot(&v, &v).sqrt();
        v.iter().map(|x| x / norm).collect()
    }

    fn entry(axis: usize, nudge: f32, day: i64, keywords: &[&str]) -> StoredVectors {
        StoredVectors {
            entry_id: EntryId::new(),
            written_at: DateTime::from_timestamp(1_700_000_000 + day * 86_400, 0).unwrap(),
            vectors: vec![point(axis, nudge)],
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    #[test]
    fn entries_about_two_things_make_two_labelled_themes() {
        let mut entries = Vec::new();
        for i in 0..5 {
            entries.push(entry(0, i as f32 * 0.1, i, &["hospital", "dad", "visit"]));
            entries.push(entry(1, i as f32 * 0.1, i + 10, &["run", "race", "dad"]));
        }
        let found = themes(&entries);
        assert_eq!(found.len(), 2, "{found:?}");
        let labels: Vec<&str> = found.iter().map(|t| t.label.as_str()).collect();
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with("hospital") || l.starts_with("visit")),
            "{labels:?}"
        );
        assert!(
            labels
                .iter()
                .any(|l| l.starts_with("race") || l.starts_with("run")),
            "{labels:?}"
        );
        // A keyword shared by both themes is less particular than those of one.
        assert!(
            found
                .iter()
                .all(|t| t.keywords.last().map(String::as_str) == Some("dad"))
        );
        assert_eq!(found.iter().map(|t| t.entry_count).sum::<u32>(), 10);
        assert!(
            found
                .iter()
                .all(|t| t.examples.len() == 3 && (t.share - 0.5).abs() < 1e-9)
        );
        // Deterministic.
        assert_eq!(themes(&entries), found);
    }

    #[test]
    fn groups_with_the_same_label_are_one_theme() {
        // Six near-identical entries in three directions, all with the same keywords.
        let entries: Vec<_> = (0..9)
            .map(|i| entry(i % 3, 0.05 * i as f32, i as i64, &["burst entry", "river"]))
            .collect();
        let found = themes(&entries);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].entry_count, 9);
        assert!((found[0].share - 1.0).abs() < 1e-9);
    }

    #[test]
    fn labels_leave_out_stop_words() {
        assert_eq!(
            labels_of(&["dad was".to_owned(), "hospital".to_owned()]),
            ["dad", "dad was", "hospital"].map(str::to_owned).to_vec(),
            "\"was\" alone labels nothing"
        );
    }

    #[test]
    fn too_few_entries_give_no_themes() {
        let entries: Vec<_> = (0..MIN_ENTRIES - 1)
            .map(|i| entry(0, 0.0, i as i64, &["x"]))
            .collect();
        assert!(themes(&entries).is_empty());
    }
}
