//! The seeded generator of the demo companies' books.
//!
//! Documents (sales and purchase invoices, bank lines, memorial entries)
//! are generated first; every one of them posts balanced transaction lines
//! (debit positive, credit negative, whole cents), and those lines are the
//! single source the reports are computed from. Amounts are kept in cents
//! as integers until they are written out, so every entry sums to exactly
//! zero.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{Value, json};

use super::{Company, DataConfig, Dataset, Industry, RecurringPurchase, Row, SandboxUser, Size};

/// SplitMix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A lower-case GUID.
    fn guid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// Exact's date value for a date (midnight, local time).
pub fn exact_date(d: NaiveDate) -> Value {
    let ms = d
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis());
    Value::String(format!("/Date({ms})/"))
}

fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

fn obj(v: Value) -> Row {
    v.as_object().cloned().unwrap_or_default()
}

#[derive(Clone)]
struct Gl {
    id: String,
    code: &'static str,
    description: &'static str,
}

const CHART: &[(&str, &str, i64, &str, &str)] = &[
    ("0200", "Inventaris en machines", 90, "B", "D"),
    ("0290", "Afschrijving inventaris", 90, "B", "C"),
    ("0500", "Eigen vermogen", 90, "B", "C"),
    ("1000", "Kas", 10, "B", "D"),
    ("1100", "Bank", 12, "B", "D"),
    ("1300", "Debiteuren", 20, "B", "D"),
    ("1500", "BTW te betalen hoog", 24, "B", "C"),
    ("1510", "BTW te betalen laag", 24, "B", "C"),
    ("1520", "BTW te vorderen", 24, "B", "D"),
    ("1600", "Crediteuren", 22, "B", "C"),
    ("1800", "Kruisposten", 90, "B", "D"),
    ("3000", "Voorraad", 90, "B", "D"),
    ("4000", "Lonen en salarissen", 120, "W", "D"),
    ("4100", "Huisvesting", 120, "W", "D"),
    ("4200", "Vervoerskosten", 120, "W", "D"),
    ("4300", "Kantoorkosten", 120, "W", "D"),
    ("4800", "Afschrijvingen", 120, "W", "D"),
    ("7000", "Inkoopwaarde omzet", 111, "W", "D"),
    ("8000", "Omzet hoog tarief", 110, "W", "C"),
    ("8100", "Omzet laag tarief", 110, "W", "C"),
];

/// The account a closed year's result moves to in the next year's opening
/// entry. Its id is derived from the equity account's rather than drawn,
/// so every other row is the same as before it existed.
const RETAINED: (&str, &str, i64, &str, &str) = ("0510", "Onverdeelde winst", 90, "B", "C");

/// Whether a GL code is a balance-sheet account.
fn is_balance_sheet(code: &str) -> bool {
    code == RETAINED.0 || CHART.iter().any(|c| c.0 == code && c.3 == "B")
}

const FIRST: &[&str] = &[
    "Van Dijk", "De Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "De Boer", "Mulder",
    "Bos", "Vos", "Peters", "Hendriks", "Dekker", "Brouwer", "De Wit",
];
const KIND: &[&str] = &[
    "Installatietechniek",
    "Horeca",
    "Advies",
    "Logistiek",
    "Retail",
    "Zorg",
    "Media",
    "Bouw",
    "Groothandel",
    "Software",
];
const FORM: &[&str] = &["B.V.", "V.O.F.", "& Zn.", "Holding B.V.", ""];
const EMPLOYEES: [&str; 4] = [
    "Anna de Jong",
    "Pieter Smit",
    "Fatima El Amrani",
    "Joost Bakker",
];
const ORDER_STATUS: [(i64, &str); 4] = [
    (12, "Open"),
    (20, "Gedeeltelijk"),
    (21, "Afgehandeld"),
    (45, "Geannuleerd"),
];
const QUOTE_STATUS: [(i64, &str); 5] = [
    (10, "Concept"),
    (20, "Open"),
    (40, "Verwerkt"),
    (45, "Geweigerd"),
    (50, "Geaccepteerd"),
];
const CITIES: &[&str] = &[
    "Amsterdam",
    "Utrecht",
    "Rotterdam",
    "Den Haag",
    "Eindhoven",
    "Groningen",
    "Zwolle",
    "Arnhem",
    "Leiden",
    "Haarlem",
];

/// One company's generation context.
struct Books {
    rng: Rng,
    division: i64,
    today: NaiveDate,
    start: NaiveDate,
    gl: BTreeMap<&'static str, Gl>,
    lines: Vec<Row>,
    entry_number: i64,
    tables: BTreeMap<&'static str, Vec<Row>>,
}

struct Relation {
    id: String,
    code: String,
    name: String,
}

/// One posting of an entry: GL code, signed cents, relation, invoice.
struct Post<'a> {
    gl: &'static str,
    cents: i64,
    account: Option<&'a Relation>,
    invoice: Option<i64>,
    vat: Option<(&'static str, f64)>,
    cost_center: Option<String>,
}

fn post<'a>(gl: &'static str, cents: i64) -> Post<'a> {
    Post {
        gl,
        cents,
        account: None,
        invoice: None,
        vat: None,
        cost_center: None,
    }
}

impl Books {
    fn gl_id(&self, code: &str) -> String {
        self.gl.get(code).map(|g| g.id.clone()).unwrap_or_default()
    }

    /// Books one balanced entry; returns its EntryID.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        date: NaiveDate,
        journal: &str,
        kind: i64,
        status: i64,
        description: &str,
        due: Option<NaiveDate>,
        posts: &[Post<'_>],
    ) -> String {
        debug_assert_eq!(posts.iter().map(|p| p.cents).sum::<i64>(), 0);
        let entry_id = self.rng.guid();
        self.entry_number += 1;
        for (n, p) in posts.iter().enumerate() {
            let gl = self.gl.get(p.gl).cloned();
            let (gl_id, gl_code, gl_desc) =
                gl.map_or((String::new(), "", ""), |g| (g.id, g.code, g.description));
            self.lines.push(obj(json!({
                "ID": self.rng.guid(), "Division": self.division, "EntryID": entry_id,
                "EntryNumber": self.entry_number, "LineNumber": n as i64 + 1,
                "Date": exact_date(date), "FinancialYear": date.year(), "FinancialPeriod": date.month(),
                "JournalCode": journal, "GLAccount": gl_id, "GLAccountCode": gl_code,
                "GLAccountDescription": gl_desc,
                "Account": p.account.map(|a| a.id.clone()), "AccountCode": p.account.map(|a| a.code.clone()),
                "AccountName": p.account.map(|a| a.name.clone()),
                "AmountDC": money(p.cents), "AmountFC": money(p.cents), "AmountVATFC": 0.0, "Currency": "EUR",
                "VATCode": p.vat.map(|v| v.0), "VATPercentage": p.vat.map_or(0.0, |v| v.1),
                "Description": description, "InvoiceNumber": p.invoice,
                "YourRef": Value::Null, "DueDate": due.map_or(Value::Null, exact_date),
                "CostCenter": p.cost_center.clone(), "Project": Value::Null,
                "Status": status, "Type": kind,
            })));
        }
        entry_id
    }

