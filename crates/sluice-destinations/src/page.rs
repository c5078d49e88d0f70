//! Naming `page` and `screen` calls as events for the analytics tools, the way Segment's
//! Mixpanel and Amplitude destinations name them (setting `page_events`).

use crate::SettingsError;
use crate::event::{Event, Kind};
use crate::settings::Reader;

/// Which page and screen calls become events, and under which name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PageEvents {
    /// Not sent.
    None,
    /// Every call, as `Loaded a Page` / `Loaded a Screen`.
    All,
    /// Calls with a name, as `<verb> <category> <name> Page` (category when given).
    Named,
    /// Calls with a category, as `<verb> <category> Page`.
    Categorized,
}

impl PageEvents {
    /// Reads setting `page_events`.
    pub(crate) fn read(reader: &Reader<'_>, default: &'static str) -> Result<Self, SettingsError> {
        let choice = reader.choice(
            "page_events",
            &["none", "all", "named", "categorized"],
            default,
        )?;
        Ok(match choice {
            "none" => PageEvents::None,
            "named" => PageEvents::Named,
            "categorized" => PageEvents::Categorized,
            _ => PageEvents::All,
        })
    }

    /// The event name for a page or screen call, or why it is not sent. `verb` is the word
    /// the tool's Segment destination puts before named pages (`Viewed`, `Loaded`).
    pub(crate) fn name(self, event: Event<'_>, verb: &str) -> Result<String, String> {
        let noun = match event.kind() {
            Some(Kind::Screen) => "Screen",
            _ => "Page",
        };
        let name = event
            .str_at(&["name"])
            .or_else(|| event.str_at(&["properties", "name"]));
        let category = event
            .str_at(&["category"])
            .or_else(|| event.str_at(&["properties", "category"]));
        match (self, name, category) {
            (PageEvents::None, _, _) => Err(format!(
                "{} calls are not sent (page_events is none)",
                noun.to_lowercase()
            )),
            (PageEvents::All, _, _) => Ok(format!("Loaded a {noun}")),
            (PageEvents::Named, Some(name), Some(category)) => {
                Ok(format!("{verb} {category} {name} {noun}"))
            }
            (PageEvents::Named, Some(name), None) => Ok(format!("{verb} {name} {noun}")),
            (PageEvents::Named, None, _) => Err(format!(
                "{} call has no name (page_events is named)",
                noun.to_lowercase()
            )),
            (PageEvents::Categorized, _, Some(category)) => Ok(format!("{verb} {category} {noun}")),
            (PageEvents::Categorized, _, None) => Err(format!(
                "{} call has no category (page_events is categorized)",
                noun.to_lowercase()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_follow_the_setting() {
        let page = json!({"type": "page", "name": "Settings", "category": "Merchant"});
        let screen = json!({"type": "screen", "properties": {"name": "Cart"}});
        let bare = json!({"type": "page"});
        let page = Event(&page);
        let screen = Event(&screen);
        let bare = Event(&bare);
        assert_eq!(
            PageEvents::All.name(page, "Viewed").as_deref(),
            Ok("Loaded a Page")
        );
        assert_eq!(
            PageEvents::All.name(screen, "Viewed").as_deref(),
            Ok("Loaded a Screen")
        );
        assert_eq!(
            PageEvents::Named.name(page, "Viewed").as_deref(),
            Ok("Viewed Merchant Settings Page")
        );
        assert_eq!(
            PageEvents::Named.name(screen, "Loaded").as_deref(),
            Ok("Loaded Cart Screen")
        );
        assert_eq!(
            PageEvents::Categorized.name(page, "Viewed").as_deref(),
            Ok("Viewed Merchant Page")
        );
        assert!(PageEvents::Named.name(bare, "Viewed").is_err());
        assert!(PageEvents::Categorized.name(screen, "Viewed").is_err());
        assert!(PageEvents::None.name(page, "Viewed").is_err());
    }
}
