//! probe: a test bot whose behaviour is chosen by the message's MSH-10
//! prefix, so one `.wasm` can play every hostile bot the tests need.
//!
//! | MSH-10 starts with | the bot                                          |
//! |--------------------|--------------------------------------------------|
//! | `LOOP`             | spins forever                                    |
//! | `OOM`              | allocates until the host stops it                |
//! | `PANIC`            | panics, naming the patient (PID-5)               |
//! | `V1PANIC`          | panics in the v1 build only                      |
//! | `READ`             | tries to read `/etc/hostname`                    |
//! | `NET`              | tries to open a TCP connection                   |
//! | `SLOW`             | busy-waits `slow_ms` (setting) before answering  |
//! | `SLOWAR`           | busy-waits `slow_ms`, then answers with its AR   |
//! | `FAILPHI`          | fails, quoting the patient's id and name         |
//! | `SLEEP`            | sleeps 30 s (`std::thread::sleep`, a WASI poll)  |
//! | `RETRY`            | fails with a retryable error                     |
//! | `DELAY<ms>`        | forwards it, not to be delivered before `<ms>`   |
//! |                    | from now                                         |
//! | `BYTES`            | sends `<MSH-10>,<PID-3.1>\n` as bytes named     |
//! |                    | `<MSH-10>.csv` to the `files` destination        |
//! | `REST`             | sends `{"id":"<MSH-10>","patient":"<PID-3.1>"}`  |
//! |                    | to the `rest` destination: `PUT Patient?identi-  |
//! |                    | fier=urn:mrn\|<PID-3.1>`, header `X-Patient`     |
//! | anything else      | counts the message in KV and forwards it         |
//!
//! A cron tick takes `tick_ms` (setting, default 0) of busy work. A file
//! event is recorded in KV as `file/SOURCE/NAME` = its size.
//!
//! Over HTTP (`/bots/probe/p/…`):
//!
//! | request          | the bot                                            |
//! |------------------|----------------------------------------------------|
//! | `GET /p/kv/KEY`  | 200 with KV `http/KEY`, or 404                     |
//! | `POST /p/kv/KEY` | sets KV `http/KEY` to the body, sends a message to |
//! |                  | `out` (MSH-10 `HTTP<n>`), 201 `{"seq": n}` from    |
//! |                  | sequence `http`                                    |
//! | `GET /p/write`   | tries `kv-set` (a query may not)                   |
//! | `GET /p/send`    | tries to send a message (a query may not)          |
//! | `POST /p/fail`   | fails (fatal)                                      |
//! | `POST /p/slow`   | busy-waits `slow_ms`, then 200                     |
//! | `GET /p/echo`    | 200, the request as JSON-ish text (method, path,   |
//! |                  | header names); tries to set a cookie               |
//! | anything else    | 404                                                |
//!
//! Forwarded messages go to the `out` destination with a `ZPR` segment
//! naming the build (`v1`/`v2`) and the running count.
//!
//! `check-settings` refuses the setting `refuse = "true"`.

use interlink_sdk::prelude::*;

const BUILD: &str = if cfg!(feature = "v2") { "v2" } else { "v1" };

struct Probe;

impl Bot for Probe {
    fn manifest() -> Manifest {
        let version = if cfg!(feature = "v2") {
            "2.0.0"
        } else {
            "1.0.0"
        };
        Manifest::new("probe", version)
            .description("test bot")
            .subscribe(Subscription::hl7(["*"]))
            .subscribe(Subscription::http("/p"))
    }

