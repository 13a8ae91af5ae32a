//! A writer's analysis setting: whether their entries are analysed. On until switched off.
//! Switching it off erases, from every read, what was derived from their writing; switching
//! it back on has their entries analysed again. Each switch moves the setting's version, and
//! every analysis records the version it was made under, so an analysis made before a switch
//! is recognised as such wherever events arrive out of order.

use event_sourcing::Aggregate;
use metachat_proto::error::ApiError;
use metachat_validation::UserId;

use super::events::{AnalysisSettingEvent, DiaryAnalysisSwitched};

/// A user's analysis setting as rebuilt from their setting stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalysisSetting {
    pub enabled: bool,
    /// Switches recorded: the setting stream's version (0 while never switched).
    pub version: u64,
    /// The version of the last switch off (0: never switched off).
    pub last_disabled: u64,
}

impl Default for AnalysisSetting {
    fn default() -> Self {
        Self {
            enabled: true,
            version: 0,
            last_disabled: 0,
        }
    }
}

impl AnalysisSetting {
    /// Whether an analysis made under setting version `made_under` may be shown: analysis
    /// is on, and it was not made before the last switch off.
    pub fn shows(&self, made_under: u64) -> bool {
        self.enabled && made_under >= self.last_disabled
    }
}

/// The setting aggregate (a stream per user, `analysis_setting-<userId>`): absent means on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalysisSettingState(pub AnalysisSetting);

impl AnalysisSettingState {
    pub fn enabled(&self) -> bool {
        self.0.enabled
    }

    pub fn setting(&self) -> AnalysisSetting {
        self.0
    }
}

#[derive(Debug, Clone)]
pub struct SwitchAnalysis {
    /// A registered user: the application checks before deciding.
    pub user_id: UserId,
    pub enabled: bool,
}

/// The setting has no refusals of its own: switching to the current value records nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisSettingError {}

impl From<AnalysisSettingError> for ApiError {
    fn from(error: AnalysisSettingError) -> Self {
        match error {}
    }
}

impl Aggregate for AnalysisSettingState {
    const CATEGORY: &'static str = "analysis_setting";
    type Id = UserId;
    type Event = AnalysisSettingEvent;
    type Command = SwitchAnalysis;
    type Error = AnalysisSettingError;

    fn apply(&mut self, event: &AnalysisSettingEvent) {
        self.0.version += 1;
        self.0.enabled = matches!(event, AnalysisSettingEvent::DiaryAnalysisEnabled(_));
        if !self.0.enabled {
            self.0.last_disabled = self.0.version;
        }
    }

    fn decide(&self, command: &SwitchAnalysis) -> Result<Vec<AnalysisSettingEvent>, Self::Error> {
        if command.enabled == self.enabled() {
            return Ok(vec![]);
        }
        let switched = DiaryAnalysisSwitched {
            user_id: command.user_id,
        };
        Ok(vec![if command.enabled {
            AnalysisSettingEvent::DiaryAnalysisEnabled(switched)
        } else {
            AnalysisSettingEvent::DiaryAnalysisDisabled(switched)
        }])
    }
}
