//! `cargo run -p exact-sandbox` (or `cargo xtask sandbox`): runs the local
//! Exact Online (and the local Stripe beside it) until Ctrl-C and prints
//! how to reach it.

use exact_sandbox::{Sandbox, SandboxConfig, Size};

const USAGE: &str =
    "usage: exact-sandbox [--port N] [--seed N] [--size small|large] [--today YYYY-MM-DD]
                     [--closed-years none|demo|all]
                     [--client-id ID] [--client-secret S] [--redirect-uri URI]...
                     [--stripe-key sk_test_…] [--stripe-webhook-url URL]
                     [--stripe-webhook-secret whsec_…]... (two during a rotation)";

fn main() {
    let mut config = SandboxConfig {
        bind: "127.0.0.1:9700".into(),
        ..SandboxConfig::default()
    };
    let mut args = std::env::args().skip(1);
    let mut stripe_secret_given = false;
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
            "--stripe-key" => config.stripe.secret_key = value(),
            "--stripe-webhook-url" => config.stripe.webhook_url = Some(value()),
            "--stripe-webhook-secret" => {
                if !stripe_secret_given {
                    config.stripe.webhook_secrets.clear();
                    stripe_secret_given = true;
                }
                config.stripe.webhook_secrets.push(value());
            }
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
    let stripe = sandbox.stripe_config();
    println!(
        "Stripe (local): STRIPE_API_BASE={}  STRIPE_SECRET_KEY={}",
        sandbox.base_url(),
        stripe.secret_key
    );
    for p in &stripe.prices {
        println!(
            "  price {} ({}, {} cents {} a month)",
            p.id, p.product_name, p.unit_amount, p.currency
        );
    }
    println!(
        "  webhooks:  {} signed with {}",
        stripe
            .webhook_url
            .as_deref()
            .unwrap_or("(none: --stripe-webhook-url)"),
        stripe.webhook_secrets.join(", ")
    );
    println!(
        "  cards:     {} pays, {} is declined, {} fails at renewal",
        exact_sandbox::stripe::CARD_OK,
        exact_sandbox::stripe::CARD_DECLINED,
        exact_sandbox::stripe::CARD_FAILS_LATER
    );
    println!(
        "  admin:     {}/__admin/stripe/events (loopback only)",
        sandbox.base_url()
    );
    println!("Press Ctrl-C to stop.");
    sandbox.wait();
}
