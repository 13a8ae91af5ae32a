//! The README's walkthrough, run as written against a fresh platform, so it stays true.

mod support;

use reqwest::StatusCode;
use support::Platform;

fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("walkthrough start marker");
    let end = readme
        .find("<!-- walkthrough:end -->")
        .expect("walkthrough end marker");
    let block = &readme[start..end];
    let code_start = block.find("```bash\n").expect("a bash block") + "```bash\n".len();
    let code_end = block[code_start..]
        .find("```")
        .expect("end of the bash block");
    block[code_start..code_start + code_end].to_owned()
}

#[tokio::test]
async fn the_readme_walkthrough_works_as_written() {
    let app = Platform::start().await;
    let script = format!("set -euo pipefail\n{}", walkthrough());
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("BASE", app.url(""))
        .output()
        .expect("bash and curl must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every request printed its answer; spot-check what they did to the stored state.
    assert!(
        stdout.contains("\"archetypeName\":\"The Thinker\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"durationMinutes\":60.0"), "{stdout}");
    // The time-travel request shows the user as they were before the archetype.
    let as_of = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"id\"") && l.contains("\"username\":\"johndoe\""))
        .expect("the asOf answer");
    assert!(
        as_of.contains("\"archetype\":null") && as_of.contains("\"version\":2"),
        "{as_of}"
    );
    // The walkthrough made five user events: read with the last one's token, the list
    // shows it.
    let shown: serde_json::Value = serde_json::from_str(as_of).expect("the asOf answer is JSON");
    let id = shown["id"].as_str().expect("the user's id");
    let users = app.get_after("/users", &format!("{id}:5")).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    assert_eq!(users.body["total"], 1);
    assert_eq!(users.body["users"][0]["version"], 5);
    let user = &users.body["users"][0];
    assert_eq!(user["username"], "johndoe");
    assert_eq!(user["archetype"]["confidence"], 0.9);
    assert_eq!(user["bio"], "Software developer and AI enthusiast");
    let user_id = user["id"].as_str().unwrap();
    let history = app.get(&format!("/users/{user_id}/history")).await;
    assert_eq!(history.body["events"].as_array().unwrap().len(), 5);
    // The walkthrough deleted its entry: its history ends with the deletion, and the list it
    // read with the deletion's token was already empty.
    let entry_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("{\"streamId\":\"entry-"))
        .and_then(|rest| rest.split('"').next())
        .expect("the entry history answer");
    let entry_history = app.get(&format!("/diary/entries/{entry_id}/history")).await;
    let types: Vec<_> = entry_history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect();
    // The analyses are recorded asynchronously: one lands wherever the analyzer got to it
    // before the deletion, or none did.
    let written: Vec<_> = types
        .iter()
        .filter(|t| *t != "DiaryEntryAnalyzed")
        .collect();
    assert_eq!(
        written,
        [
            "DiaryEntryCreated",
            "DiaryEntryUpdated",
            "DiaryEntryDeleted"
        ],
        "{types:?}"
    );
    assert_eq!(types.first().map(String::as_str), Some("DiaryEntryCreated"));
    assert_eq!(types.last().map(String::as_str), Some("DiaryEntryDeleted"));
    let last_list = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"entries\""))
        .expect("the entry list read after the deletion");
    assert!(last_list.starts_with("{\"entries\":[]"), "{last_list}");
    app.get(&format!("/diary/entries/{entry_id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
}
