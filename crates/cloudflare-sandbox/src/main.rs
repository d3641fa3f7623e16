//! `cargo run -p cloudflare-sandbox -- --port P --state DIR --token T
//! --account-id A [--wrangler PATH] [--node-dir DIR]`: runs the local
//! Cloudflare API and edge until stopped, and prints where it listens.

use std::path::PathBuf;

use cloudflare_sandbox::{CloudflareSandbox, Config};

const USAGE: &str = "usage: cloudflare-sandbox --state DIR --token T --account-id A
                          [--port N (0 picks a free one)] [--subdomain S]
                          [--wrangler PATH] [--node-dir DIR]";

fn main() {
    let mut config = Config::new(PathBuf::from(".state/cloudflare"), "", "");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--port" => {
                let port: u16 = value().parse().unwrap_or_else(|_| {
                    eprintln!("invalid --port\n{USAGE}");
                    std::process::exit(2)
                });
                config.bind = format!("127.0.0.1:{port}");
            }
            "--state" => config.state_dir = PathBuf::from(value()),
            "--token" => config.token = value(),
            "--account-id" => config.account_id = value(),
            "--subdomain" => config.subdomain = value(),
            "--wrangler" => config.wrangler = Some(PathBuf::from(value())),
            "--node-dir" => config.node_dir = Some(PathBuf::from(value())),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => {
                eprintln!("unknown argument {arg:?}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    if config.token.is_empty() || config.account_id.is_empty() {
        eprintln!("--token and --account-id are required\n{USAGE}");
        std::process::exit(2)
    }
    let sandbox = match CloudflareSandbox::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    println!("Cloudflare sandbox on {}", sandbox.base_url());
    println!("  CLOUDFLARE_API_BASE_URL={}", sandbox.api_base_url());
    println!(
        "  admin: {0}/__admin/state  {0}/__admin/faults  {0}/__admin/health",
        sandbox.base_url()
    );
    sandbox.wait();
}
