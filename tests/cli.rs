//! End-to-end tests of the command line: check, test, new, and config errors.

use std::process::Command;

use interlink_tests::{adt_a04, bot_wasm, interlink_bin, root};

fn interlink(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(interlink_bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run interlink")
}

#[test]
fn check_prints_the_manifest_or_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ok = interlink(
        &["check", bot_wasm("adt_router").to_str().unwrap()],
        dir.path(),
    );
    assert!(ok.status.success());
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("name:        adt-router") && text.contains("hl7 ADT^A04"),
        "{text}"
    );

    std::fs::write(dir.path().join("x.wasm"), b"\0asm garbage").unwrap();
    let bad = interlink(&["check", "x.wasm"], dir.path());
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("x.wasm: invalid bot: is not a valid WebAssembly component"),
        "{err}"
    );

    // A real component that is not a bot (no `bot` world) names what is wrong.
    let core = interlink(
        &[
            "check",
            root()
                .join("target/test-bots/not_a_bot.wasm")
                .to_str()
                .unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(core.status.code(), Some(1));
    let err = String::from_utf8_lossy(&core.stderr);
    assert!(err.contains("invalid bot"), "{err}");
}

#[test]
fn test_runs_a_bot_offline_with_state_between_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("two.hl7");
    std::fs::write(
        &input,
        format!("{}{}", adt_a04("C1", "MRN1"), adt_a04("C2", "MRN1")),
    )
    .unwrap();
    let out = interlink(
        &[
            "test",
            bot_wasm("probe_v1").to_str().unwrap(),
            "two.hl7",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"destination\": \"out\""), "{json}");
    assert!(
        json.contains("ZPR|v1|1") && json.contains("ZPR|v1|2"),
        "{json}"
    );
    assert!(json.contains("probe v1 handled C2"), "{json}");

    std::fs::write(&input, adt_a04("PANIC9", "MRN1")).unwrap();
    let out = interlink(
        &["test", bot_wasm("probe_v1").to_str().unwrap(), "two.hl7"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED: panicked: probe panicked on purpose"),
        "{text}"
    );
}

#[test]
fn new_scaffolds_a_bot_that_builds_checks_and_runs() {
    // Outside any checkout, as a user would: the crate depends on the SDK
    // of the checkout the binary was built from, by absolute path.
    let dir = tempfile::tempdir().unwrap();
    assert!(!dir.path().starts_with(root()));
    let made = interlink(
        &["new", "my-bot", "--dir", dir.path().to_str().unwrap()],
        dir.path(),
    );
    assert!(made.status.success(), "{made:?}");
    let crate_dir = dir.path().join("my-bot");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let sdk = root().join("sdk").canonicalize().unwrap();
    assert!(
        manifest.contains(&format!(
            "interlink-sdk = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{manifest}"
    );
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", root().join("target/scaffold"))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let wasm = root().join("target/scaffold/wasm32-wasip2/release/my_bot.wasm");
    let run = interlink(
        &["test", wasm.to_str().unwrap(), "fixtures/adt_a04.hl7"],
        &crate_dir,
    );
    assert!(run.status.success(), "{run:?}");
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.contains("send to outbox:") && text.contains("ADT^A04^ADT_A01 MSG0001 forwarded"),
        "{text}"
    );
}

#[test]
fn new_takes_the_sdk_from_sdk_or_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = root().join("sdk");
    let made = interlink(
        &["new", "other", "--sdk", sdk.to_str().unwrap()],
        dir.path(),
    );
    assert!(made.status.success(), "{made:?}");
    let manifest = std::fs::read_to_string(dir.path().join("other/Cargo.toml")).unwrap();
    let sdk = sdk.canonicalize().unwrap();
    assert!(
        manifest.contains(&format!("path = \"{}\"", sdk.display())),
        "{manifest}"
    );

    let wrong = interlink(&["new", "third", "--sdk", "."], dir.path());
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("--sdk") && err.contains("not the interlink SDK"),
        "{err}"
    );
    assert!(!dir.path().join("third").exists());
}

#[test]
fn bad_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[plugins]\nmemory_mb = 0\n").unwrap();
    let out = interlink(&["run", "--config", "bad.toml"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("plugins.memory_mb"), "{err}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[[folder]]\nname = 'x'\ndir = 'in'\nmistake = 1\n",
    )
    .unwrap();
    let out = interlink(&["run", "--config", "bad.toml"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `mistake`") && err.contains("bad.toml"),
        "{err}"
    );
}

#[test]
fn inspect_prints_a_tree_json_and_positions_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut latin1 =
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A04|T1|P|2.5||||||8859/1\rPID|1||ID1~ID2||M".to_vec();
    latin1.extend_from_slice(b"\xfcller^Hans\\T\\Jo\r");
    std::fs::write(dir.path().join("m.hl7"), &latin1).unwrap();
    let out = interlink(&["inspect", "m.hl7"], dir.path());
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PID  Patient Identification"), "{text}");
    assert!(
        text.contains("PID-5.2") && text.contains("Hans&Jo"),
        "{text}"
    );
    assert!(text.contains("PID-5      Patient Name"), "{text}");
    assert!(text.contains("Müller"), "{text}");

    let out = interlink(&["inspect", "m.hl7", "--json"], dir.path());
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains(r#"{"id":"PID","fields":[[[["1"]]],[[[""]]],[[["ID1"]],[["ID2"]]],[[[""]]],[[["Müller"],["Hans&Jo"]]]]}"#),
        "{json}"
    );

    let batch = format!(
        "FHS|^~\\&\rBHS|^~\\&\r{}{}BTS|2\rFTS|1\r",
        adt_a04("B1", "X"),
        adt_a04("B2", "Y")
    );
    std::fs::write(dir.path().join("b.hl7"), batch).unwrap();
    let out = interlink(&["inspect", "b.hl7", "--json"], dir.path());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    let out = interlink(&["inspect", "b.hl7"], dir.path());
    assert!(String::from_utf8_lossy(&out.stdout).contains("message 2 of 2"));

    std::fs::write(
        dir.path().join("bad.hl7"),
        b"MSH|^~\\&|A\rPID|1||M\xfcller\r",
    )
    .unwrap();
    let out = interlink(&["inspect", "bad.hl7"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.hl7: byte 19 is not valid utf-8"), "{err}");
    std::fs::write(dir.path().join("x.hl7"), "hello").unwrap();
    let out = interlink(&["inspect", "x.hl7"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("position 0"));
}
