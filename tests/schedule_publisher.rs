//! The schedule-publisher bot (`plugins/schedule-publisher`): its fixtures
//! through `interlink test --json` (every SIU change kind, late and repeated
//! messages, the reminder CSV byte for byte, settings refused by name), then
//! end to end with the real host: an SIU feed from python-hl7's client over
//! MLLP republished at a python-hl7 MLLP server, and tomorrow's CSV arriving
//! on a real sshd.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use interlink_tests::{
    BotTest, Host, Peer, PeerServer, SshServer, bot_test, config, free_port, peer_send,
    plugin_fixture, wait_until,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// The bot's settings in `fixtures/settings.toml`.
const SETTINGS: &str = r#"partner_destination = "partner", reminder_destination = "reminders", facility_map = "CLINIC_A=PARTNER_A,CLINIC_B=PARTNER_B", sending_application = "SCHEDPUB", timezone = "America/Chicago""#;

/// The fixtures in the order of their story: a clinic's Tuesday, its
/// evening reminder run, more changes, Wednesday's run.
const STORY: [&str; 10] = [
    "s12-book.hl7",
    "s14-modify.hl7",
    "s13-reschedule.hl7",
    "s15-cancel.hl7",
    "s17-delete.hl7",
    "s26-no-show.hl7",
    "late-and-repeated.hl7",
    "evening.tick",
    "after-publish.hl7",
    "next-evening.tick",
];

fn fixture(name: &str) -> PathBuf {
    plugin_fixture("schedule-publisher", name)
}

/// Each message of an HL7 fixture file, segments ended by `\r`.
fn messages(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let mut out: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("MSH") {
            out.push(String::new());
        }
        let last = out.last_mut().expect("a fixture starts with MSH");
        last.push_str(line);
        last.push('\r');
    }
    out
}

/// What the partner gets for a fixture message: MSH-3 `SCHEDPUB`, our
/// facility codes replaced by the partner's in MSH-4 and AIL-3.4, and
/// nothing else changed (PID-3.4 is an assigning authority, not a facility).
fn partner_copy(message: &str) -> String {
    message
        .split_terminator('\r')
        .map(|seg| {
            let seg = match &seg[..3] {
                "MSH" => seg
                    .replacen("|CLINIC_SCHED|CLINIC_A|", "|SCHEDPUB|PARTNER_A|", 1)
                    .replacen("|CLINIC_SCHED|CLINIC_B|", "|SCHEDPUB|PARTNER_B|", 1),
                "AIL" => seg
                    .replace("^^^CLINIC_A", "^^^PARTNER_A")
                    .replace("^^^CLINIC_B", "^^^PARTNER_B"),
                _ => seg.to_string(),
            };
            format!("{seg}\r")
        })
        .collect()
}

/// `interlink test` of the bot on `inputs` (paths) with `config`, or
/// with `fixtures/settings.toml` when that is `None`.
fn interlink_test(config: Option<&str>, inputs: &[PathBuf]) -> BotTest {
    let fixture_config = std::fs::read_to_string(fixture("settings.toml")).unwrap();
    let config = config.unwrap_or(&fixture_config);
    bot_test(
        "schedule_publisher",
        config,
        Some("2026-11-24T15:00:00Z"),
        inputs,
    )
}

/// The outcome of every event of the fixtures `names`, run with
/// `fixtures/settings.toml`.
fn outcomes(names: &[&str]) -> Vec<Value> {
    let inputs: Vec<PathBuf> = names.iter().map(|n| fixture(n)).collect();
    let run = interlink_test(None, &inputs);
    assert!(!run.outcomes.is_empty(), "{}", run.stderr);
    run.outcomes
}

fn sends(outcome: &Value) -> &Vec<Value> {
    outcome["send"].as_array().unwrap()
}

