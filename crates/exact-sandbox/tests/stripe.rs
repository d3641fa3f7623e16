//! The local Stripe over HTTP, as a product would use it: the secret key
//! and Stripe's error envelope, idempotency keys, checkout through the
//! hosted page's form (paying, declined and failing-later cards), the
//! billing portal's upgrade, downgrade and cancel with period ends passed
//! by the sandbox clock, and webhook deliveries to a local listener whose
//! signatures are checked with an independent HMAC, held, reordered,
//! retried and replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use exact_sandbox::stripe::StripeConfig;
use exact_sandbox::{Sandbox, SandboxConfig};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// One webhook request the listener received.
#[derive(Debug, Clone)]
struct Received {
    signature: String,
    body: String,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A local webhook endpoint: answers with the planned statuses (then 200)
/// and keeps what it got.
#[derive(Debug, Clone, Default)]
struct Listener {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<VecDeque<u16>>>,
}

impl Listener {
    fn start() -> Listener {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let listener = Listener {
            url: format!("http://{}/stripe/webhook", socket.local_addr().unwrap()),
            ..Listener::default()
        };
        let (got, plan) = (Arc::clone(&listener.got), Arc::clone(&listener.plan));
        std::thread::spawn(move || {
            for stream in socket.incoming() {
                let Ok(stream) = stream else { continue };
                let (got, plan) = (Arc::clone(&got), Arc::clone(&plan));
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut len = 0usize;
                        let mut signature = String::new();
                        let mut first = true;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" && !first {
                                break;
                            }
                            first = false;
                            if let Some((k, v)) = line.split_once(':') {
                                match k.to_ascii_lowercase().as_str() {
                                    "content-length" => len = v.trim().parse().unwrap(),
                                    "stripe-signature" => signature = v.trim().to_owned(),
                                    _ => {}
                                }
                            }
                        }
                        let mut body = vec![0; len];
                        reader.read_exact(&mut body).unwrap();
                        let status = plan.lock().unwrap().pop_front().unwrap_or(200);
                        got.lock().unwrap().push(Received {
                            signature,
                            body: String::from_utf8(body).unwrap(),
                        });
                        let _ = writer.write_all(
                            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        );
                    }
                });
            }
        });
        listener
    }

    /// Waits until `n` requests arrived and returns them.
    fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!(
            "expected {n} deliveries, got {:?}",
            self.got.lock().unwrap()
        );
    }

    fn types(&self, n: usize) -> Vec<String> {
        self.wait_for(n)
            .iter()
            .map(|r| r.event()["type"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Env {
    sandbox: Sandbox,
    hook: Listener,
    agent: ureq::Agent,
}

fn start_with(f: impl FnOnce(&mut StripeConfig)) -> Env {
    let hook = Listener::start();
    let mut stripe = StripeConfig {
        webhook_url: Some(hook.url.clone()),
        ..StripeConfig::default()
    };
    f(&mut stripe);
    let sandbox = Sandbox::start(SandboxConfig {
        stripe,
        ..SandboxConfig::default()
    })
    .unwrap();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    Env {
        sandbox,
        hook,
        agent,
    }
}

fn start() -> Env {
    start_with(|_| {})
}

/// A response: status, headers we look at, body.
struct Resp {
    status: u16,
    location: Option<String>,
    replayed: bool,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        form: &str,
        idem: Option<&str>,
    ) -> Resp {
        let url = self.url(path);
        let result = if method == "GET" {
            let mut r = self.agent.get(&url);
            if let Some(k) = key {
                r = r.header("Authorization", &format!("Bearer {k}"));
            }
            r.call()
        } else {
            let mut r = self
                .agent
                .post(&url)
                .header("Content-Type", "application/x-www-form-urlencoded");
            if let Some(k) = key {
                r = r.header("Authorization", &format!("Bearer {k}"));
            }
            if let Some(i) = idem {
                r = r.header("Idempotency-Key", i);
            }
            r.send(form.as_bytes())
        };
        let mut resp = result.unwrap();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, replayed) = (header("location"), header("idempotent-replayed").is_some());
        Resp {
            status: resp.status().as_u16(),
            location,
            replayed,
            body: resp.body_mut().read_to_string().unwrap(),
        }
    }

    fn api_post(&self, path: &str, form: &str) -> Value {
        let r = self.call("POST", path, Some("sk_test_local"), form, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    fn api_get(&self, path: &str) -> Value {
        let r = self.call("GET", path, Some("sk_test_local"), "", None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }

    fn admin(&self, path: &str, body: Value) -> Value {
        let mut resp = self
            .agent
            .post(&self.url(path))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn advance_days(&self, days: i64) {
        self.admin("/__admin/clock", json!({"advance_seconds": days * 86_400}));
    }

    fn customer(&self) -> String {
        self.api_post("/v1/customers", "email=a%40example.nl&metadata[user_id]=u1")["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn session(&self, customer: &str, price: &str) -> Value {
        self.api_post(
            "/v1/checkout/sessions",
            &format!(
                "mode=subscription&customer={customer}&client_reference_id=u1\
                 &line_items%5B0%5D%5Bprice%5D={price}&line_items%5B0%5D%5Bquantity%5D=1\
                 &success_url=http%3A%2F%2Fportal.test%2Fbilling%2Fdone%3Fsession%3D%7BCHECKOUT_SESSION_ID%7D\
                 &cancel_url=http%3A%2F%2Fportal.test%2Fbilling&metadata[plan]=starter\
                 &subscription_data[metadata][user_id]=u1"
            ),
        )
    }

    /// Pays on the hosted page with `card`, as a browser submits its form.
    fn pay(&self, session: &Value, card: &str) -> Resp {
        let url = session["url"].as_str().unwrap();
        let path = &url[self.sandbox.base_url().len()..];
        let page = self.call("GET", path, None, "", None);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("<label for=\"cardnumber\">"),
            "{}",
            page.body
        );
        let action = format!("action=\"{path}\"");
        assert!(page.body.contains(&action), "{}", page.body);
        self.call(
            "POST",
            path,
            None,
            &format!("cardnumber={card}&exp=12%2F34&cvc=123"),
            None,
        )
    }

    /// Subscribes a new customer to `price` with `card`; returns (customer, subscription).
    fn subscribe(&self, price: &str, card: &str) -> (String, String) {
        let customer = self.customer();
        let session = self.session(&customer, price);
        let paid = self.pay(&session, card);
        assert_eq!(paid.status, 302, "{}", paid.body);
        let id = session["id"].as_str().unwrap();
        let done = self.api_get(&format!("/v1/checkout/sessions/{id}"));
        (customer, done["subscription"].as_str().unwrap().to_owned())
    }

    fn subscription(&self, id: &str) -> Value {
        self.api_get(&format!("/v1/subscriptions/{id}"))
    }

    /// Opens the billing portal and submits one of its forms.
    fn portal(&self, customer: &str, action: &str, price: Option<&str>) -> String {
        let s = self.api_post(
            "/v1/billing_portal/sessions",
            &format!("customer={customer}&return_url=http%3A%2F%2Fportal.test%2Fdashboard"),
        );
        assert_eq!(s["object"], "billing_portal.session");
        let path = s["url"].as_str().unwrap()[self.sandbox.base_url().len()..].to_owned();
        let page = self.call("GET", &path, None, "", None);
        assert_eq!(page.status, 200);
        assert!(page.body.contains("href=\"http://portal.test/dashboard\""));
        let form = price.map(|p| format!("price={p}")).unwrap_or_default();
        let r = self.call("POST", &format!("{path}/{action}"), None, &form, None);
        assert_eq!(r.status, 303, "{}", r.body);
        self.call("GET", &path, None, "", None).body
    }
}

fn hmac_hex(secret: &str, t: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Splits `t=…,v1=…,v1=…` into the timestamp and the signatures.
fn parse_signature(header: &str) -> (String, Vec<String>) {
    let mut t = String::new();
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.to_owned(),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => panic!("unexpected part {part} in {header}"),
        }
    }
    (t, v1)
}

#[test]
fn the_api_wants_the_secret_key_and_answers_stripe_errors() {
    let env = start();
    let none = env.call("POST", "/v1/customers", None, "email=a%40b.nl", None);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["type"], "invalid_request_error");
    let wrong = env.call(
        "GET",
        "/v1/customers/cus_x",
        Some("sk_test_other"),
        "",
        None,
    );
    assert_eq!(wrong.status, 401);
    assert!(
        !wrong.body.contains("sk_test_other"),
        "the key is echoed whole"
    );

    let customer = env.customer();
    let unknown_price = env.call(
        "POST",
        "/v1/checkout/sessions",
        Some("sk_test_local"),
        &format!("mode=subscription&customer={customer}&success_url=http%3A%2F%2Fx&line_items[0][price]=price_nope"),
        None,
    );
    assert_eq!(unknown_price.status, 400);
    let e = &unknown_price.json()["error"];
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["code"], "resource_missing");
    assert_eq!(e["param"], "line_items[0][price]");
    assert!(e["message"].as_str().unwrap().contains("price_nope"));

    let no_mode = env.call(
        "POST",
        "/v1/checkout/sessions",
        Some("sk_test_local"),
        "",
        None,
    );
    assert_eq!(no_mode.status, 400);
    assert_eq!(no_mode.json()["error"]["code"], "parameter_missing");
    assert_eq!(no_mode.json()["error"]["param"], "mode");

    let no_sub = env.call(
        "GET",
        "/v1/subscriptions/sub_nope",
        Some("sk_test_local"),
        "",
        None,
    );
    assert_eq!(no_sub.status, 404);
    assert_eq!(no_sub.json()["error"]["code"], "resource_missing");

    let route = env.call("GET", "/v1/charges", Some("sk_test_local"), "", None);
    assert_eq!(route.status, 404);
    assert!(
        route.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognized request URL")
    );

    let got = env.api_get(&format!("/v1/customers/{customer}"));
    assert_eq!(got["object"], "customer");
    assert_eq!(got["email"], "a@example.nl");
    assert_eq!(got["metadata"]["user_id"], "u1");
    assert_eq!(got["livemode"], false);
}

#[test]
fn an_idempotency_key_replays_the_answer_and_refuses_other_parameters() {
    let env = start();
    let post = |form: &str| {
        env.call(
            "POST",
            "/v1/customers",
            Some("sk_test_local"),
            form,
            Some("key-1"),
        )
    };
    let first = post("email=a%40example.nl&metadata[user_id]=u1");
    assert_eq!(first.status, 200);
    assert!(!first.replayed);
    // The same parameters in another order are the same request.
    let again = post("metadata[user_id]=u1&email=a%40example.nl");
    assert_eq!(again.status, 200);
    assert!(again.replayed);
    assert_eq!(again.json()["id"], first.json()["id"]);
    let other = post("email=b%40example.nl");
    assert_eq!(other.status, 400);
    assert_eq!(other.json()["error"]["type"], "idempotency_error");
    // One customer, one event.
    let events = env.api_get("/v1/events?type=customer.created");
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    // Another key makes another customer.
    let second = env.call(
        "POST",
        "/v1/customers",
        Some("sk_test_local"),
        "email=a%40example.nl",
        Some("key-2"),
    );
    assert_ne!(second.json()["id"], first.json()["id"]);
}

#[test]
fn checkout_with_the_paying_card_starts_an_active_monthly_subscription_and_signs_its_events() {
    let env = start();
    let customer = env.customer();
    let session = env.session(&customer, "price_starter_local");
    assert_eq!(session["object"], "checkout.session");
    assert_eq!(session["status"], "open");
    assert_eq!(session["mode"], "subscription");
    assert_eq!(session["client_reference_id"], "u1");
    assert_eq!(session["amount_total"], 900);
    let id = session["id"].as_str().unwrap();
    assert!(id.starts_with("cs_"));
    let page = env.call(
        "GET",
        &session["url"].as_str().unwrap()[env.sandbox.base_url().len()..],
        None,
        "",
        None,
    );
    assert!(page.body.contains("EUR 9.00 per month"), "{}", page.body);
    assert!(
        page.body.contains("href=\"http://portal.test/billing\""),
        "the cancel link"
    );

    let paid = env.pay(&session, "4242+4242+4242+4242");
    assert_eq!(paid.status, 302);
    assert_eq!(
        paid.location.as_deref(),
        Some(format!("http://portal.test/billing/done?session={id}").as_str())
    );
    let done = env.api_get(&format!("/v1/checkout/sessions/{id}"));
    assert_eq!(done["status"], "complete");
    assert_eq!(done["payment_status"], "paid");
    assert_eq!(done["metadata"]["plan"], "starter");
    let sub = env.subscription(done["subscription"].as_str().unwrap());
    assert_eq!(sub["object"], "subscription");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["customer"], customer.as_str());
    assert_eq!(sub["cancel_at_period_end"], false);
    assert_eq!(
        sub["metadata"]["user_id"], "u1",
        "subscription_data[metadata]"
    );
    assert!(sub["canceled_at"].is_null());
    assert!(sub["latest_invoice"].as_str().unwrap().starts_with("in_"));
    assert!(
        sub.get("current_period_end").is_none(),
        "basil: the period is on the item"
    );
    let item = &sub["items"]["data"][0];
    assert_eq!(item["price"]["id"], "price_starter_local");
    let (start, end) = (
        item["current_period_start"].as_i64().unwrap(),
        item["current_period_end"].as_i64().unwrap(),
    );
    assert_eq!(exact_sandbox::stripe::add_month(start), end);
    assert!((28 * 86_400..=31 * 86_400).contains(&(end - start)));

    // customer.created, then the checkout's three, each signed.
    let got = env.hook.wait_for(4);
    let kinds: Vec<String> = got
        .iter()
        .map(|r| r.event()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "customer.created",
            "customer.subscription.created",
            "invoice.paid",
            "checkout.session.completed"
        ],
        "{kinds:?}"
    );
    let wall = chrono::Utc::now().timestamp();
    for r in &got {
        let (t, v1) = parse_signature(&r.signature);
        assert_eq!(v1, [hmac_hex("whsec_local", &t, &r.body)]);
        assert!(
            (wall - t.parse::<i64>().unwrap()).abs() < 300,
            "signed with the wall clock"
        );
        let e = r.event();
        assert_eq!(e["object"], "event");
        assert_eq!(e["livemode"], false);
        assert_eq!(e["api_version"], "2025-03-31.basil");
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    }
    let completed = got[3].event();
    assert_eq!(completed["data"]["object"]["id"], id);
    assert_eq!(completed["data"]["object"]["client_reference_id"], "u1");
    let invoice = got[2].event();
    assert_eq!(
        invoice["data"]["object"]["parent"]["subscription_details"]["subscription"],
        sub["id"]
    );
    assert_eq!(invoice["data"]["object"]["status"], "paid");
    // The same events through the API, newest first.
    let listed = env.api_get("/v1/events?limit=2");
    assert_eq!(listed["object"], "list");
    assert_eq!(listed["has_more"], true);
    assert_eq!(listed["data"][0]["type"], "checkout.session.completed");
    let next = env.api_get(&format!(
        "/v1/events?limit=2&starting_after={}",
        listed["data"][1]["id"].as_str().unwrap()
    ));
    assert_eq!(next["data"][0]["type"], "customer.subscription.created");
    assert_eq!(next["data"][1]["type"], "customer.created");
    assert_eq!(next["has_more"], false);
    let back = env.api_get(&format!(
        "/v1/events?limit=1&ending_before={}",
        next["data"][0]["id"].as_str().unwrap()
    ));
    assert_eq!(back["data"][0]["type"], "invoice.paid");
    assert_eq!(back["has_more"], true);
    let one = env.api_get(&format!("/v1/events/{}", completed["id"].as_str().unwrap()));
    assert_eq!(one, completed);
    // A paid session's page no longer takes a card.
    let path = &session["url"].as_str().unwrap()[env.sandbox.base_url().len()..];
    let again = env.call("GET", path, None, "", None);
    assert!(
        again.body.contains("This checkout is complete."),
        "{}",
        again.body
    );
    assert!(!again.body.contains("cardnumber"));
}