    fn check_settings() -> Result<(), String> {
        match host::setting("refuse", false)? {
            true => Err("setting refuse: the probe refuses to start while it is true".into()),
            false => Ok(()),
        }
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let input = match event {
            Event::Hl7(input) => input,
            Event::Tick(_) => {
                // Ticks take `tick_ms` (setting) of work, to test skipping.
                let ms: u64 = host::config("tick_ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let until = host::now_ms() + ms;
                while host::now_ms() < until {}
                return Ok(Reply::default());
            }
            Event::File(file) => {
                let key = format!("file/{}/{}", file.source, file.name);
                host::kv::set(&key, file.contents.len().to_string());
                return Ok(Reply::default());
            }
            Event::Http(request) => return http(request),
        };
        let mut msg = Message::parse(&input.raw)?;
        let id = msg.control_id().into_owned();
        if id.starts_with("LOOP") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        } else if id.starts_with("OOM") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        } else if id.starts_with("PANIC") || (id.starts_with("V1PANIC") && BUILD == "v1") {
            // Names the patient, as real panics often do (`expect` on data).
            panic!(
                "probe panicked on purpose on patient {}",
                msg.get("PID-5").unwrap_or_default()
            );
        } else if id.starts_with("READ") {
            return match std::fs::read_to_string("/etc/hostname") {
                Ok(text) => Ok(Reply::default()
                    .send("out", format!("MSH|^~\\&|LEAK\rNTE|1||{}\r", text.trim()))),
                Err(e) => Err(BotError::fatal(format!("file read denied: {e}"))),
            };
        } else if id.starts_with("NET") {
            return match std::net::TcpStream::connect("127.0.0.1:9") {
                Ok(_) => Ok(Reply::default().send("out", "MSH|^~\\&|LEAK\r")),
                Err(e) => Err(BotError::fatal(format!("network denied: {e}"))),
            };
        } else if id.starts_with("SLOW") {
            let ms: u64 = host::config("slow_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3000);
            let until = host::now_ms() + ms;
            while host::now_ms() < until {}
            if id.starts_with("SLOWAR") {
                let why = hl7::AckError::new(207, "probe refuses");
                let ack = hl7::ack(&msg, hl7::AckCode::AR, Some(&why), &hl7::new_control_id());
                return Ok(Reply::default().ack(ack.as_str()));
            }
        } else if id.starts_with("FAILPHI") {
            let patient = msg.get("PID-3.1").unwrap_or_default();
            let name = msg.get("PID-5").unwrap_or_default();
            return Err(BotError::fatal(format!(
                "cannot register patient {patient} {name}"
            )));
        } else if id.starts_with("SLEEP") {
            std::thread::sleep(std::time::Duration::from_secs(30));
        } else if id.starts_with("RETRY") {
            return Err(BotError::retry("dependency unavailable"));
        } else if id.starts_with("BYTES") {
            let line = format!("{id},{}\n", msg.get("PID-3.1").unwrap_or_default());
            let file = Outbound::bytes("files", line)
                .named(&format!("{id}.csv"))
                .content_type("text/csv");
            return Ok(Reply::default().push(file));
        } else if id.starts_with("REST") {
            let patient = msg.get("PID-3.1").unwrap_or_default();
            let body = format!(r#"{{"id":"{id}","patient":"{patient}"}}"#);
            let put = Outbound::bytes("rest", body)
                .content_type("application/json")
                .method("PUT")
                .path(&format!("Patient?identifier=urn:mrn|{patient}"))
                .header("X-Patient", &patient);
            return Ok(Reply::default().push(put));
        }
        let count = host::kv::get_string("count")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        host::kv::set("count", count.to_string());
        println!("probe {BUILD} handled {id}");
        msg.append_segment(&format!("ZPR|{BUILD}|{count}"));
        let mut out = Outbound::hl7("out", msg.encode());
        if let Some(ms) = id
            .strip_prefix("DELAY")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            out = out.not_before_ms(host::now_ms() + ms);
        }
        Ok(Reply::default().push(out))
    }
}

/// The HTTP routes in the table above.
fn http(req: HttpRequest) -> Result<Reply, BotError> {
    let route = req.route().to_string();
    let answer = match (req.method.as_str(), route.as_str()) {
        ("GET" | "HEAD", r) if r.starts_with("/p/kv/") => {
            match host::kv::get(&format!("http/{}", &r[6..])) {
                Some(value) => HttpResponse::new(200).body(value),
                None => HttpResponse::json(404, r#"{"error":"no such key"}"#),
            }
        }
        ("POST", r) if r.starts_with("/p/kv/") => {
            let key = &r[6..];
            host::kv::set(&format!("http/{key}"), &req.body);
            let seq = host::next_sequence("http");
            let msg = format!(
                "MSH|^~\\&|PROBE|HTTP|||20260101120000||ADT^A08|HTTP{seq}|P|2.5\rZPR|{BUILD}|{key}\r"
            );
            let answer =
                HttpResponse::json(201, format!(r#"{{"seq":{seq}}}"#)).header("x-probe", BUILD);
            return Ok(Reply::default().send("out", msg).http(answer));
        }
        ("GET", "/p/write") => {
            host::kv::set("http/written", "yes");
            HttpResponse::new(200)
        }
        ("GET", "/p/send") => {
            return Ok(Reply::default().send("out", "MSH|^~\\&|PROBE|HTTP\r"));
        }
        ("POST", "/p/fail") => return Err(BotError::fatal("probe refuses this command")),
        ("POST", "/p/slow") => {
            let ms: u64 = host::config("slow_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3000);
            let until = host::now_ms() + ms;
            while host::now_ms() < until {}
            HttpResponse::text(200, "slow done")
        }
        ("GET", "/p/echo") => {
            let names: Vec<&str> = req.headers.iter().map(|(k, _)| k.as_str()).collect();
            HttpResponse::text(
                200,
                format!("{} {} headers={}", req.method, req.path, names.join(",")),
            )
            .header("set-cookie", "interlink_session=planted")
            .header("x-probe", BUILD)
        }
        _ => HttpResponse::json(404, r#"{"error":"probe has no such route"}"#),
    };
    Ok(Reply::default().http(answer))
}

export_bot!(Probe);
