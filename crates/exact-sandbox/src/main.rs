//! `cargo run -p exact-sandbox` (or `cargo xtask sandbox`): runs the local
//! Exact Online until Ctrl-C and prints how to reach it.

use exact_sandbox::{Sandbox, SandboxConfig, Size};

const USAGE: &str =
    "usage: exact-sandbox [--port N] [--seed N] [--size small|large] [--today YYYY-MM-DD]
                     [--closed-years none|demo|all]
                     [--client-id ID] [--client-secret S] [--redirect-uri URI]...";

fn main() {
    let mut config = SandboxConfig {
        bind: "127.0.0.1:9700".into(),
        ..SandboxConfig::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        let fail = |what: &str| -> ! {
            eprintln!("invalid {what}\n{USAGE}");
            std::process::exit(2)
        };
        match arg.as_str() {
            "--port" => {
                let port: u16 = value().parse().unwrap_or_else(|_| fail("--port"));
                config.bind = format!("127.0.0.1:{port}");
            }
            "--seed" => config.data.seed = value().parse().unwrap_or_else(|_| fail("--seed")),
            "--size" => {
                config.data.size = match value().as_str() {
                    "small" => Size::Small,
                    "large" => Size::Large,
                    _ => fail("--size"),
                }
            }
            "--today" => config.data.today = value().parse().unwrap_or_else(|_| fail("--today")),
            "--closed-years" => {
                config.data.closed_years =
                    value().parse().unwrap_or_else(|_| fail("--closed-years"));
            }
            "--client-id" => config.client_id = value(),
            "--client-secret" => config.client_secret = value(),
            "--redirect-uri" => config.redirect_uris.push(value()),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => fail(&format!("argument {arg:?}")),
        }
    }
    let sandbox = match Sandbox::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("Exact Online sandbox on {}", sandbox.base_url());
    println!(
        "  OAuth:     {}/api/oauth2/auth  and  /api/oauth2/token",
        sandbox.base_url()
    );
    println!("  REST:      {}/api/v1/current/Me", sandbox.base_url());
    println!(
        "  client id: {}   secret: {}",
        sandbox.client_id(),
        sandbox.client_secret()
    );
    for u in &sandbox.dataset().users {
        println!(
            "  login {:<6} password {:<6} divisions {:?}",
            u.username, u.password, u.divisions
        );
    }
    println!(
        "  admin:     {}/__admin/requests (loopback only)",
        sandbox.base_url()
    );
    println!("Press Ctrl-C to stop.");
    sandbox.wait();
}