#[test]
fn the_declining_card_creates_nothing_and_the_user_may_retry() {
    let env = start();
    let customer = env.customer();
    let session = env.session(&customer, "price_pro_local");
    let declined = env.pay(&session, "4000000000000002");
    assert_eq!(declined.status, 402);
    assert!(declined.body.contains("Your card was declined."));
    assert!(declined.body.contains("role=\"alert\""));
    let id = session["id"].as_str().unwrap();
    let still = env.api_get(&format!("/v1/checkout/sessions/{id}"));
    assert_eq!(still["status"], "open");
    assert!(still["subscription"].is_null());
    let subs = env.api_get("/v1/events?type=customer.subscription.*");
    assert!(subs["data"].as_array().unwrap().is_empty());

    let paid = env.pay(&session, "4242424242424242");
    assert_eq!(paid.status, 302);
    let done = env.api_get(&format!("/v1/checkout/sessions/{id}"));
    let sub = env.subscription(done["subscription"].as_str().unwrap());
    assert_eq!(sub["items"]["data"][0]["price"]["id"], "price_pro_local");
    assert_eq!(sub["items"]["data"][0]["price"]["unit_amount"], 2500);
}

#[test]
fn two_secrets_during_rotation_give_two_signatures() {
    let env = start_with(|c| c.webhook_secrets = vec!["whsec_old".into(), "whsec_new".into()]);
    env.customer();
    let got = env.hook.wait_for(1);
    let (t, v1) = parse_signature(&got[0].signature);
    assert_eq!(
        v1,
        [
            hmac_hex("whsec_old", &t, &got[0].body),
            hmac_hex("whsec_new", &t, &got[0].body)
        ]
    );
    // The admin API rotates to one secret.
    env.admin("/__admin/stripe/webhook", json!({"secrets": ["whsec_new"]}));
    env.customer();
    let got = env.hook.wait_for(2);
    let (t, v1) = parse_signature(&got[1].signature);
    assert_eq!(v1, [hmac_hex("whsec_new", &t, &got[1].body)]);
}

