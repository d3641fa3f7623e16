//! The imitation's API over HTTP, as wrangler calls it: authentication,
//! uploads, versions, gradual deployments, secrets, injected faults, D1
//! statements with transactions and Time Travel, the admin state and the
//! edge's routing. No node needed: the requests are the ones wrangler was
//! observed to send.

use std::io::{Read, Write};
use std::net::TcpStream;

use cloudflare_sandbox::{CloudflareSandbox, Config};
use serde_json::{Value, json};

const TOKEN: &str = "test-token";
const ACCOUNT: &str = "acc-1";

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn start() -> (CloudflareSandbox, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let sandbox = CloudflareSandbox::start(Config::new(dir.path.clone(), TOKEN, ACCOUNT))
        .unwrap_or_else(|e| panic!("start: {e}"));
    (sandbox, dir)
}

/// A minimal temporary directory (removed on drop).
mod tempdir {
    use std::path::PathBuf;

    pub struct Dir {
        pub path: PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let mut b = [0u8; 8];
            let _ = getrandom::fill(&mut b);
            let path = std::env::temp_dir().join(format!("cfsb-test-{}", hex::encode(b)));
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("tempdir: {e}"));
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn request(
    sb: &CloudflareSandbox,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap_or_else(|e| panic!("{e}"));
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str("Host: 127.0.0.1\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(body).unwrap_or_else(|e| panic!("{e}"));
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        body: raw.get(split + 4..).unwrap_or(&[]).to_vec(),
    }
}

fn api(sb: &CloudflareSandbox, method: &str, path: &str, body: Option<Value>) -> Answer {
    let auth = format!("Bearer {TOKEN}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    request(
        sb,
        method,
        &format!("/client/v4/accounts/{ACCOUNT}{path}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// A multipart upload as wrangler builds it.
fn upload(sb: &CloudflareSandbox, method: &str, path: &str, metadata: Value) -> Answer {
    let b = "----formdata-test";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{metadata}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\nContent-Type: application/javascript+module\r\n\r\nimport w from \"./m.wasm\"; export default {{}};\r\n").as_bytes());
    body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"m.wasm\"; filename=\"m.wasm\"\r\nContent-Type: application/wasm\r\n\r\n").as_bytes());
    body.extend_from_slice(b"\x00asm\x01\x00\x00\x00\r\n\xff");
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    let auth = format!("Bearer {TOKEN}");
    let ct = format!("multipart/form-data; boundary={b}");
    request(
        sb,
        method,
        &format!("/client/v4/accounts/{ACCOUNT}{path}"),
        &[("Authorization", &auth), ("Content-Type", &ct)],
        &body,
    )
}

fn metadata(commit: &str, keep_secrets: bool) -> Value {
    let mut m = json!({
        "main_module": "index.js",
        "compatibility_date": "2026-11-01",
        "bindings": [
            {"type": "plain_text", "name": "GIT_COMMIT", "text": commit},
            {"type": "d1", "name": "DB", "id": "11111111-2222-4333-8444-555555555555"},
        ],
        "annotations": {"workers/message": format!("build {commit}"), "workers/tag": commit},
    });
    if keep_secrets {
        m["keep_bindings"] = json!(["secret_text", "secret_key"]);
    }
    m
}

fn state(sb: &CloudflareSandbox) -> Value {
    request(sb, "GET", "/__admin/state", &[], b"").json()
}

/// `wrangler versions upload` of w1 built at `commit`, keeping secrets.
fn upload_version(sb: &CloudflareSandbox, commit: &str) -> Value {
    upload(
        sb,
        "POST",
        "/workers/scripts/w1/versions",
        metadata(commit, true),
    )
    .json()
}