    fn push(&mut self, table: &'static str, row: Value) {
        self.tables.entry(table).or_default().push(obj(row));
    }

    fn random_day(&mut self, year: i32, month: u32) -> Option<NaiveDate> {
        let first = NaiveDate::from_ymd_opt(year, month, 1)?;
        let d = first + Duration::days(self.rng.range(0, 27));
        (d <= self.today).then_some(d)
    }

    fn months(&self) -> Vec<(i32, u32)> {
        let mut out = Vec::new();
        let mut d = self.start;
        while d <= self.today {
            out.push((d.year(), d.month()));
            d = if d.month() == 12 {
                NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
                    .unwrap_or(self.today + Duration::days(1))
            } else {
                NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
                    .unwrap_or(self.today + Duration::days(1))
            };
        }
        out
    }
}

fn relations(b: &mut Books, count: usize, sales: bool, hostile: bool) -> Vec<Relation> {
    let mut out = Vec::new();
    for n in 0..count {
        let name = match (hostile, n) {
            (true, 0) => "O'Brien Bouw & Zn.".to_owned(),
            (true, 1) => "Café 't Hoekje".to_owned(),
            _ => {
                let f = *b.rng.pick(FIRST);
                let k = *b.rng.pick(KIND);
                let form = *b.rng.pick(FORM);
                format!("{f} {k} {form}").trim().to_owned()
            }
        };
        let number = if sales { 1000 + n } else { 5000 + n };
        let id = b.rng.guid();
        let code = format!("{number:>18}");
        let city = *b.rng.pick(CITIES);
        let blocked = n % 23 == 7;
        let kvk = b.rng.range(10_000_000, 99_999_999);
        let vat = format!("NL{:09}B01", b.rng.range(100_000_000, 999_999_999));
        let email = format!(
            "administratie@{}.nl",
            name.to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        b.push("crm/Accounts", json!({
            "ID": id, "Division": b.division, "Code": code, "Name": name, "IsSales": sales, "IsSupplier": !sales,
            "Status": if sales { "C" } else { "A" }, "Blocked": blocked, "VATNumber": vat,
            "ChamberOfCommerce": kvk.to_string(), "Email": email, "City": city, "Country": "NL", "Type": "A",
        }));
        out.push(Relation { id, code, name });
    }
    out
}

/// Books one purchase invoice (entry, `PurchaseEntries` row) and, most of
/// the time, its payment.
#[allow(clippy::too_many_arguments)]
fn book_purchase(
    b: &mut Books,
    date: NaiveDate,
    supplier: &Relation,
    cost_gl: &'static str,
    net: i64,
    purchase_no: i64,
    description: Option<&str>,
    cost_center: Option<String>,
) {
    let (division, today) = (b.division, b.today);
    let vat = net * 21 / 100;
    let due = date + Duration::days(30);
    let desc = description.map_or_else(
        || format!("Inkoopfactuur {purchase_no}"),
        |d| format!("{d} {}", date.format("%m-%Y")),
    );
    let entry_id = b.entry(
        date,
        "60",
        30,
        50,
        &desc,
        Some(due),
        &[
            Post {
                cost_center,
                vat: Some(("1", 0.21)),
                ..post(cost_gl, net)
            },
            Post {
                vat: Some(("1", 0.21)),
                ..post("1520", vat)
            },
            Post {
                account: Some(supplier),
                invoice: Some(purchase_no),
                ..post("1600", -(net + vat))
            },
        ],
    );
    let your_ref = format!("INV-{}", b.rng.range(10000, 99999));
    b.push("purchaseentry/PurchaseEntries", json!({"EntryID": entry_id, "Division": division, "Supplier": supplier.id, "SupplierName": supplier.name, "EntryDate": exact_date(date), "InvoiceNumber": purchase_no, "AmountDC": (net + vat) as f64 / 100.0, "VATAmountDC": vat as f64 / 100.0, "DueDate": exact_date(due), "YourRef": your_ref, "Journal": "60", "ReportingYear": date.year(), "ReportingPeriod": date.month(), "Status": 50, "Type": 30, "Description": desc}));
    let pay = due + Duration::days(b.rng.range(-5, 20));
    if pay <= today && !b.rng.chance(8) {
        b.entry(
            pay,
            "20",
            40,
            50,
            &format!("Betaling {desc}"),
            None,
            &[
                Post {
                    account: Some(supplier),
                    invoice: Some(purchase_no),
                    ..post("1600", net + vat)
                },
                post("1100", -(net + vat)),
            ],
        );
    }
}

fn company(
    config: &DataConfig,
    index: u64,
    division: i64,
    name: &str,
    industry: Industry,
) -> Company {
    let today = config.today;
    let start = NaiveDate::from_ymd_opt(today.year() - 1, 1, 1).unwrap_or(today);
    let mut b = Books {
        rng: Rng(config.seed ^ (index.wrapping_mul(0xA24B_AED4_963E_E407))),
        division,
        today,
        start,
        gl: BTreeMap::new(),
        lines: Vec::new(),
        entry_number: 0,
        tables: BTreeMap::new(),
    };
    let scale: usize = match config.size {
        Size::Small => 1,
        Size::Large => 10,
    };

    // Administration, chart of accounts, journals, VAT codes.
    for (table, hid) in [("system/Divisions", "Hid"), ("hrm/Divisions", "HID")] {
        b.push(table, json!({
            "Code": division, hid: index as i64 + 1, "Description": name, "CustomerName": name,
            "Currency": "EUR", "Country": "NL", "VATNumber": format!("NL{:09}B01", 800_000_000 + division % 1_000_000),
            "Status": 1, "BlockingStatus": 0, "Current": index == 0, "IsMainDivision": index == 0, "Main": index == 0,
        }));
    }
    for (code, desc, kind, bt, side) in CHART {
        let id = b.rng.guid();
        b.gl.insert(
            code,
            Gl {
                id: id.clone(),
                code,
                description: desc,
            },
        );
        b.push("financial/GLAccounts", json!({
            "ID": id, "Division": division, "Code": code, "Description": desc, "BalanceType": bt,
            "BalanceSide": side, "Type": kind, "TypeDescription": desc, "IsBlocked": false, "VATCode": Value::Null,
            "SearchCode": code,
        }));
    }
    // The retained-earnings account, with an id derived from the equity
    // account's (see `RETAINED`).
    {
        let (code, desc, kind, bt, side) = RETAINED;
        let id = format!("05100000{}", &b.gl_id("0500")[8..]);
        b.gl.insert(
            code,
            Gl {
                id: id.clone(),
                code,
                description: desc,
            },
        );
        b.push("financial/GLAccounts", json!({
            "ID": id, "Division": division, "Code": code, "Description": desc, "BalanceType": bt,
            "BalanceSide": side, "Type": kind, "TypeDescription": desc, "IsBlocked": false, "VATCode": Value::Null,
            "SearchCode": code,
        }));
    }
    for (code, desc, kind, gl) in [
        ("10", "Kas", 10, "1000"),
        ("20", "Bank", 12, "1100"),
        ("70", "Verkoopboek", 20, "1300"),
        ("60", "Inkoopboek", 22, "1600"),
        ("90", "Memoriaal", 90, ""),
    ] {
        let gl_id = b.gl_id(gl);
        let id = b.rng.guid();
        b.push("financial/Journals", json!({"ID": id, "Division": division, "Code": code, "Description": desc, "Type": kind, "GLAccount": if gl.is_empty() { Value::Null } else { json!(gl_id) }, "Currency": "EUR"}));
    }
    for (code, desc, pct, tt, pay, claim) in [
        ("1", "BTW hoog 21%", 0.21, "B", "1500", "1520"),
        ("2", "BTW laag 9%", 0.09, "B", "1510", "1520"),
        ("0", "Geen BTW", 0.0, "B", "", ""),
        ("5", "BTW verlegd", 0.0, "P", "", "1520"),
    ] {
        let id = b.rng.guid();
        let (p, c) = (b.gl_id(pay), b.gl_id(claim));
        b.push("vat/VATCodes", json!({"ID": id, "Division": division, "Code": code, "Description": desc, "Percentage": pct, "Type": "E", "VATTransactionType": tt, "IsBlocked": false, "GLToPay": if p.is_empty() { Value::Null } else { json!(p) }, "GLToClaim": if c.is_empty() { Value::Null } else { json!(c) }}));
    }
    let centres: Vec<String> = ["100", "200", "300"]
        .iter()
        .map(|c| (*c).to_owned())
        .collect();
    for (c, d) in centres.iter().zip(["Productie", "Verkoop", "Algemeen"]) {
        let id = b.rng.guid();
        b.push(
            "hrm/Costcenters",
            json!({"ID": id, "Division": division, "Code": c, "Description": d, "Active": true}),
        );
    }

    let customers = relations(&mut b, 70 * scale, true, index == 0);
    let suppliers = relations(&mut b, 25 * scale, false, false);

    // Opening balance on the first day of the books, entered by hand (so in
    // period 1), with the VAT of the quarter before still to pay.
    b.entry(
        start,
        "90",
        10,
        50,
        "Beginbalans",
        None,
        &[
            post("1100", 2_680_000),
            post("0200", 3_000_000),
            post("1500", -180_000),
            post("0500", -5_500_000),
        ],
    );

    let low_vat = industry == Industry::Bakery;
    let mut invoice_no = 20_000_000 + (index as i64) * 1_000_000;
    let mut purchase_no = 60_000;
    let months = b.months();
    let first_month = b.start.year() * 12 + b.start.month() as i32;
    let last_month = today.year() * 12 + today.month() as i32;
    let contracts: Vec<RecurringPurchase> = [
        (
            "Huur bedrijfspand",
            "4100",
            245_000 + index as i64 * 10_000,
            1,
            1,
            first_month,
            last_month,
        ),
        (
            "Licentie boekhoudsoftware",
            "4300",
            14_900,
            1,
            5,
            first_month + 2,
            last_month,
        ),
        (
            "Verzekering bedrijfsaansprakelijkheid",
            "4300",
            127_500,
            3,
            15,
            first_month,
            last_month,
        ),
        (
            "Lease bestelauto",
            "4200",
            68_900,
            1,
            10,
            first_month,
            last_month - 6,
        ),
    ]
    .into_iter()
    .zip(suppliers.iter())
    .map(
        |((description, gl, net_cents, every_months, day, from_month, to_month), s)| {
            RecurringPurchase {
                supplier_id: s.id.clone(),
                supplier_name: s.name.clone(),
                description,
                gl,
                net_cents,
                every_months,
                day,
                from_month,
                to_month,
            }
        },
    )
    .collect();
    for (year, month) in months.iter().copied() {
        // Sales invoices.
        for _ in 0..(8 * scale) {
            let Some(date) = b.random_day(year, month) else {
                continue;
            };
            let customer = &customers[b.rng.below(customers.len() as u64) as usize];
            let (vat_code, rate, revenue_gl, vat_gl) = if low_vat && b.rng.chance(80) {
                ("2", 9, "8100", "1510")
            } else {
                ("1", 21, "8000", "1500")
            };
            let net = b.rng.range(15_000, 600_000);
            let vat = net * rate / 100;
            let gross = net + vat;
            invoice_no += 1;
            let due = date + Duration::days(if b.rng.chance(50) { 14 } else { 30 });
            let cc = Some(centres[1].clone());
            let desc = format!("Factuur {invoice_no}");
            let entry_id = b.entry(
                date,
                "70",
                20,
                50,
                &desc,
                Some(due),
                &[
                    Post {
                        account: Some(customer),
                        invoice: Some(invoice_no),
                        ..post("1300", gross)
                    },
                    Post {
                        vat: Some((vat_code, rate as f64 / 100.0)),
                        cost_center: cc,
                        ..post(revenue_gl, -net)
                    },
                    Post {
                        vat: Some((vat_code, rate as f64 / 100.0)),
                        ..post(vat_gl, -vat)
                    },
                ],
            );
            let invoice_id = b.rng.guid();
            let common = json!({
                "Division": division, "InvoiceNumber": invoice_no, "Journal": "70", "YourRef": format!("PO-{}", b.rng.range(1000, 9999)),
                "AmountDC": gross as f64 / 100.0, "VATAmountDC": vat as f64 / 100.0, "AmountFCExclVat": net as f64 / 100.0,
                "DueDate": exact_date(due), "Currency": "EUR", "Description": desc,
            });
            let mut entry = obj(common.clone());
            entry.extend(obj(json!({"EntryID": entry_id, "EntryDate": exact_date(date), "Customer": customer.id, "CustomerName": customer.name, "ReportingYear": year, "ReportingPeriod": month, "Status": 50, "Type": 20})));
            b.tables
                .entry("salesentry/SalesEntries")
                .or_default()
                .push(entry);
            let mut inv = obj(common);
            inv.extend(obj(json!({"InvoiceID": invoice_id, "InvoiceDate": exact_date(date), "InvoiceTo": customer.id, "InvoiceToName": customer.name, "OrderedBy": customer.id, "Status": 50, "Type": 8020})));
            b.tables
                .entry("salesinvoice/SalesInvoices")
                .or_default()
                .push(inv);
            let line_id = b.rng.guid();
            b.push("salesinvoice/SalesInvoiceLines", json!({"ID": line_id, "Division": division, "InvoiceID": invoice_id, "LineNumber": 1, "Description": desc, "Quantity": 1.0, "UnitPrice": net as f64 / 100.0, "AmountDC": net as f64 / 100.0, "VATCode": vat_code, "VATPercentage": rate as f64 / 100.0, "GLAccount": b.gl_id(revenue_gl)}));
            if invoice_no % 10 == 0 {
                let doc = b.rng.guid();
                let att = b.rng.guid();
                let content = format!("%PDF-1.4\n% Factuur {invoice_no} {name}\n");
                b.push("documents/Documents", json!({"ID": doc, "Division": division, "Subject": desc, "Type": 10, "DocumentDate": exact_date(date), "Account": customer.id, "SalesInvoiceNumber": invoice_no}));
                b.push("documents/DocumentAttachments", json!({"ID": att, "Division": division, "Document": doc, "FileName": format!("factuur-{invoice_no}.pdf"), "FileSize": content.len(), "Url": format!("/docs/SysAttachment.aspx?ID={att}"), "__content_base64": base64_encode(content.as_bytes())}));
            }
            // Payment: most are paid, some late, some partly, some never.
            let roll = b.rng.below(100);
            let pay_date = due + Duration::days(b.rng.range(-12, 45));
            let paid = match roll {
                0..=6 => 0,
                7..=10 => gross / 2,
                _ => gross,
            };
            if paid > 0 && pay_date <= today {
                b.entry(
                    pay_date,
                    "20",
                    40,
                    50,
                    &format!("Ontvangst {desc}"),
                    None,
                    &[
                        post("1100", paid),
                        Post {
                            account: Some(customer),
                            invoice: Some(invoice_no),
                            ..post("1300", -paid)
                        },
                    ],
                );
            }
        }
        // Purchase invoices.
        for _ in 0..(4 * scale) {
            let Some(date) = b.random_day(year, month) else {
                continue;
            };
            let supplier = &suppliers[b.rng.below(suppliers.len() as u64) as usize];
            let cost_gl = *b.rng.pick(&["4100", "4200", "4300", "7000"]);
            let net = b.rng.range(5_000, 250_000);
            purchase_no += 1;
            let cc = Some(b.rng.pick(&centres).clone());
            book_purchase(&mut b, date, supplier, cost_gl, net, purchase_no, None, cc);
        }
        // Contracts that bill the same amount on a fixed day: rent,
        // licences, insurance, and a lease that has ended.
        for (n, c) in contracts.iter().enumerate() {
            let month_no = year * 12 + month as i32;
            let runs = month_no >= c.from_month && month_no <= c.to_month;
            let due_this_month = (month_no - c.from_month) % c.every_months as i32 == 0;
            let Some(date) = NaiveDate::from_ymd_opt(year, month, c.day).filter(|d| *d <= today)
            else {
                continue;
            };
            if runs && due_this_month {
                purchase_no += 1;
                let supplier = &suppliers[n];
                let cc = Some(centres[2].clone());
                book_purchase(
                    &mut b,
                    date,
                    supplier,
                    c.gl,
                    c.net_cents,
                    purchase_no,
                    Some(c.description),
                    cc,
                );
            }
        }
        // Salaries and depreciation at month end.
        if let Some(end) = NaiveDate::from_ymd_opt(year, month, 25).filter(|d| *d <= today) {
            let salary = b.rng.range(800_000, 1_200_000) * scale as i64;
            b.entry(
                end,
                "20",
                40,
                50,
                "Salarissen",
                None,
                &[
                    Post {
                        cost_center: Some(centres[0].clone()),
                        ..post("4000", salary)
                    },
                    post("1100", -salary),
                ],
            );
            b.entry(
                end,
                "90",
                90,
                50,
                "Afschrijving inventaris",
                None,
                &[post("4800", 50_000), post("0290", -50_000)],
            );
        }
    }
    // A few unmatched bank lines on the suspense account, and two memorial
    // entries still in draft, for the period-close check.
    for n in 0..3 {
        let d = today - Duration::days(3 + n * 4);
        b.entry(
            d,
            "20",
            40,
            50,
            "Onbekende bijschrijving",
            None,
            &[
                post("1100", 12_345 * (n + 1)),
                post("1800", -12_345 * (n + 1)),
            ],
        );
    }
    for n in 0..2 {
        let d = today - Duration::days(1 + n);
        b.entry(
            d,
            "90",
            90,
            20,
            "Memoriaal concept",
            None,
            &[post("4300", 9_900), post("1800", -9_900)],
        );
    }
    // One from December of the first year, still unmatched: a suspense
    // balance that crosses the year end (and, when that year is closed,
    // sits in the next year's opening entry).
    if let Some(d) = NaiveDate::from_ymd_opt(start.year(), 12, 18).filter(|d| *d <= today) {
        b.entry(
            d,
            "20",
            40,
            50,
            "Onbekende bijschrijving",
            None,
            &[post("1100", 45_678), post("1800", -45_678)],
        );
    }
    if config.closed_years.closes(division) {
        for year in start.year()..today.year() {
            close_year(&mut b, year, config.seed);
        }
    }

    // Bank entries and lines, memorial entries, from the booked lines.
    let lines = b.lines.clone();
    let mut bank_entries: BTreeMap<(i64, i64), String> = BTreeMap::new();
    let mut entry_rows: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for l in &lines {
        entry_rows
            .entry(l["EntryID"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(l);
    }
    for (entry_id, ls) in &entry_rows {
        let Some(first) = ls.first() else { continue };
        let journal = first["JournalCode"].as_str().unwrap_or("");
        let year = first["FinancialYear"].as_i64().unwrap_or(0);
        let period = first["FinancialPeriod"].as_i64().unwrap_or(0);
        if journal == "20" {
            let header = bank_entries
                .entry((year, period))
                .or_insert_with(|| b.rng.guid())
                .clone();
            for l in ls.iter().filter(|l| l["GLAccountCode"] != "1100") {
                let amount = -l["AmountDC"].as_f64().unwrap_or(0.0);
                let id = b.rng.guid();
                b.push("financialtransaction/BankEntryLines", json!({"ID": id, "Division": division, "EntryID": header, "Date": l["Date"], "AmountDC": amount, "GLAccount": l["GLAccount"], "GLAccountCode": l["GLAccountCode"], "Account": l["Account"], "AccountName": l["AccountName"], "Description": l["Description"], "OurRef": l["InvoiceNumber"], "TransactionEntryID": entry_id}));
            }
        } else if journal == "90" {
            b.push("generaljournalentry/GeneralJournalEntries", json!({"EntryID": entry_id, "Division": division, "EntryNumber": first["EntryNumber"], "JournalCode": "90", "FinancialYear": year, "FinancialPeriod": period, "Description": first["Description"], "Status": first["Status"], "Created": first["Date"]}));
        }
    }
    for ((year, period), id) in bank_entries {
        b.push("financialtransaction/BankEntries", json!({"EntryID": id, "Division": division, "JournalCode": "20", "FinancialYear": year, "FinancialPeriod": period, "Currency": "EUR", "Status": 50}));
    }

    // Budgets: last year's actuals per P&L account and period, plus 5 %.
    let mut actual: BTreeMap<(String, i64, i64), i64> = BTreeMap::new();
    for l in &lines {
        let code = l["GLAccountCode"].as_str().unwrap_or("").to_owned();
        if code.starts_with('4') || code.starts_with('7') || code.starts_with('8') {
            let k = (
                code,
                l["FinancialYear"].as_i64().unwrap_or(0),
                l["FinancialPeriod"].as_i64().unwrap_or(0),
            );
            *actual.entry(k).or_default() +=
                (l["AmountDC"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
        }
    }
    for ((code, year, period), cents) in &actual {
        for target in [*year, *year + 1] {
            if target > i64::from(today.year()) {
                continue;
            }
            let id = b.rng.guid();
            let gl = b.gl_id(code);
            b.push("budget/Budgets", json!({"ID": id, "Division": division, "GLAccount": gl, "GLAccountCode": code, "ReportingYear": target, "ReportingPeriod": period, "AmountDC": (*cents * 105 / 100) as f64 / 100.0, "BudgetScenario": "Begroting", "Costcenter": Value::Null}));
        }
    }

    operational(&mut b, industry, &customers, &suppliers, scale);
    b.tables
        .insert("financialtransaction/TransactionLines", lines);
    Company {
        division,
        name: name.to_owned(),
        industry,
        entities: b.tables,
        recurring_purchases: contracts,
    }
}

/// Closes `year` as Exact's year-end closing does: its balance-sheet
/// balances, with the year's result moved into `0510 Onverdeelde winst`,
/// become the opening-balance entry (type 10, memorial journal) dated
/// 1 January of the next year in its period 0, where Exact keeps opening
/// balances; profit-and-loss accounts start the new year at zero. The
/// entry's ids come from a generator of their own, so closing a year
/// changes no other row.
fn close_year(b: &mut Books, year: i32, seed: u64) {
    let Some(first_day) = NaiveDate::from_ymd_opt(year + 1, 1, 1).filter(|d| *d <= b.today) else {
        return;
    };
    let mut balances: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut result = 0i64;
    for l in b
        .lines
        .iter()
        .filter(|l| l["FinancialYear"].as_i64() == Some(i64::from(year)))
    {
        let booked = l["GLAccountCode"].as_str().unwrap_or("");
        let Some(code) = CHART
            .iter()
            .map(|c| c.0)
            .chain([RETAINED.0])
            .find(|c| *c == booked)
        else {
            continue;
        };
        let cents = (l["AmountDC"].as_f64().unwrap_or(0.0) * 100.0).round() as i64;
        if is_balance_sheet(code) {
            *balances.entry(code).or_default() += cents;
        } else {
            result += cents;
        }
    }
    // The result (profit is a credit, negative) moves into equity.
    *balances.entry(RETAINED.0).or_default() += result;
    let posts: Vec<Post<'_>> = balances
        .into_iter()
        .filter(|(_, cents)| *cents != 0)
        .map(|(code, cents)| post(code, cents))
        .collect();
    if posts.is_empty() {
        return;
    }
    let own = Rng(seed ^ (b.division as u64).rotate_left(17) ^ u64::from(year.unsigned_abs()));
    let drawn = std::mem::replace(&mut b.rng, own);
    let entry_id = b.entry(
        first_day,
        "90",
        10,
        50,
        &format!("Beginbalans {} (afsluiting {year})", year + 1),
        None,
        &posts,
    );
    b.rng = drawn;
    for l in b
        .lines
        .iter_mut()
        .filter(|l| l["EntryID"] == entry_id.as_str())
    {
        l.insert("FinancialPeriod".into(), json!(0));
    }
}

/// Items, stock, prices, projects, hours, subscriptions, orders,
/// quotations, opportunities, assets and currencies.
fn operational(
    b: &mut Books,
    industry: Industry,
    customers: &[Relation],
    suppliers: &[Relation],
    scale: usize,
) {
    let division = b.division;
    let today = b.today;
    let products: &[&str] = match industry {
        Industry::Bakery => &[
            "Croissant",
            "Volkorenbrood",
            "Appeltaart",
            "Krentenbol",
            "Stroopwafel",
            "Tompouce",
        ],
        Industry::Construction => &[
            "Cement 25kg",
            "Bakstenen pallet",
            "Dakpannen",
            "Isolatieplaat",
            "Steigerhuur dag",
        ],
        Industry::ItConsultancy => &["Consultancy uur", "Licentie jaar", "Support bundel"],
        Industry::LawFirm => &["Advies uur", "Procesbegeleiding", "Contractreview"],
    };
    let mut items = Vec::new();
    for (n, p) in products
        .iter()
        .enumerate()
        .cycle()
        .take(products.len() * 3 * scale)
    {
        let id = b.rng.guid();
        let code = format!("ART{:04}", items.len() + 1);
        let cost = b.rng.range(50, 5_000);
        let stock = !matches!(industry, Industry::ItConsultancy | Industry::LawFirm);
        b.push("logistics/Items", json!({"ID": id, "Division": division, "Code": code, "Description": format!("{p} {}", n + 1), "IsSalesItem": true, "IsPurchaseItem": stock, "IsStockItem": stock, "CostPriceStandard": cost as f64 / 100.0, "StandardSalesPrice": (cost * 18 / 10) as f64 / 100.0, "Unit": "stuk", "ItemGroupCode": "ALG", "IsActive": true}));
        if stock {
            let in_stock = b.rng.range(0, 400) as f64;
            let (plan_in, plan_out) = (b.rng.range(0, 50) as f64, b.rng.range(0, 60) as f64);
            b.push("inventory/StockPositions", json!({"ItemId": id, "ItemCode": code, "ItemDescription": p, "InStock": in_stock, "PlanningIn": plan_in, "PlanningOut": plan_out, "ReorderPoint": 40.0, "Warehouse": "HOOFD", "Division": division}));
        }
        if stock {
            // The purchase price from the main supplier. The id is derived
            // from the item's, so the random sequence (and with it every
            // other generated row) stays as it was.
            let supplier = &suppliers[items.len() % suppliers.len()];
            let supplier_item = format!("5e11e500{}", &id[8..]);
            b.push("logistics/SupplierItem", json!({"ID": supplier_item, "Division": division, "Item": id, "ItemCode": code, "Supplier": supplier.id, "SupplierName": supplier.name, "PurchasePrice": cost as f64 / 100.0, "PurchaseCurrency": "EUR", "MainSupplier": true, "MinimumQuantity": 1.0}));
        }
        let price_id = b.rng.guid();
        b.push("logistics/SalesItemPrices", json!({"ID": price_id, "Division": division, "Item": id, "ItemCode": code, "Account": Value::Null, "Price": (cost * 18 / 10) as f64 / 100.0, "Currency": "EUR", "StartDate": exact_date(b.start), "EndDate": Value::Null}));
        items.push((id, code));
    }
    let has_projects = !matches!(industry, Industry::Bakery);
    if has_projects {
        for n in 0..(12 * scale) {
            let id = b.rng.guid();
            let customer = &customers[n % customers.len()];
            let start = b.start + Duration::days(b.rng.range(0, 500));
            let budget = b.rng.range(500_000, 8_000_000);
            b.push("project/Projects", json!({"ID": id, "Division": division, "Code": format!("P{:04}", n + 1), "Description": format!("Project {} {}", customer.name, n + 1), "Account": customer.id, "AccountName": customer.name, "Type": 2, "StartDate": exact_date(start), "EndDate": if n % 3 == 0 { exact_date(start + Duration::days(120)) } else { Value::Null }, "BudgetedAmount": budget as f64 / 100.0, "Manager": Value::Null}));
            for h in 0..12 {
                let date = start + Duration::days(h * 7);
                if date > today {
                    break;
                }
                let tid = b.rng.guid();
                let hours = b.rng.range(2, 8) as f64;
                b.push("project/TimeTransactions", json!({"ID": tid, "Division": division, "Date": exact_date(date), "Employee": format!("emp-{}", h % 4), "EmployeeFullName": EMPLOYEES[(h % 4) as usize], "Project": id, "ProjectCode": format!("P{:04}", n + 1), "Quantity": hours, "AmountFC": hours * 95.0, "HourStatus": if h < 10 { 20 } else { 1 }}));
            }
            let term = b.rng.guid();
            b.push("project/InvoiceTerms", json!({"ID": term, "Division": division, "Project": id, "Account": customer.id, "Amount": (budget / 2) as f64 / 100.0, "ExecutionFromDate": exact_date(start), "Description": "Termijn 1"}));
        }
    }
    if matches!(industry, Industry::ItConsultancy | Industry::LawFirm) {
        for n in 0..(10 * scale) {
            let id = b.rng.guid();
            let customer = &customers[(n * 7) % customers.len()];
            let monthly = b.rng.range(25_000, 300_000);
            let start = b.start + Duration::days(b.rng.range(0, 300));
            b.push("subscription/Subscriptions", json!({"EntryID": id, "Division": division, "OrderedBy": customer.id, "OrderedByName": customer.name, "StartDate": exact_date(start), "EndDate": if n % 4 == 0 { exact_date(start + Duration::days(365)) } else { Value::Null }, "Description": format!("Abonnement {}", n + 1), "Currency": "EUR", "InvoicingStartDate": exact_date(start), "SubscriptionType": "Maandelijks", "Cancelled": Value::Null}));
            let line = b.rng.guid();
            b.push("subscription/SubscriptionLines", json!({"ID": line, "Division": division, "EntryID": id, "Description": "Maandbedrag", "AmountDC": monthly as f64 / 100.0, "Quantity": 1.0, "UnitPrice": monthly as f64 / 100.0, "FromDate": exact_date(start)}));
        }
    }
    for n in 0..(20 * scale) {
        let customer = &customers[(n * 3) % customers.len()];
        let id = b.rng.guid();
        let date = today - Duration::days(b.rng.range(0, 200));
        let amount = b.rng.range(10_000, 900_000);
        b.push("salesorder/SalesOrders", json!({"OrderID": id, "Division": division, "OrderNumber": 7000 + n, "OrderDate": exact_date(date), "OrderedBy": customer.id, "OrderedByName": customer.name, "AmountDC": amount as f64 / 100.0, "Status": ORDER_STATUS[n % 4].0, "StatusDescription": ORDER_STATUS[n % 4].1, "DeliveryDate": exact_date(date + Duration::days(14))}));
    }
    for n in 0..(15 * scale) {
        let supplier = &suppliers[n % suppliers.len()];
        let id = b.rng.guid();
        let date = today - Duration::days(b.rng.range(0, 200));
        let amount = b.rng.range(10_000, 500_000) as f64 / 100.0;
        b.push("purchaseorder/PurchaseOrders", json!({"PurchaseOrderID": id, "Division": division, "OrderNumber": 9000 + n, "OrderDate": exact_date(date), "Supplier": supplier.id, "SupplierName": supplier.name, "AmountDC": amount, "OrderStatus": (10 + 10 * (n % 3)) as i64, "ReceiptDate": exact_date(date + Duration::days(10))}));
    }
    for n in 0..(15 * scale) {
        let customer = &customers[(n * 5) % customers.len()];
        let id = b.rng.guid();
        let date = today - Duration::days(b.rng.range(0, 180));
        let amount = b.rng.range(50_000, 2_000_000) as f64 / 100.0;
        b.push("crm/Quotations", json!({"QuotationID": id, "Division": division, "QuotationNumber": 300 + n, "QuotationDate": exact_date(date), "OrderAccount": customer.id, "OrderAccountName": customer.name, "AmountDC": amount, "Status": QUOTE_STATUS[n % 5].0, "StatusDescription": QUOTE_STATUS[n % 5].1, "CloseDate": exact_date(date + Duration::days(30))}));
    }
    let stages = [
        ("Lead", 10.0),
        ("Offerte", 40.0),
        ("Onderhandeling", 70.0),
        ("Gewonnen", 100.0),
        ("Verloren", 0.0),
    ];
    for n in 0..(25 * scale) {
        let customer = &customers[(n * 11) % customers.len()];
        let id = b.rng.guid();
        let (stage, prob) = stages[n % stages.len()];
        let status = match stage {
            "Gewonnen" => 2,
            "Verloren" => 3,
            _ => 1,
        };
        let close = today + Duration::days(b.rng.range(-60, 120));
        let amount = b.rng.range(100_000, 5_000_000) as f64 / 100.0;
        b.push("crm/Opportunities", json!({"ID": id, "Division": division, "Name": format!("Kans {}", n + 1), "Account": customer.id, "AccountName": customer.name, "AmountDC": amount, "Probability": prob / 100.0, "OpportunityStageDescription": stage, "OpportunityStatus": status, "ActionDate": exact_date(close - Duration::days(14)), "CloseDate": exact_date(close), "Owner": Value::Null}));
    }
    // Assets: one inventory asset depreciated monthly (matches the journal).
    let asset = b.rng.guid();
    b.push("assets/Assets", json!({"ID": asset, "Division": division, "Code": "MA01", "Description": "Inventaris en machines", "StartDate": exact_date(b.start), "PurchasePrice": 30_000.0, "ResidualValue": 0.0, "Status": 1, "AssetGroupCode": "INV", "DepreciationMethodCode": "LIN", "DepreciationPeriodMonths": 60}));
    let months = b.months();
    for (n, (year, month)) in months.iter().enumerate() {
        let id = b.rng.guid();
        b.push("assets/DepreciationSchedules", json!({"ID": id, "Division": division, "Asset": asset, "AssetCode": "MA01", "Year": year, "Period": month, "Amount": 500.0, "BookValueAfter": 30_000.0 - 500.0 * (n as f64 + 1.0), "Status": if NaiveDate::from_ymd_opt(*year, *month, 25).is_some_and(|d| d <= b.today) { 50 } else { 20 }}));
    }
    for (code, desc) in [
        ("EUR", "Euro"),
        ("USD", "Amerikaanse dollar"),
        ("GBP", "Brits pond"),
    ] {
        b.push("general/Currencies", json!({"Code": code, "Description": desc, "Division": division, "AmountPrecision": 0.01, "PricePrecision": 0.0001, "Active": true}));
    }
    for (year, month) in months {
        for (target, base) in [("USD", 1.08), ("GBP", 0.85)] {
            let id = b.rng.guid();
            let wobble = (b.rng.range(-300, 300) as f64) / 10_000.0;
            b.push("financial/ExchangeRates", json!({"ID": id, "Division": division, "SourceCurrency": "EUR", "TargetCurrency": target, "Rate": ((base + wobble) * 10_000.0_f64).round() / 10_000.0, "StartDate": exact_date(NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(b.today))}));
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The demo companies: division, name, industry. The last one's name is
/// hostile on purpose (Exact lets a user name an administration anything):
/// only the login `nieuw` sees it, and the portal must show it as text.
pub const COMPANIES: [(i64, &str, Industry); 5] = [
    (
        1_000_001,
        "Bakkerij De Gouden Croissant B.V.",
        Industry::Bakery,
    ),
    (
        1_000_002,
        "TechVision Consultancy B.V.",
        Industry::ItConsultancy,
    ),
    (
        1_000_003,
        "Van der Berg & Partners Advocaten",
        Industry::LawFirm,
    ),
    (
        1_000_004,
        "Bouwbedrijf De Fundatie B.V.",
        Industry::Construction,
    ),
    (
        1_000_005,
        "<script>alert(1)</script> Holding B.V.",
        Industry::ItConsultancy,
    ),
];

/// Generates one company of [`COMPANIES`]; each is independent of the
/// others, so they can be generated on demand.
pub fn generate_company(config: &DataConfig, division: i64) -> Option<Company> {
    let index = COMPANIES.iter().position(|c| c.0 == division)?;
    let (division, name, industry) = COMPANIES[index];
    Some(company(config, index as u64, division, name, industry))
}

/// The sandbox's logins.
pub fn users() -> Vec<SandboxUser> {
    vec![
        SandboxUser {
            user_id: "9d2f7a1e-5b3c-4e8f-a6d1-0c2b3e4f5a61".into(),
            username: "demo".into(),
            password: "demo".into(),
            full_name: "Jan de Bakker".into(),
            email: "jan@goudencroissant.example".into(),
            divisions: vec![1_000_001, 1_000_002, 1_000_003],
            current_division: 1_000_001,
        },
        SandboxUser {
            user_id: "3e8a6c2d-7f1b-4d9e-b5a2-8c4d6e2f1b07".into(),
            username: "other".into(),
            password: "other".into(),
            full_name: "Eva van der Berg".into(),
            email: "eva@fundatie.example".into(),
            divisions: vec![1_000_004],
            current_division: 1_000_004,
        },
        // A bookkeeper nobody has connected yet: the portal's browser tests
        // sign up as this login. Four administrations, more than the free
        // plan allows, one of them with a hostile name.
        SandboxUser {
            user_id: "6b1f0e3a-2c7d-4a58-9e41-d3c5b7a90f28".into(),
            username: "nieuw".into(),
            password: "nieuw".into(),
            full_name: "Sanne Jansen".into(),
            email: "sanne@administratiekantoor.example".into(),
            divisions: vec![1_000_002, 1_000_003, 1_000_004, 1_000_005],
            current_division: 1_000_002,
        },
    ]
}

/// Generates the whole dataset for a configuration.
pub fn generate(config: &DataConfig) -> Dataset {
    let companies = COMPANIES
        .iter()
        .filter_map(|c| generate_company(config, c.0))
        .collect();
    Dataset {
        users: users(),
        companies,
        config: config.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ClosedYears;
    use super::*;

    fn config() -> DataConfig {
        DataConfig {
            seed: 7,
            size: Size::Small,
            today: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            closed_years: ClosedYears::All,
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let a = generate(&config());
        let b = generate(&config());
        for (x, y) in a.companies.iter().zip(&b.companies) {
            assert_eq!(x.entities, y.entities);
        }
        let other = generate(&DataConfig {
            seed: 8,
            ..config()
        });
        assert_ne!(a.companies[0].entities, other.companies[0].entities);
    }

    #[test]
    fn every_entry_balances_and_lists_cross_page_boundaries() {
        for c in generate(&config()).companies {
            let lines = &c.entities["financialtransaction/TransactionLines"];
            let mut per: BTreeMap<&str, i64> = BTreeMap::new();
            for l in lines {
                *per.entry(l["EntryID"].as_str().unwrap()).or_default() +=
                    (l["AmountDC"].as_f64().unwrap() * 100.0).round() as i64;
            }
            assert!(per.values().all(|v| *v == 0), "{}", c.name);
            assert!(c.entities["crm/Accounts"].len() > 60);
            assert!(c.entities["salesinvoice/SalesInvoices"].len() > 60);
        }
    }

    fn cents(v: &Value) -> i64 {
        (v.as_f64().unwrap() * 100.0).round() as i64
    }

    #[test]
    fn closing_a_year_adds_only_its_opening_entry() {
        let open = generate(&DataConfig {
            closed_years: ClosedYears::None,
            ..config()
        });
        let closed = generate(&config());
        for (o, c) in open.companies.iter().zip(&closed.companies) {
            for (table, rows) in &o.entities {
                let mut theirs = c.entities[table].clone();
                if *table == "financialtransaction/TransactionLines" {
                    theirs.retain(|l| l["FinancialPeriod"] != 0);
                } else if *table == "generaljournalentry/GeneralJournalEntries" {
                    theirs.retain(|e| e["FinancialPeriod"] != 0);
                }
                assert_eq!(rows, &theirs, "{} {table}", c.name);
            }
        }
    }

    #[test]
    fn a_closed_years_balances_and_result_open_the_next_year_in_period_0() {
        let d = generate(&config());
        for c in &d.companies {
            let lines = &c.entities["financialtransaction/TransactionLines"];
            let opening: Vec<&Row> = lines.iter().filter(|l| l["FinancialPeriod"] == 0).collect();
            assert!(!opening.is_empty(), "{}", c.name);
            assert!(opening.iter().all(|l| {
                l["Type"] == 10 && l["FinancialYear"] == 2026 && l["JournalCode"] == "90"
            }));
            assert_eq!(
                opening.iter().map(|l| cents(&l["AmountDC"])).sum::<i64>(),
                0
            );
            let mut closing: BTreeMap<String, i64> = BTreeMap::new();
            let mut result = 0;
            for l in lines.iter().filter(|l| l["FinancialYear"] == 2025) {
                let code = l["GLAccountCode"].as_str().unwrap();
                if is_balance_sheet(code) {
                    *closing.entry(code.to_owned()).or_default() += cents(&l["AmountDC"]);
                } else {
                    result += cents(&l["AmountDC"]);
                }
            }
            *closing.entry("0510".into()).or_default() += result;
            closing.retain(|_, v| *v != 0);
            let booked: BTreeMap<String, i64> = opening
                .iter()
                .map(|l| {
                    (
                        l["GLAccountCode"].as_str().unwrap().to_owned(),
                        cents(&l["AmountDC"]),
                    )
                })
                .collect();
            assert_eq!(booked, closing, "{}", c.name);
            assert!(result != 0 && booked.contains_key("1800"), "{}", c.name);
        }
        // The default closes the IT consultancy's year only.
        let demo = generate(&crate::default_data());
        for c in &demo.companies {
            let has = c.entities["financialtransaction/TransactionLines"]
                .iter()
                .any(|l| l["FinancialPeriod"] == 0);
            assert_eq!(has, c.division == ClosedYears::DEMO_DIVISION, "{}", c.name);
        }
    }

    #[test]
    fn the_closed_years_option_reads_its_three_values() {
        assert_eq!("none".parse(), Ok(ClosedYears::None));
        assert_eq!("demo".parse(), Ok(ClosedYears::Demo));
        assert_eq!("all".parse(), Ok(ClosedYears::All));
        assert!("2025".parse::<ClosedYears>().is_err());
        assert!(ClosedYears::Demo.closes(ClosedYears::DEMO_DIVISION));
        assert!(!ClosedYears::Demo.closes(1_000_001));
        assert!(!ClosedYears::None.closes(ClosedYears::DEMO_DIVISION));
    }

    #[test]
    fn users_see_only_their_own_companies() {
        let d = generate(&config());
        let demo = &d.users[0];
        let other = &d.users[1];
        assert!(demo.divisions.iter().all(|x| !other.divisions.contains(x)));
        assert_eq!(d.companies.len(), COMPANIES.len());
    }
}