#[test]
fn the_portal_upgrades_at_once_and_downgrades_and_cancels_at_the_period_end() {
    let env = start();
    let (customer, sub) = env.subscribe("price_starter_local", "4242424242424242");
    let before = env.subscription(&sub);
    let end = before["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();

    // Upgrade: the price changes now, the period stays.
    let page = env.portal(&customer, "switch", Some("price_pro_local"));
    assert!(page.contains("<strong id=\"plan\">Pro</strong>"), "{page}");
    let up = env.subscription(&sub);
    assert_eq!(up["items"]["data"][0]["price"]["id"], "price_pro_local");
    assert_eq!(up["items"]["data"][0]["current_period_end"], end);
    let updated = env.api_get("/v1/events?type=customer.subscription.updated&limit=1");
    let e = &updated["data"][0]["data"];
    assert_eq!(
        e["object"]["items"]["data"][0]["price"]["id"],
        "price_pro_local"
    );
    assert_eq!(
        e["previous_attributes"]["items"]["data"][0]["price"]["id"],
        "price_starter_local"
    );

    // Downgrade: scheduled for the period's end; the paid price holds.
    let page = env.portal(&customer, "switch", Some("price_starter_local"));
    assert!(page.contains("Your plan changes to Starter"), "{page}");
    let scheduled = env.subscription(&sub);
    assert_eq!(
        scheduled["items"]["data"][0]["price"]["id"],
        "price_pro_local"
    );
    assert!(
        scheduled["schedule"]
            .as_str()
            .unwrap()
            .starts_with("sub_sched_")
    );
    env.advance_days(32);
    let renewed = env.subscription(&sub);
    assert_eq!(renewed["status"], "active");
    assert_eq!(
        renewed["items"]["data"][0]["price"]["id"],
        "price_starter_local"
    );
    assert_eq!(renewed["items"]["data"][0]["current_period_start"], end);
    assert!(renewed["schedule"].is_null());
    assert_ne!(renewed["latest_invoice"], before["latest_invoice"]);
    let invoice = env.api_get(&format!(
        "/v1/invoices/{}",
        renewed["latest_invoice"].as_str().unwrap()
    ));
    assert_eq!(invoice["billing_reason"], "subscription_cycle");
    assert_eq!(invoice["amount_paid"], 900);

    // Cancel: at the period's end, with canceled_at the request's time.
    let page = env.portal(&customer, "cancel", None);
    assert!(page.contains("will be canceled on"), "{page}");
    let canceling = env.subscription(&sub);
    assert_eq!(canceling["status"], "active");
    assert_eq!(canceling["cancel_at_period_end"], true);
    assert!(canceling["canceled_at"].is_i64());
    env.advance_days(32);
    let ended = env.subscription(&sub);
    assert_eq!(ended["status"], "canceled");
    assert!(ended["ended_at"].is_i64());
    let kinds = env.hook.types(10);
    assert_eq!(
        kinds[4..],
        [
            "customer.subscription.updated", // upgrade
            "customer.subscription.updated", // downgrade scheduled
            "customer.subscription.updated", // renewal with the new price
            "invoice.paid",
            "customer.subscription.updated", // cancel requested
            "customer.subscription.deleted",
        ][..],
        "{kinds:?}"
    );
    let page = env.portal_page_after_end(&customer);
    assert!(page.contains("ended on"), "{page}");
}

impl Env {
    fn portal_page_after_end(&self, customer: &str) -> String {
        let s = self.api_post(
            "/v1/billing_portal/sessions",
            &format!("customer={customer}"),
        );
        let path = s["url"].as_str().unwrap()[self.sandbox.base_url().len()..].to_owned();
        self.call("GET", &path, None, "", None).body
    }
}

#[test]
fn the_card_that_fails_later_goes_past_due_then_canceled_after_the_retries() {
    let env = start_with(|c| c.payment_retries = vec![86_400, 2 * 86_400]);
    let (_, sub) = env.subscribe("price_starter_local", "4000000000000341");
    assert_eq!(env.subscription(&sub)["status"], "active");
    env.advance_days(31);
    let due = env.subscription(&sub);
    assert_eq!(due["status"], "past_due");
    let invoice = env.api_get(&format!(
        "/v1/invoices/{}",
        due["latest_invoice"].as_str().unwrap()
    ));
    assert_eq!(invoice["status"], "open");
    assert!(invoice["next_payment_attempt"].is_i64());
    // The first retry fails too; still past_due.
    env.advance_days(1);
    assert_eq!(env.subscription(&sub)["status"], "past_due");
    env.advance_days(2);
    let ended = env.subscription(&sub);
    assert_eq!(ended["status"], "canceled");
    let kinds = env.hook.types(9);
    assert_eq!(
        kinds[4..],
        [
            "customer.subscription.updated",
            "invoice.payment_failed",
            "invoice.payment_failed",
            "invoice.payment_failed",
            "customer.subscription.deleted",
        ][..],
        "{kinds:?}"
    );
}

#[test]
fn held_deliveries_go_out_in_the_order_asked_and_replays_and_retries_are_re_signed() {
    let env = start();
    let customer = env.customer();
    env.hook.wait_for(1);
    env.admin("/__admin/stripe/hold", json!({}));
    let session = env.session(&customer, "price_starter_local");
    assert_eq!(env.pay(&session, "4242424242424242").status, 302);
    let held = env
        .agent
        .get(&env.url("/__admin/stripe/held"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let held: Value = serde_json::from_str(&held).unwrap();
    let ids: Vec<String> = held["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{held}");
    assert_eq!(
        env.hook.got.lock().unwrap().len(),
        1,
        "nothing delivered while held"
    );
    // The completion first, then the rest in their order.
    let released = env.admin("/__admin/stripe/release", json!({"order": [ids[2]]}));
    assert_eq!(released["released"], json!([ids[2], ids[0], ids[1]]));
    assert_eq!(
        env.hook.types(4)[1..],
        [
            "checkout.session.completed",
            "customer.subscription.created",
            "invoice.paid"
        ][..]
    );

    // A replay: the same event, a new delivery with a new timestamp; one
    // back-dated by ten minutes for tolerance tests.
    env.admin(
        &format!("/__admin/stripe/events/{}/replay", ids[0]),
        json!({}),
    );
    env.admin(
        &format!("/__admin/stripe/events/{}/replay", ids[0]),
        json!({"age_seconds": 600}),
    );
    let got = env.hook.wait_for(6);
    assert_eq!(got[4].event()["id"], ids[0].as_str());
    assert_eq!(got[4].body, got[2].body, "the same event body");
    let (t_new, _) = parse_signature(&got[4].signature);
    let (t_old, v1) = parse_signature(&got[5].signature);
    assert_eq!(v1, [hmac_hex("whsec_local", &t_old, &got[5].body)]);
    let age = t_new.parse::<i64>().unwrap() - t_old.parse::<i64>().unwrap();
    assert!((600..700).contains(&age), "back-dated by {age}");

    // An endpoint failing twice gets the event a third time.
    env.hook.plan.lock().unwrap().extend([500, 503]);
    env.customer();
    let got = env.hook.wait_for(9);
    assert_eq!(got[6].body, got[8].body);
    let mut deliveries = env.sandbox.stripe_deliveries();
    for _ in 0..400 {
        if deliveries.len() >= 9 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
        deliveries = env.sandbox.stripe_deliveries();
    }
    let last: Vec<(u32, Option<u16>, bool)> = deliveries[deliveries.len() - 3..]
        .iter()
        .map(|d| (d.attempt, d.status, d.ok))
        .collect();
    assert_eq!(
        last,
        [
            (1, Some(500), false),
            (2, Some(503), false),
            (3, Some(200), true)
        ]
    );
}

#[test]
fn a_fault_without_a_path_is_for_exact_and_one_naming_a_stripe_path_hits_it() {
    let env = start();
    env.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 503, "count": 1}),
    );
    // The billing call in between does not take Exact's fault…
    let customer = env.call(
        "POST",
        "/v1/customers",
        Some("sk_test_local"),
        "email=a%40b.nl",
        None,
    );
    assert_eq!(customer.status, 200, "{}", customer.body);
    // …which the next Exact request still gets.
    let exact = env.call("GET", "/api/v1/current/Me", None, "", None);
    assert_eq!(exact.status, 503);
    env.admin(
        "/__admin/faults",
        json!({"kind": "status", "status": 500, "count": 1, "path": "/v1/checkout"}),
    );
    let faulted = env.call(
        "POST",
        "/v1/checkout/sessions",
        Some("sk_test_local"),
        "mode=subscription",
        None,
    );
    assert_eq!(faulted.status, 500);
}