fn log_messages(outcome: &Value) -> Vec<&str> {
    outcome["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect()
}

/// Each event of the story, as the fixtures give it: an HL7 message, or
/// a tick line.
fn story_events() -> Vec<String> {
    STORY
        .iter()
        .flat_map(|name| match name.ends_with(".hl7") {
            true => messages(name),
            false => std::fs::read_to_string(fixture(name))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

/// The outcome of the story's first HL7 event with MSH-10 `control_id`.
fn by_control_id<'a>(outcomes: &'a [Value], control_id: &str) -> &'a Value {
    let index = story_events()
        .iter()
        .position(|m| m.split('|').nth(9) == Some(control_id))
        .unwrap_or_else(|| panic!("no fixture message {control_id}"));
    &outcomes[index]
}

#[test]
fn every_siu_change_kind_is_republished_with_the_partners_facility_codes() {
    let outcomes = outcomes(&STORY);
    assert_eq!(outcomes.len(), 21);
    assert!(outcomes.iter().all(|o| o["ok"] == true), "{outcomes:#?}");
    let republished = [
        ("s12-book.hl7", 0, "S12-1001"),
        ("s12-book.hl7", 1, "S12-1002"),
        ("s12-book.hl7", 2, "S12-1003"),
        ("s12-book.hl7", 3, "S12-1004"),
        ("s12-book.hl7", 4, "S12-1005"),
        ("s14-modify.hl7", 0, "S14-1001"),
        ("s13-reschedule.hl7", 0, "S13-1002"),
        ("s15-cancel.hl7", 0, "S15-1003"),
        ("s17-delete.hl7", 0, "S17-1005"),
        ("s26-no-show.hl7", 0, "S26-1004"),
        ("late-and-repeated.hl7", 3, "S14-1007"),
        ("after-publish.hl7", 0, "S13-1001"),
        ("after-publish.hl7", 1, "S12-1008"),
    ];
    for (file, n, control_id) in republished {
        let outcome = by_control_id(&outcomes, control_id);
        let sent = sends(outcome);
        assert_eq!(sent.len(), 1, "{control_id}: {outcome:#}");
        assert_eq!(sent[0]["destination"], "partner");
        let input = &messages(file)[n];
        assert_eq!(
            sent[0]["message"].as_str().unwrap(),
            partner_copy(input),
            "{control_id}"
        );
    }
    // Field by field, for one of them.
    let first = sends(by_control_id(&outcomes, "S12-1001"))[0]["message"]
        .as_str()
        .unwrap();
    let segments: Vec<&str> = first.split_terminator('\r').collect();
    assert!(segments[0].starts_with(
        "MSH|^~\\&|SCHEDPUB|PARTNER_A|INTERLINK|HOSP|20261124080000||SIU^S12^SIU_S12|S12-1001|"
    ));
    assert_eq!(segments[5], "AIL|1|A|ROOM1^^^PARTNER_A");
    assert!(segments[2].starts_with("PID|1||MRN100^^^CLINIC_A^MR||DOE^JANE||"));
    // Each change says what it did, with ids of messages only.
    let cancel = by_control_id(&outcomes, "S15-1003");
    assert_eq!(
        log_messages(cancel),
        ["SIU^S15^SIU_S12 S15-1003: appointment cancelled, republished to partner"]
    );
    // A facility the map does not name passes unchanged, with a warning.
    let unmapped = by_control_id(&outcomes, "S14-1007");
    assert_eq!(
        log_messages(unmapped)[1],
        "AIL[1]-3.4.1 facility \"CLINIC_C\" is not in facility_map: sent unchanged"
    );
}

#[test]
fn late_repeated_and_closed_messages_are_acknowledged_and_not_republished() {
    let outcomes = outcomes(&STORY[..7]);
    let ignored = [
        ("S14-1001", 10, "already applied, ignored"),
        (
            "S14-1003-LATE",
            11,
            "older than the appointment's last change, ignored",
        ),
        (
            "S14-1003-AFTER",
            12,
            "the appointment is cancelled already, ignored",
        ),
        // S14 came first (placer id only) and created the appointment; its
        // older S12 (with both ids) finds it by the placer id.
        (
            "S12-1007",
            14,
            "older than the appointment's last change, ignored",
        ),
    ];
    for (control_id, index, why) in ignored {
        let o = &outcomes[index];
        assert_eq!(o["ok"], true, "{o:#}");
        assert!(sends(o).is_empty(), "{control_id}: {o:#}");
        let kind = if control_id.starts_with("S12") {
            "SIU^S12^SIU_S12"
        } else {
            "SIU^S14^SIU_S12"
        };
        assert_eq!(log_messages(o), [format!("{kind} {control_id}: {why}")]);
    }
}

#[test]
fn tomorrows_reminders_are_one_csv_a_day_without_closed_or_listed_appointments() {
    let outcomes = outcomes(&STORY);
    let ticks: Vec<&Value> = outcomes.iter().filter(|o| o["kind"] == "tick").collect();
    assert_eq!(ticks.len(), 4);
    // 16:45 local: before publish_at; 17:15: written at 17:00 already.
    for quiet in [ticks[0], ticks[2]] {
        assert_eq!(quiet["ok"], true);
        assert!(sends(quiet).is_empty(), "{quiet:#}");
        assert!(log_messages(quiet).is_empty());
    }
    // Tomorrow's booked ones by start time: APPT1003 is cancelled, 1004 a
    // no-show, 1005 deleted; P1007 is known by its placer id only.
    let tuesday = &sends(ticks[1])[0];
    assert_eq!(tuesday["destination"], "reminders");
    assert_eq!(tuesday["name"], "reminders-2026-11-25.csv");
    assert_eq!(tuesday["content_type"], "text/csv");
    assert_eq!(
        tuesday["text"],
        "appointment_id,start,duration_min,patient_id,patient_name,resource,phone\r\n\
         P1007,2026-11-25 08:15,10,MRN700,\"SMITH, ALEX, JR\",ROOM3,555-0107\r\n\
         APPT1001,2026-11-25 09:30,30,MRN100,\"DOE, JANE\",\"ROOM2 / SMITH, JOHN\",(555)555-0100\r\n\
         APPT1002,2026-11-25 16:30,45,MRN200,\"O\"\"NEIL, PAT\",XR1 / X-ray unit 1,555 5550200\r\n"
    );
    assert_eq!(
        log_messages(ticks[1]),
        ["reminders for 2026-11-25: 3 listed, to reminders"]
    );
    // APPT1001, moved to Thursday after it was listed for Wednesday, is
    // listed again for its new day.
    let wednesday = &sends(ticks[3])[0];
    assert_eq!(wednesday["name"], "reminders-2026-11-26.csv");
    assert_eq!(
        wednesday["text"],
        "appointment_id,start,duration_min,patient_id,patient_name,resource,phone\r\n\
         APPT1001,2026-11-26 10:00,30,MRN100,\"DOE, JANE\",ROOM2,(555)555-0100\r\n\
         APPT1008,2026-11-26 11:00,60,MRN800,\"TURING, ALAN\",ROOM1,\r\n"
    );
}

#[test]
fn an_appointment_is_listed_once_for_a_day_and_again_after_a_move() {
    // The story, then Thursday evening's run (the list for Friday).
    let dir = tempfile::tempdir().unwrap();
    let thursday = tick_file(dir.path(), "2026-11-26T23:00:00Z");
    let mut inputs: Vec<PathBuf> = STORY.iter().map(|n| fixture(n)).collect();
    inputs.push(thursday);
    let json = Value::Array(interlink_test(None, &inputs).outcomes);
    let ticks: Vec<&Value> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "tick")
        .collect();
    let listed = |tick: &Value| -> Vec<String> {
        let text = sends(tick)[0]["text"].as_str().unwrap().to_string();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    // Listed for Wednesday, moved to Thursday: listed again, once.
    assert_eq!(listed(ticks[1]), ["P1007", "APPT1001", "APPT1002"]);
    assert!(sends(ticks[2]).is_empty(), "the day's list is written once");
    assert_eq!(listed(ticks[3]), ["APPT1001", "APPT1008"]);
    assert_eq!(listed(ticks[4]), Vec::<String>::new());
}

#[test]
fn appointments_are_forgotten_a_month_after_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let month_later = tick_file(dir.path(), "2026-12-26T23:00:00Z");
    let mut inputs: Vec<PathBuf> = STORY.iter().map(|n| fixture(n)).collect();
    // Known: the old S14 is older than the appointment's last change.
    inputs.push(fixture("s14-modify.hl7"));
    inputs.extend([month_later, fixture("s14-modify.hl7")]);
    let json = Value::Array(interlink_test(None, &inputs).outcomes);
    let events = json.as_array().unwrap();
    assert_eq!(events.len(), 24);
    assert!(sends(&events[21]).is_empty(), "{:#}", events[21]);
    // The run for 2026-12-27 lists nothing and forgets every appointment
    // (all started in November): the same S14 is news again.
    assert_eq!(
        sends(&events[22])[0]["text"],
        "appointment_id,start,duration_min,patient_id,patient_name,resource,phone\r\n"
    );
    assert_eq!(
        log_messages(&events[23]),
        ["SIU^S14^SIU_S12 S14-1001: appointment modified, republished to partner"]
    );
}

#[test]
fn a_cancellation_of_an_unknown_appointment_without_dates_is_forgotten_too() {
    // Neither a start nor an MSH-7: the cancellation is dated by when it
    // was received (`--now`, 2026-11-24), and forgotten a month later, so
    // the booking it held closed is news again.
    let dir = tempfile::tempdir().unwrap();
    let month_later = tick_file(dir.path(), "2026-12-26T23:00:00Z");
    let inputs = [
        fixture("unknown-cancel.hl7"),
        fixture("unknown-book.hl7"),
        month_later,
        fixture("unknown-book.hl7"),
    ];
    let json = Value::Array(interlink_test(None, &inputs).outcomes);
    let events = json.as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(
        log_messages(&events[1]),
        ["SIU^S12^SIU_S12 S12-2001: the appointment is cancelled already, ignored"]
    );
    assert_eq!(
        log_messages(&events[3]),
        ["SIU^S12^SIU_S12 S12-2001: appointment booked, republished to partner"]
    );
}

/// A `.tick` file in `dir` with one tick at `at` (RFC 3339).
fn tick_file(dir: &Path, at: &str) -> PathBuf {
    let path = dir.join(format!("{}.tick", at.replace(':', "-")));
    std::fs::write(&path, format!("{at}\n")).unwrap();
    path
}

/// A config with folder destinations `partner` and `reminders` (the
/// latter's table continued by `reminders_extra`), MLLP destination `ehr`,
/// and the bot's `settings`.
fn settings_config(settings: &str, reminders_extra: &str) -> String {
    format!(
        "[[destination]]\nname = \"partner\"\nkind = \"folder\"\ndir = \"partner\"\n\
         [[destination]]\nname = \"ehr\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = 9\n\
         [[destination]]\nname = \"reminders\"\nkind = \"folder\"\ndir = \"reminders\"\n{reminders_extra}\n\
         [bots.schedule-publisher]\nsettings = {{ {settings} }}\n"
    )
}

/// `interlink test` of one S12 with `settings` (and `reminders_extra`).
fn run_with(settings: &str, reminders_extra: &str) -> BotTest {
    let config = settings_config(settings, reminders_extra);
    interlink_test(Some(&config), &[fixture("s12-book.hl7")])
}

/// The settings of `fixtures/settings.toml` (but `timezone = "UTC"`),
/// each of `changes` replacing a value (`Some`) or removing the key.
fn settings_with(changes: &[(&str, Option<&str>)]) -> String {
    let mut pairs = vec![
        ("partner_destination", "partner"),
        ("reminder_destination", "reminders"),
        ("facility_map", "CLINIC_A=PARTNER_A,CLINIC_B=PARTNER_B"),
        ("sending_application", "SCHEDPUB"),
        ("timezone", "UTC"),
    ];
    for (key, value) in changes {
        pairs.retain(|(k, _)| k != key);
        if let Some(v) = value {
            pairs.push((key, v));
        }
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn settings_are_checked_and_errors_name_the_setting() {
    let cases = [
        (
            ("partner_destination", None),
            "setting partner_destination is required",
        ),
        (
            ("partner_destination", Some("nowhere")),
            "setting partner_destination: there is no destination \"nowhere\" this bot may use",
        ),
        (
            ("reminder_destination", Some("ehr")),
            "setting reminder_destination: \"ehr\" is an mllp destination; the reminder CSV needs a folder or sftp one",
        ),
        (
            ("facility_map", Some("CLINIC_A")),
            "setting facility_map: \"CLINIC_A\" is not OUR_CODE=PARTNER_CODE",
        ),
        (
            ("facility_map", Some("A=X, A=Y")),
            "setting facility_map: \"A=Y\" maps a facility that is already mapped",
        ),
        (
            ("publish_at", Some("5pm")),
            "setting publish_at: \"5pm\" is not a local time HH:MM (e.g. 17:00)",
        ),
        (
            ("sending_application", Some("A|B")),
            "setting sending_application: \"A|B\" must be a non-blank code",
        ),
        (
            ("timezone", Some("Mars/Base")),
            "setting timezone: \"Mars/Base\" is not an IANA time zone (e.g. America/Chicago)",
        ),
        (
            ("timezone", None),
            "setting timezone is required (or a timezone on destination \"reminders\")",
        ),
    ];
    for (change, error) in cases {
        let settings = settings_with(&[change]);
        let out = run_with(&settings, "");
        assert_eq!(out.code, Some(1), "{settings}");
        let stderr = &out.stderr;
        assert!(
            stderr.contains(&format!("schedule-publisher: settings refused: {error}")),
            "{settings}: {stderr}"
        );
    }
    // Without a timezone setting, the reminder destination's is used.
    let out = run_with(
        &settings_with(&[("timezone", None)]),
        "timezone = \"Europe/Berlin\"",
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn a_bad_start_or_duration_fails_the_message_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let s12 = &messages("s12-book.hl7")[0];
    let cases = [
        (
            s12.replace("^^30^20261125093000", "^^30^2026-11-25"),
            "SCH-11.4.1 \"2026-11-25\" is not an HL7 timestamp",
        ),
        (
            s12.replace("||30|MIN|", "||30|WEEKS|"),
            "SCH-10.1 \"WEEKS\" is not a duration unit (MIN, S, H or D)",
        ),
        (
            s12.replace("P1001^CLINIC|APPT1001^SCHED", "|"),
            "SCH-1 and SCH-2 are empty: the appointment has no id",
        ),
    ];
    for (message, error) in cases {
        let input = dir.path().join("bad.hl7");
        std::fs::write(&input, &message).unwrap();
        let out = interlink_test(None, &[input]);
        assert_eq!(out.code, Some(1));
        let json = Value::Array(out.outcomes);
        assert_eq!(json[0]["ok"], false);
        assert_eq!(json[0]["error"], format!("failed: {error}"), "{json:#}");
        assert!(sends(&json[0]).is_empty());
    }
}

/// Writes each message of `files` to a file of its own in `dir` (the
/// python-hl7 client sends one message per file).
fn one_message_per_file(dir: &Path, files: &[&str]) -> Vec<PathBuf> {
    files
        .iter()
        .flat_map(|name| messages(name))
        .enumerate()
        .map(|(i, message)| {
            let path = dir.join(format!("{i:02}.hl7"));
            std::fs::write(&path, message).unwrap();
            path
        })
        .collect()
}

#[test]
fn an_siu_feed_over_mllp_is_republished_at_a_python_hl7_partner() {
    let partner_port = free_port();
    let partner_log = tempfile::tempdir().unwrap();
    let partner = PeerServer::start(
        Peer::Python,
        partner_port,
        "aa",
        &partner_log.path().join("partner.jsonl"),
    );
    let listen = free_port();
    let mut host = Host::new(&config(&format!(
        "[[listener]]\nname = \"scheduling\"\nlisten = \"127.0.0.1:{listen}\"\n\
         [[destination]]\nname = \"partner\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {partner_port}\n\
         [[destination]]\nname = \"reminders\"\nkind = \"folder\"\ndir = \"reminders\"\n\
         [bots.schedule-publisher]\nsettings = {{ {SETTINGS} }}\n"
    )));
    host.install_bot("schedule_publisher", "schedule-publisher.wasm");
    host.start();

    let feed = [
        "s12-book.hl7",
        "s14-modify.hl7",
        "s13-reschedule.hl7",
        "s15-cancel.hl7",
        "s17-delete.hl7",
        "s26-no-show.hl7",
        "late-and-repeated.hl7",
    ];
    let files = one_message_per_file(host.dir.path(), &feed);
    let acks = peer_send(Peer::Python, listen, &files);
    let sent: Vec<String> = feed.iter().flat_map(|f| messages(f)).collect();
    let control_ids: Vec<&str> = sent.iter().map(|m| m.split('|').nth(9).unwrap()).collect();
    assert_eq!(
        acks,
        control_ids
            .iter()
            .map(|id| format!("AA {id}"))
            .collect::<Vec<_>>()
    );

    // Everything but the repeated, late and closed ones, in order.
    let ignored = ["S14-1003-LATE", "S14-1003-AFTER", "S12-1007"];
    let mut seen = std::collections::HashSet::new();
    let expected: Vec<(&str, String)> = sent
        .iter()
        .zip(&control_ids)
        .filter(|(_, id)| seen.insert(**id) && !ignored.contains(id))
        .map(|(m, id)| (*id, partner_copy(m)))
        .collect();
    assert_eq!(expected.len(), 11);
    assert!(
        wait_until(WAIT, || partner.received().len() >= expected.len()),
        "{:?}\n{}",
        partner.received(),
        host.log()
    );
    // The last message was processed (and ignored); nothing else is queued.
    host.wait_log(
        "S12-1007: older than the appointment's last change, ignored",
        WAIT,
    );
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM outbox WHERE destination = 'partner'"),
        expected.len() as i64
    );
    let received = partner.received();
    assert_eq!(received.len(), expected.len());
    for ((id, text), (want_id, want)) in received.iter().zip(&expected) {
        assert_eq!(id, want_id);
        assert_eq!(text.trim_end_matches('\r'), want.trim_end_matches('\r'));
    }
    // No patient data in the log.
    let log = host.log();
    assert!(!log.contains("MRN100") && !log.contains("DOE"), "{log}");
}

/// The date `days` from today in `tz`, as `date +FORMAT` prints it.
fn date_in(tz: &str, days: i64, format: &str) -> String {
    let out = Command::new("date")
        .env("TZ", tz)
        .args(["-d", &format!("{days} days"), &format!("+{format}")])
        .output()
        .expect("date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A fixed-offset zone where it is about noon now: far from midnight, so
/// "tomorrow" cannot change while the test runs.
fn a_zone_at_noon() -> String {
    let hour: i64 = date_in("UTC", 0, "%H").parse().unwrap();
    let ahead = 12 - hour;
    // `Etc/GMT-5` is five hours ahead of UTC.
    match ahead {
        0 => "Etc/GMT".to_string(),
        a if a > 0 => format!("Etc/GMT-{a}"),
        a => format!("Etc/GMT+{}", -a),
    }
}

#[test]
fn tomorrows_reminder_csv_arrives_on_sftp_once() {
    let server = SshServer::start();
    let zone = a_zone_at_noon();
    let tomorrow = date_in(&zone, 1, "%Y%m%d");
    let siu = |trigger: &str, control: &str, appt: &str, name: &str, hhmm: &str| {
        format!(
            "MSH|^~\\&|CLINIC_SCHED|CLINIC_A|INTERLINK|HOSP|20260101000000||SIU^{trigger}^SIU_S12|{control}|P|2.5.1\r\
             SCH||{appt}|||||||30|MIN|^^30^{tomorrow}{hhmm}\r\
             PID|1||MRN-{appt}^^^CLINIC_A^MR||{name}\r\
             AIL|1|A|ROOM1^^^CLINIC_A\r"
        )
    };
    let feed = [
        siu("S12", "C1", "A2", "LOVELACE^ADA", "1400"),
        siu("S12", "C2", "A1", "DOE^JANE", "0930"),
        siu("S12", "C3", "A3", "ROE^RICHARD", "1100"),
        siu("S15", "C4", "A3", "ROE^RICHARD", "1100"),
    ]
    .concat();
    let reminders_dir = server.remote("reminders");
    std::fs::create_dir_all(&reminders_dir).unwrap();
    let destination = format!(
        "[[destination]]\nname = \"reminders\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\ndir = {:?}\n{}\n",
        server.port,
        reminders_dir.display().to_string(),
        server.ssh_table("user_key", "known_hosts"),
    );
    let bot = |subscriptions: &str| {
        config(&format!(
            "{destination}[bots.schedule-publisher]\n{subscriptions}\nsettings = {{ partner_destination = \"out\", \
             reminder_destination = \"reminders\", timezone = {zone:?}, publish_at = \"00:00\" }}\n"
        ))
    };
    // First the feed alone (no ticks), so that the first tick finds it all.
    let mut host = Host::new(&bot("subscribe = [{ hl7 = [\"SIU^*\"] }]"));
    host.install_bot("schedule_publisher", "schedule-publisher.wasm");
    host.start();
    host.drop_file("siu.hl7", &feed);
    host.wait_outputs(4, WAIT);
    host.kill();

    // Then a tick every second, publish_at (00:00) long past.
    std::fs::write(
        host.path("interlink.toml"),
        bot("subscribe_also = [{ cron = \"* * * * * *\" }]"),
    )
    .unwrap();
    host.start();
    let name = format!("reminders-{}.csv", date_in(&zone, 1, "%Y-%m-%d"));
    let csv = reminders_dir.join(&name);
    assert!(
        wait_until(WAIT, || csv.exists()),
        "{}\n{}",
        host.log(),
        server.log()
    );
    let day = date_in(&zone, 1, "%Y-%m-%d");
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        format!(
            "appointment_id,start,duration_min,patient_id,patient_name,resource,phone\r\n\
             A1,{day} 09:30,30,MRN-A1,\"DOE, JANE\",ROOM1,\r\n\
             A2,{day} 14:00,30,MRN-A2,\"LOVELACE, ADA\",ROOM1,\r\n"
        )
    );
    // Two more ticks handled: still one file, written once.
    let ticks_done = || {
        host.query::<i64>(
            "SELECT COUNT(*) FROM runs JOIN events ON events.id = runs.event_id \
             WHERE events.kind = 'tick' AND runs.status = 'done'",
        )
    };
    let seen = ticks_done();
    assert!(wait_until(WAIT, || ticks_done() >= seen + 2));
    let files: Vec<String> = std::fs::read_dir(&reminders_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, [name]);
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM outbox WHERE destination = 'reminders'"),
        1
    );
}
