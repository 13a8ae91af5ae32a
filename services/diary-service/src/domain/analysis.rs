//! An entry's content analysed into the compact payload of [`DiaryEntryAnalyzed`]: pure and
//! deterministic, so the same content and analyzer versions always give the same event.

use analysis::{ArchetypeSignals, SensoryProfile};
use metachat_validation::UserId;

use super::events::{ArchetypeScore, DiaryEntryAnalyzed, SensoryShares, SentimentScores};

/// The analysis of `content`, the entry's content at stream version `entry_version`, made
/// under version `setting_version` of the user's analysis setting.
pub fn analyze_content(
    user_id: UserId,
    entry_version: u64,
    setting_version: u64,
    content: &str,
) -> DiaryEntryAnalyzed {
    let measured = analysis::analyze(content);
    // English, or too short to tell (a line such as "Great day!" is scored).
    let english = matches!(
        measured.language.language,
        None | Some(analysis::Language::En)
    );
    let sentiment = english.then(|| {
        let scores = sentiment::polarity_scores(content);
        SentimentScores {
            neg: scores.neg,
            neu: scores.neu,
            pos: scores.pos,
            compound: scores.compound,
            analyzer_version: sentiment::ANALYZER_VERSION.to_owned(),
            lexicon: sentiment::LEXICON.to_owned(),
        }
    });
    DiaryEntryAnalyzed {
        user_id,
        entry_version,
        analyzer_version: measured.versions.analyzer,
        sentiment,
        token_count: measured.token_count,
        language: measured.language.language.map(|l| l.code().to_owned()),
        keywords: measured.keywords.into_iter().map(|k| k.phrase).collect(),
        sensory: match measured.sensory {
            SensoryProfile::Measured(m) => Some(SensoryShares {
                visual: m.visual,
                auditory: m.auditory,
                kinesthetic: m.kinesthetic,
                coverage: m.coverage,
            }),
            SensoryProfile::InsufficientText { .. } | SensoryProfile::UnsupportedLanguage => None,
        },
        archetype_signals: match measured.archetype_signals {
            ArchetypeSignals::Measured { signals } => signals
                .into_iter()
                .map(|s| ArchetypeScore {
                    id: s.id,
                    confidence: s.confidence,
                })
                .collect(),
            ArchetypeSignals::InsufficientText { .. } | ArchetypeSignals::UnsupportedLanguage => {
                Vec::new()
            }
        },
        word_count: measured.word_count,
        features: measured.features,
        setting_version,
    }
}

/// The versions an analysis depends on, as one key (for deterministic event ids). The
/// setting version joins it only once the user has switched analysis: ids of analyses made
/// before any switch stay as they were.
pub fn analyzer_key(analyzed: &DiaryEntryAnalyzed) -> String {
    // The sentiment analyzer's version, also when it did not score (another language):
    // whether it scores depends on this build too.
    let key = format!(
        "{}|{}",
        analyzed.analyzer_version,
        sentiment::ANALYZER_VERSION
    );
    match analyzed.setting_version {
        0 => key,
        setting => format!("{key}|setting {setting}"),
    }
}