fn id_of(answer: &Value) -> String {
    answer["result"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn deploy_first(sb: &CloudflareSandbox) -> String {
    let a = upload(sb, "PUT", "/workers/scripts/w1", metadata("aaa", false));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["success"], true);
    v["result"]["deployment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn another_token_is_refused_like_cloudflare_does() {
    let (sb, _dir) = start();
    let a = request(
        &sb,
        "GET",
        &format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/w1/secrets"),
        &[("Authorization", "Bearer not-the-token")],
        b"",
    );
    assert_eq!(a.status, 403);
    let v = a.json();
    assert_eq!(v["success"], false);
    assert_eq!(v["errors"][0]["code"], 10000);
    assert_eq!(v["errors"][0]["message"], "Authentication error");
    let missing = request(&sb, "GET", "/client/v4/user", &[], b"");
    assert_eq!(missing.status, 403);
}

#[test]
fn unknown_workers_answer_the_codes_wrangler_acts_on() {
    let (sb, _dir) = start();
    let service = api(&sb, "GET", "/workers/services/nope", None).json();
    assert_eq!(service["errors"][0]["code"], 10090);
    let version = upload(
        &sb,
        "POST",
        "/workers/scripts/nope/versions",
        metadata("x", true),
    );
    assert_eq!(version.status, 404);
    assert_eq!(version.json()["errors"][0]["code"], 10007);
}

#[test]
fn a_deploy_records_a_version_at_100_percent_with_its_modules() {
    let (sb, _dir) = start();
    let id = deploy_first(&sb);
    let st = state(&sb);
    let s = &st["scripts"]["w1"];
    assert_eq!(s["versions"][0]["id"], id.as_str());
    assert_eq!(s["versions"][0]["plain_text"]["GIT_COMMIT"], "aaa");
    assert_eq!(s["versions"][0]["modules"][1]["name"], "m.wasm");
    // The Wasm bytes arrive intact, CR LF and 0xff included.
    assert_eq!(s["versions"][0]["modules"][1]["size"], 11);
    assert_eq!(s["deployments"][0]["versions"][0]["percentage"], 100.0);
    let service = api(&sb, "GET", "/workers/services/w1", None).json();
    assert_eq!(
        service["result"]["default_environment"]["script"]["id"],
        "w1"
    );
}

#[test]
fn a_gradual_deployment_splits_two_versions_and_rejects_bad_percentages() {
    let (sb, _dir) = start();
    let old = deploy_first(&sb);
    let up = upload_version(&sb, "bbb");
    let new = id_of(&up);
    assert_eq!(up["result"]["annotations"]["workers/message"], "build bbb");
    assert_eq!(up["result"]["annotations"]["workers/tag"], "bbb");
    let bad = api(
        &sb,
        "POST",
        "/workers/scripts/w1/deployments",
        Some(json!({"strategy": "percentage", "versions": [
            {"version_id": new, "percentage": 10}, {"version_id": old, "percentage": 80}]})),
    );
    assert_eq!(bad.status, 400);
    let good = api(
        &sb,
        "POST",
        "/workers/scripts/w1/deployments",
        Some(json!({"strategy": "percentage", "versions": [
            {"version_id": new, "percentage": 10}, {"version_id": old, "percentage": 90}],
            "annotations": {"workers/message": "canary"}})),
    );
    assert_eq!(good.status, 200);
    let list = api(&sb, "GET", "/workers/scripts/w1/deployments", None).json();
    let latest = &list["result"]["deployments"][0];
    assert_eq!(latest["versions"][0]["version_id"], new.as_str());
    assert_eq!(latest["versions"][1]["percentage"], 90.0);
    assert_eq!(
        state(&sb)["scripts"]["w1"]["deployments"][1]["message"],
        "canary"
    );
}

#[test]
fn secrets_carry_over_to_new_versions_and_their_values_never_leave() {
    let (sb, _dir) = start();
    deploy_first(&sb);
    let put = api(
        &sb,
        "PUT",
        "/workers/scripts/w1/secrets",
        Some(
            json!({"name": "TOKEN_ENCRYPTION_KEY", "text": "very-secret-value", "type": "secret_text"}),
        ),
    );
    assert_eq!(put.status, 200);
    // As on Cloudflare, setting a secret deploys a new version with it.
    let st = state(&sb);
    assert_eq!(
        st["scripts"]["w1"]["versions"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        st["scripts"]["w1"]["versions"][1]["annotations"]["workers/triggered_by"],
        "secret"
    );
    let up = upload_version(&sb, "bbb");
    let names: Vec<&str> = up["result"]["resources"]["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert!(names.contains(&"TOKEN_ENCRYPTION_KEY"), "{names:?}");
    let list = api(&sb, "GET", "/workers/scripts/w1/secrets", None).json();
    assert_eq!(list["result"][0]["name"], "TOKEN_ENCRYPTION_KEY");
    let everything = request(&sb, "GET", "/__admin/state", &[], b"");
    assert!(!String::from_utf8_lossy(&everything.body).contains("very-secret-value"));
    let bulk = api(
        &sb,
        "PATCH",
        "/workers/scripts/w1/secrets-bulk",
        Some(
            json!({"secrets": {"A": {"name": "A", "text": "1", "type": "secret_text"}, "TOKEN_ENCRYPTION_KEY": null}}),
        ),
    );
    assert_eq!(bulk.status, 200);
    assert_eq!(state(&sb)["scripts"]["w1"]["secrets"], json!(["A"]));
}

#[test]
fn a_fault_changes_only_the_next_upload_of_that_script() {
    let (sb, _dir) = start();
    deploy_first(&sb);
    let f = request(
        &sb,
        "POST",
        "/__admin/faults",
        &[],
        br#"{"script":"w1","next_upload_plain_text":{"GIT_COMMIT":"0000000"}}"#,
    );
    assert_eq!(f.status, 200);
    upload(
        &sb,
        "POST",
        "/workers/scripts/w1/versions",
        metadata("bbb", true),
    );
    upload(
        &sb,
        "POST",
        "/workers/scripts/w1/versions",
        metadata("ccc", true),
    );
    let st = state(&sb);
    let v = &st["scripts"]["w1"]["versions"];
    assert_eq!(v[1]["plain_text"]["GIT_COMMIT"], "0000000");
    assert_eq!(v[2]["plain_text"]["GIT_COMMIT"], "ccc");
    assert_eq!(
        request(&sb, "DELETE", "/__admin/faults", &[], b"").status,
        200
    );
    assert_eq!(
        request(&sb, "GET", "/__admin/health", &[], b"").json(),
        json!({"ok": true})
    );
}

const DB: &str = "/d1/database/11111111-2222-4333-8444-555555555555";

#[test]
fn d1_runs_sql_and_a_failing_batch_changes_nothing() {
    let (sb, _dir) = start();
    let ok = api(
        &sb,
        "POST",
        &format!("{DB}/query"),
        Some(
            json!({"sql": "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1); SELECT n FROM t"}),
        ),
    )
    .json();
    assert_eq!(ok["success"], true);
    assert_eq!(ok["result"][2]["results"][0]["n"], 1);
    assert_eq!(ok["result"][1]["meta"]["changes"], 1);
    let bad = api(
        &sb,
        "POST",
        &format!("{DB}/query"),
        Some(
            json!({"sql": "INSERT INTO t VALUES (2); CREATE TABLE u (x); SELECT nope FROM nowhere"}),
        ),
    );
    assert_eq!(bad.status, 400);
    let e = bad.json();
    assert_eq!(e["errors"][0]["code"], 7500);
    assert_eq!(
        e["errors"][0]["message"],
        "no such table: nowhere: SQLITE_ERROR"
    );
    let raw = api(
        &sb,
        "POST",
        &format!("{DB}/raw"),
        Some(json!({"sql": "SELECT count(*) AS c, (SELECT count(*) FROM sqlite_master WHERE name = 'u') AS u FROM t WHERE n > ?", "params": [0]})),
    )
    .json();
    assert_eq!(raw["result"][0]["results"]["columns"], json!(["c", "u"]));
    // The insert of 2 and the table u were rolled back with the failure.
    assert_eq!(raw["result"][0]["results"]["rows"], json!([[1, 0]]));
    let st = state(&sb);
    let log = &st["d1"]["11111111-2222-4333-8444-555555555555"]["statements"];
    let failed: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["success"] == false)
        .collect();
    assert_eq!(failed.len(), 3, "{log}");
    assert_eq!(failed[2]["sql"], "SELECT nope FROM nowhere", "{log}");
    assert_eq!(failed[0]["error"], "rolled back");
}

#[test]
fn a_bookmark_restores_the_database_as_it_was() {
    let (sb, _dir) = start();
    api(
        &sb,
        "POST",
        &format!("{DB}/query"),
        Some(json!({"sql": "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)"})),
    );
    let b = api(&sb, "GET", &format!("{DB}/time_travel/bookmark"), None).json();
    let bookmark = b["result"]["bookmark"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    api(
        &sb,
        "POST",
        &format!("{DB}/query"),
        Some(json!({"sql": "DROP TABLE t; CREATE TABLE v (x)"})),
    );
    let r = api(
        &sb,
        "POST",
        &format!("{DB}/time_travel/restore?bookmark={bookmark}"),
        None,
    )
    .json();
    assert_eq!(r["result"]["bookmark"], bookmark.as_str());
    assert!(r["result"]["previous_bookmark"].is_string());
    let q = api(
        &sb,
        "POST",
        &format!("{DB}/query"),
        Some(json!({"sql": "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"})),
    )
    .json();
    assert_eq!(q["result"][0]["results"], json!([{"name": "t"}]));
    let unknown = api(
        &sb,
        "POST",
        &format!("{DB}/time_travel/restore?bookmark=nope"),
        None,
    );
    assert_eq!(unknown.status, 400);
}

#[test]
fn the_edge_routes_by_host_and_answers_404_for_unknown_hosts() {
    let (sb, _dir) = start();
    deploy_first(&sb);
    let unknown = request(
        &sb,
        "GET",
        "/health",
        &[("Host", "nothing.example.nl")],
        b"",
    );
    assert_eq!(unknown.status, 404);
    api(
        &sb,
        "PUT",
        "/workers/scripts/w1/domains/records",
        Some(json!({"override_scope": true, "origins": [{"hostname": "w1.example.nl"}]})),
    );
    assert_eq!(
        state(&sb)["scripts"]["w1"]["custom_domains"],
        json!(["w1.example.nl"])
    );
    // Known host, but this imitation runs without wrangler: the edge says
    // it cannot run the version rather than pretending.
    let known = request(&sb, "GET", "/health", &[("Host", "w1.example.nl")], b"");
    assert_eq!(known.status, 502);
}

/// A stand-in for `wrangler dev`: says it is ready and serves HTTP on the
/// `--port` it was given, with this crate's own binary (whose edge answers
/// 404 "no Worker serves this host" for every path), so the edge's
/// start, proxying and clean-up are tested without node.
fn fake_wrangler(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("fake-wrangler");
    let text = format!(
        "#!/bin/sh\nport=\"\"\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = \"--port\" ]; then port=$2; fi\n  shift\ndone\necho \"Ready on http://127.0.0.1:$port\"\nexec '{}' --port \"$port\" --state \"$PWD/inner\" --token t --account-id a\n",
        env!("CARGO_BIN_EXE_cloudflare-sandbox")
    );
    std::fs::write(&script, text).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status();
    script
}

#[test]
fn the_edge_runs_the_version_the_override_names_and_stops_it_on_drop() {
    let dir = tempdir::Dir::new();
    let mut config = Config::new(dir.path.join("state"), TOKEN, ACCOUNT);
    config.wrangler = Some(fake_wrangler(&dir.path));
    let sb = CloudflareSandbox::start(config).unwrap_or_else(|e| panic!("start: {e}"));
    let old = deploy_first(&sb);
    api(
        &sb,
        "PUT",
        "/workers/scripts/w1/secrets",
        Some(json!({"name": "KEY", "text": "s\"1", "type": "secret_text"})),
    );
    let old_with_secret = state(&sb)["scripts"]["w1"]["versions"][1]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let up = upload_version(&sb, "bbb");
    let new = id_of(&up);
    api(
        &sb,
        "POST",
        "/workers/scripts/w1/deployments",
        Some(json!({"strategy": "percentage", "versions": [
            {"version_id": new, "percentage": 50}, {"version_id": old_with_secret, "percentage": 50}]})),
    );
    api(
        &sb,
        "PUT",
        "/workers/scripts/w1/domains/records",
        Some(json!({"origins": [{"hostname": "w1.example.nl"}]})),
    );
    let version_of = |overrides: Option<&str>| {
        let mut headers = vec![("Host", "w1.example.nl")];
        if let Some(o) = overrides {
            headers.push(("Cloudflare-Workers-Version-Overrides", o));
        }
        let mut s = TcpStream::connect(("127.0.0.1", sb.port())).unwrap_or_else(|e| panic!("{e}"));
        let mut head = "GET /health HTTP/1.1\r\nConnection: close\r\n".to_owned();
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap_or_else(|e| panic!("{e}"));
        // The inner server answered (its 404 text), through the edge.
        assert!(raw.contains("no Worker serves this host"), "{raw}");
        raw.lines()
            .find_map(|l| l.strip_prefix("Cf-Sandbox-Version-Id: "))
            .unwrap_or_default()
            .to_owned()
    };
    let wanted_new = format!("w1=\"{new}\"");
    let wanted_old = format!("w1=\"{old_with_secret}\"");
    assert_eq!(version_of(Some(&wanted_new)), new);
    assert_eq!(version_of(Some(&wanted_old)), old_with_secret);
    // A version outside the current deployment is not honoured.
    let outside = format!("w1=\"{old}\"");
    assert_ne!(version_of(Some(&outside)), old);
    // Without the header both halves of a 50/50 deployment are served
    // (the chance that 40 draws all fall on one side is 2^-39).
    let seen: std::collections::BTreeSet<String> = (0..40).map(|_| version_of(None)).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The generated configuration carries the version's vars and bindings;
    // the secret goes to `.dev.vars`, quoted.
    let vdir = dir.path.join("state/edge").join(&new);
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(vdir.join("wrangler.jsonc")).unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    assert_eq!(cfg["vars"]["GIT_COMMIT"], "bbb");
    assert_eq!(cfg["no_bundle"], true);
    assert_eq!(
        cfg["d1_databases"][0]["database_id"],
        "11111111-2222-4333-8444-555555555555"
    );
    assert_eq!(
        std::fs::read_to_string(vdir.join(".dev.vars")).unwrap_or_default(),
        "KEY=\"s\\\"1\"\n"
    );
    let running = state(&sb)["edge"].clone();
    let ports: Vec<u64> = running
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["port"].as_u64())
        .collect();
    assert_eq!(ports.len(), 2, "{running}");
    // Once the deployment serves only the new version, the old one's
    // process is retired.
    api(
        &sb,
        "POST",
        "/workers/scripts/w1/deployments",
        Some(
            json!({"strategy": "percentage", "versions": [{"version_id": new, "percentage": 100}]}),
        ),
    );
    assert_eq!(version_of(None), new);
    let edge = state(&sb)["edge"].clone();
    assert_eq!(edge.as_array().map(Vec::len), Some(1), "{edge}");
    assert_eq!(edge[0]["version_id"], new.as_str());
    drop(sb);
    for p in ports {
        // The retired one stops in the background; wait up to a minute.
        let closed = (0..600).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            TcpStream::connect(("127.0.0.1", p as u16)).is_err()
        });
        assert!(closed, "the version on port {p} outlived the imitation");
    }
}

#[test]
fn a_killed_imitation_leaves_no_version_running() {
    let dir = tempdir::Dir::new();
    let wrangler = fake_wrangler(&dir.path);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudflare-sandbox"))
        .args(["--port", "0", "--token", TOKEN, "--account-id", ACCOUNT])
        .arg("--state")
        .arg(dir.path.join("state"))
        .arg("--wrangler")
        .arg(&wrangler)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    // The first line says where it listens.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap_or_else(|e| panic!("{e}"));
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let call = |method: &str, path: &str, body: &[u8], extra: &[(&str, &str)]| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(body).unwrap_or_else(|e| panic!("{e}"));
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        raw
    };
    let b = "XX";
    let meta = metadata("aaa", false);
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{meta}\r\n--{b}\r\nContent-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\n\r\nexport default {{}};\r\n--{b}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={b}");
    call(
        "PUT",
        &format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/w1"),
        body.as_bytes(),
        &[("Content-Type", &ct)],
    );
    call(
        "PUT",
        &format!("/client/v4/accounts/{ACCOUNT}/workers/scripts/w1/domains/records"),
        br#"{"origins":[{"hostname":"w1.example.nl"}]}"#,
        &[("Content-Type", "application/json")],
    );
    let answer = call("GET", "/health", b"", &[("Host", "w1.example.nl")]);
    assert!(answer.contains("no Worker serves this host"), "{answer}");
    let state = call("GET", "/__admin/state", b"", &[]);
    let body = state.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let inner = v["edge"][0]["port"].as_u64().unwrap_or(0) as u16;
    assert!(inner > 0, "{v}");
    // Killed outright: no chance to stop its children itself.
    let _ = child.kill();
    let _ = child.wait();
    // The watchdog notices within a second or two; wait up to a minute.
    let gone = (0..600).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        TcpStream::connect(("127.0.0.1", inner)).is_err()
    });
    assert!(gone, "the version on port {inner} outlived the imitation");
}
