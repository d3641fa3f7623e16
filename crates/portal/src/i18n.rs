//! The portal's two languages: Dutch at `/`, English under `/en/`. Every
//! public page has one path per language; the texts live here, beside the
//! one set of templates, so a page cannot exist in one language only.

/// A page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

impl Lang {
    pub const fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    /// The other language (for the switch in the header).
    pub const fn other(self) -> Lang {
        match self {
            Lang::Nl => Lang::En,
            Lang::En => Lang::Nl,
        }
    }

    pub const fn texts(self) -> &'static Texts {
        match self {
            Lang::Nl => &NL,
            Lang::En => &EN,
        }
    }
}

/// The public pages, each with its Dutch and English path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Home,
    Security,
    Pricing,
    Tools,
    Setup,
    Demo,
    Status,
}

impl Page {
    pub const ALL: [Page; 7] = [
        Page::Home,
        Page::Security,
        Page::Pricing,
        Page::Tools,
        Page::Setup,
        Page::Demo,
        Page::Status,
    ];

    pub const fn path(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Page::Home, Lang::Nl) => "/",
            (Page::Home, Lang::En) => "/en/",
            (Page::Security, Lang::Nl) => "/veiligheid",
            (Page::Security, Lang::En) => "/en/security",
            (Page::Pricing, Lang::Nl) => "/prijzen",
            (Page::Pricing, Lang::En) => "/en/pricing",
            (Page::Tools, Lang::Nl) => "/tools",
            (Page::Tools, Lang::En) => "/en/tools",
            (Page::Setup, Lang::Nl) => "/installeren",
            (Page::Setup, Lang::En) => "/en/setup",
            (Page::Demo, Lang::Nl) => "/demo",
            (Page::Demo, Lang::En) => "/en/demo",
            (Page::Status, Lang::Nl) => "/status",
            (Page::Status, Lang::En) => "/en/status",
        }
    }

    /// The page and language a path names (`/en` counts as `/en/`).
    pub fn from_path(path: &str) -> Option<(Page, Lang)> {
        let path = if path == "/en" { "/en/" } else { path };
        Page::ALL.into_iter().find_map(|p| {
            [Lang::Nl, Lang::En]
                .into_iter()
                .find(|l| p.path(*l) == path)
                .map(|l| (p, l))
        })
    }

    pub const fn title(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Page::Home, Lang::Nl) => "Praat met je Boekhouding",
            (Page::Home, Lang::En) => "Talk to your bookkeeping",
            (Page::Security, Lang::Nl) => "Veiligheid en privacy",
            (Page::Security, Lang::En) => "Security and privacy",
            (Page::Pricing, Lang::Nl) => "Prijzen",
            (Page::Pricing, Lang::En) => "Pricing",
            (Page::Tools, Lang::Nl) => "Wat je assistent kan vragen",
            (Page::Tools, Lang::En) => "What your assistant can ask",
            (Page::Setup, Lang::Nl) => "Installeren",
            (Page::Setup, Lang::En) => "Set-up",
            (Page::Demo, Lang::Nl) => "Probeer het zonder Exact",
            (Page::Demo, Lang::En) => "Try it without Exact",
            (Page::Status, Lang::Nl) => "Status",
            (Page::Status, Lang::En) => "Status",
        }
    }

    /// Its short name in the navigation.
    pub const fn nav(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Page::Home, _) => "Home",
            (Page::Security, Lang::Nl) => "Veiligheid",
            (Page::Security, Lang::En) => "Security",
            (Page::Pricing, Lang::Nl) => "Prijzen",
            (Page::Pricing, Lang::En) => "Pricing",
            (Page::Tools, _) => "Tools",
            (Page::Setup, Lang::Nl) => "Installeren",
            (Page::Setup, Lang::En) => "Set-up",
            (Page::Demo, _) => "Demo",
            (Page::Status, _) => "Status",
        }
    }
}

/// A text field of [`Texts`]: one string or a list of them, so the test
/// of the two languages can read every field.
pub trait TextField {
    fn strings(&self) -> Vec<&'static str>;
}

impl TextField for &'static str {
    fn strings(&self) -> Vec<&'static str> {
        vec![*self]
    }
}

impl<const N: usize> TextField for [&'static str; N] {
    fn strings(&self) -> Vec<&'static str> {
        self.to_vec()
    }
}

/// Declares [`Texts`] and the list of its fields by name.
macro_rules! texts {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// Every text of the portal, public and signed-in pages alike. A
        /// text with `{0}`, `{1}`… is filled in by [`fill`].
        #[derive(Debug)]
        pub struct Texts {
            $($(#[$doc])* pub $name: $ty,)*
        }

        impl Texts {
            /// Every field by name, for the tests of the two languages.
            pub fn fields(&self) -> Vec<(&'static str, Vec<&'static str>)> {
                vec![$((stringify!($name), TextField::strings(&self.$name)),)*]
            }
        }
    };
}

texts! {
    skip: &'static str,
    nav_label: &'static str,
    other_language: &'static str,
    sign_in: &'static str,
    footer: &'static str,
    tagline: &'static str,
    intro: &'static str,
    start: &'static str,
    try_demo: &'static str,
    how_title: &'static str,
    how_steps: [&'static str; 3],
    examples_title: &'static str,
    examples: [&'static str; 4],
    safe_title: &'static str,
    per_month: &'static str,
    on_request: &'static str,
    calls_month: &'static str,
    administrations: &'static str,
    api_keys: &'static str,
    unlimited: &'static str,
    tools_intro: &'static str,
    tool_name: &'static str,
    tool_answers: &'static str,
    setup_intro: &'static str,
    setup_terminal: &'static str,
    setup_file: &'static str,
    setup_connector: &'static str,
    setup_key_hint: &'static str,
    demo_intro: &'static str,
    demo_company: &'static str,
    demo_key: &'static str,
    demo_url: &'static str,
    status_intro: &'static str,
    status_service: &'static str,
    status_state: &'static str,
    status_version: &'static str,
    status_ok: &'static str,
    status_down: &'static str,
    not_found: &'static str,
    back_home: &'static str,
    copy: &'static str,
    // Dates as chrono formats: the reset date, a key's last use, the
    // activity table.
    date_format: &'static str,
    date_time_format: &'static str,
    short_date_time_format: &'static str,
    // The header on signed-in pages.
    dashboard: &'static str,
    switch_language_label: &'static str,
    // Message pages.
    unavailable_title: &'static str,
    unavailable_text: &'static str,
    too_many_title: &'static str,
    too_many_text: &'static str,
    unknown_region_title: &'static str,
    unknown_region_text: &'static str,
    choose_again: &'static str,
    sign_in_again: &'static str,
    login_failed_title: &'static str,
    consent_denied: &'static str,
    exact_aborted: &'static str,
    callback_incomplete: &'static str,
    expired_title: &'static str,
    expired_text: &'static str,
    code_refused_title: &'static str,
    code_refused_text: &'static str,
    login_held_title: &'static str,
    login_held_text: &'static str,
    no_email_title: &'static str,
    no_email_text: &'static str,
    refused_title: &'static str,
    refused_text: &'static str,
    to_dashboard: &'static str,
    account_deleted_title: &'static str,
    account_deleted_text: &'static str,
    // The region choice.
    connect_intro: &'static str,
    region_label: &'static str,
    connect_after: &'static str,
    // The first-run page and a new key.
    welcome_title: &'static str,
    first_key_name: &'static str,
    found_title: &'static str,
    active: &'static str,
    /// `{0}` plan, `{1}` administrations, `{2}` questions.
    plan_note: &'static str,
    key_title: &'static str,
    key_once: &'static str,
    setup_title: &'static str,
    ask_title: &'static str,
    key_created_title: &'static str,
    back_to_dashboard: &'static str,
    // The dashboard.
    /// `{0}` the e-mail address.
    signed_in_as: &'static str,
    notice_revoked: &'static str,
    notice_renamed: &'static str,
    notice_toggled: &'static str,
    notice_default: &'static str,
    notice_saved: &'static str,
    plan_title: &'static str,
    /// `{0}` used, `{1}` limit, `{2}` reset date.
    usage_capped: &'static str,
    /// `{0}` used.
    usage_unlimited: &'static str,
    upgrade_label: &'static str,
    per_day_title: &'static str,
    /// `{0}` used.
    per_day_desc: &'static str,
    per_tool_title: &'static str,
    per_tool_desc: &'static str,
    no_usage: &'static str,
    connections_title: &'static str,
    connection_active: &'static str,
    connection_retrying: &'static str,
    connection_expired: &'static str,
    /// `{0}` date and time.
    last_refreshed: &'static str,
    reconnect_label: &'static str,
    add_connection: &'static str,
    admins_title: &'static str,
    /// `{0}` the limit.
    admins_limit: &'static str,
    admin_label: &'static str,
    state_label: &'static str,
    actions_label: &'static str,
    admin_on: &'static str,
    admin_off: &'static str,
    /// Switched on, but beyond what the plan serves now.
    admin_unserved: &'static str,
    default_label: &'static str,
    switch_on: &'static str,
    switch_off: &'static str,
    make_default: &'static str,
    key_name_label: &'static str,
    key_start_label: &'static str,
    key_used_label: &'static str,
    key_never_used: &'static str,
    rename_label: &'static str,
    revoke_label: &'static str,
    new_key_label: &'static str,
    create_label: &'static str,
    activity_title: &'static str,
    time_label: &'static str,
    outcome_label: &'static str,
    client_label: &'static str,
    outcome_ok: &'static str,
    outcome_tool_error: &'static str,
    outcome_invalid: &'static str,
    outcome_limit: &'static str,
    outcome_forbidden: &'static str,
    outcome_upstream: &'static str,
    outcome_other: &'static str,
    prefs_title: &'static str,
    language_label: &'static str,
    usage_mails_label: &'static str,
    product_mails_label: &'static str,
    save_label: &'static str,
    account_title: &'static str,
    signout_label: &'static str,
    /// `{0}` the confirmation word.
    delete_label: &'static str,
    delete_button: &'static str,
    // What a refused dashboard action says.
    not_your_administration: &'static str,
    /// `{0}` the limit.
    administration_limit: &'static str,
    /// `{0}` the time it may be switched on again.
    cooling_down: &'static str,
    active_elsewhere: &'static str,
    /// Before the Exact login an administration is read through.
    via: &'static str,
    default_needs_active: &'static str,
    key_name_invalid: &'static str,
    /// `{0}` the limit.
    key_limit: &'static str,
    /// `{0}` the confirmation word.
    delete_unconfirmed: &'static str,
    // The OAuth consent page, its errors, and the dashboard's apps.
    consent_title: &'static str,
    /// `{0}` the client's name, `{1}` the host it returns to.
    consent_intro: &'static str,
    consent_admins: &'static str,
    consent_read_only: &'static str,
    consent_allow: &'static str,
    consent_deny: &'static str,
    consent_none_active: &'static str,
    consent_choose_one: &'static str,
    oauth_error_title: &'static str,
    /// `{0}` what was wrong (the OAuth error description).
    oauth_error_text: &'static str,
    apps_title: &'static str,
    apps_none: &'static str,
    /// `{0}` when.
    app_last_used: &'static str,
    app_reads: &'static str,
    app_revoke: &'static str,
    notice_app_revoked: &'static str,
    // Paying for a plan.
    billing_unavailable_title: &'static str,
    billing_unavailable_text: &'static str,
    upgrade_title: &'static str,
    /// `{0}` the plan, `{1}` its monthly questions.
    upgrade_text: &'static str,
    upgrade_pay: &'static str,
    paid_title: &'static str,
    paid_text: &'static str,
    /// `{0}` the plan.
    upgrade_to: &'static str,
    manage_subscription: &'static str,
    /// `{0}` the plan, `{1}` the date.
    plan_changes: &'static str,
    notice_checkout_cancelled: &'static str,
    /// `{0}` a smaller plan, `{1}` what it would change.
    downgrade_note: &'static str,
    /// `{0}` administrations' names.
    would_pause: &'static str,
    /// `{0}` keys' names.
    would_stop: &'static str,
    nothing_changes: &'static str,
}

/// Fills `{0}`, `{1}`… of a text with `args`.
pub fn fill(text: &str, args: &[&str]) -> String {
    let mut out = text.to_owned();
    for (i, arg) in args.iter().enumerate() {
        out = out.replace(&format!("{{{i}}}"), arg);
    }
    out
}

pub static NL: Texts = Texts {
    skip: "Naar de inhoud",
    nav_label: "Hoofdmenu",
    other_language: "English",
    sign_in: "Inloggen met Exact Online",
    footer: "Praat met je Boekhouding leest je Exact Online-boekhouding, alleen lezen, nooit schrijven.",
    tagline: "Stel je AI-assistent vragen over je eigen boekhouding.",
    intro: "Koppel je Exact Online-administratie één keer, en vraag daarna in Claude, ChatGPT, Cursor of VS Code welke facturen openstaan, hoe de omzet per maand loopt of hoeveel btw je dit kwartaal betaalt. Het antwoord komt rechtstreeks uit je boeken.",
    start: "Koppel Exact Online",
    try_demo: "Probeer eerst de demo",
    how_title: "Zo werkt het",
    how_steps: [
        "Log in met je Exact Online-account en kies welke administraties je assistent mag lezen.",
        "Plak de regel die je krijgt in je assistent (of koppel met één klik in claude.ai en ChatGPT).",
        "Stel je vraag in gewone taal; de assistent haalt de cijfers op via onze tools.",
    ],
    examples_title: "Vragen die je kunt stellen",
    examples: [
        "Welke facturen zijn over de vervaldatum, en bij wie?",
        "Hoe verhoudt de omzet van dit kwartaal zich tot vorig jaar?",
        "Hoeveel btw moeten we dit kwartaal afdragen?",
        "Waarom is het resultaat in oktober gedaald?",
    ],
    safe_title: "Veilig",
    per_month: "per maand, excl. btw",
    on_request: "op aanvraag",
    calls_month: "vragen aan je boekhouding per maand",
    administrations: "administraties",
    api_keys: "API-sleutels",
    unlimited: "onbeperkt",
    tools_intro: "Deze lijst komt uit dezelfde definities die de MCP-server aan je assistent geeft; alle tools lezen alleen.",
    tool_name: "Tool",
    tool_answers: "Wat het beantwoordt",
    setup_intro: "Na het koppelen krijg je in het dashboard een API-sleutel. Kies hieronder je assistent; de voorbeelden gebruiken een voorbeeldsleutel.",
    setup_terminal: "Voer uit in een terminal:",
    setup_file: "Zet dit in het bestand",
    setup_connector: "Voeg een connector toe met deze URL; je logt dan in met Exact Online, zonder sleutel:",
    setup_key_hint: "Vervang de voorbeeldsleutel door je eigen sleutel uit het dashboard.",
    demo_intro: "Vier demobedrijven met een volledig jaar boekhouding. Gebruik een demosleutel als Bearer-sleutel of open de URL direct in een assistent die alleen een URL kent. Er wordt niets opgeslagen en niets meegeteld.",
    demo_company: "Bedrijf",
    demo_key: "Demosleutel",
    demo_url: "URL zonder sleutel",
    status_intro: "De actuele gezondheid van de drie onderdelen.",
    status_service: "Onderdeel",
    status_state: "Toestand",
    status_version: "Versie",
    status_ok: "werkt",
    status_down: "storing",
    not_found: "Deze pagina bestaat niet.",
    back_home: "Terug naar de startpagina",
    copy: "Kopiëren",
    date_format: "%d-%m-%Y",
    date_time_format: "%d-%m-%Y %H:%M",
    short_date_time_format: "%d-%m %H:%M",
    dashboard: "Dashboard",
    switch_language_label: "Taal van het portaal",
    unavailable_title: "Even niet beschikbaar",
    unavailable_text: "De dienst is tijdelijk niet beschikbaar. Probeer het over een minuut opnieuw.",
    too_many_title: "Even wachten",
    too_many_text: "Er kwamen te veel aanvragen van je adres binnen een minuut. Probeer het over een minuut opnieuw.",
    unknown_region_title: "Onbekende Exact-site",
    unknown_region_text: "Deze Exact Online-site kennen we niet. Kies er een uit de lijst.",
    choose_again: "Opnieuw kiezen",
    sign_in_again: "Opnieuw inloggen",
    login_failed_title: "Inloggen niet gelukt",
    consent_denied: "Je hebt in Exact Online geen toestemming gegeven. Zonder toestemming kunnen we je boekhouding niet lezen; je kunt het altijd opnieuw proberen.",
    exact_aborted: "Exact Online heeft het inloggen afgebroken. Probeer het opnieuw.",
    callback_incomplete: "Deze pagina hoort bij het inloggen met Exact Online en mist gegevens. Begin opnieuw.",
    expired_title: "Deze inloglink is verlopen",
    expired_text: "Deze inlogpoging is verlopen, al gebruikt, of in een andere browser begonnen. Begin opnieuw; het duurt maar een minuut.",
    code_refused_title: "Exact Online weigerde de inlogcode",
    code_refused_text: "De inlogcode van Exact Online is verlopen of al gebruikt. Begin opnieuw.",
    login_held_title: "Deze Exact-login hoort bij een ander account",
    login_held_text: "Je bent bij Exact Online ingelogd met een login die al aan een ander account van Praat met je Boekhouding gekoppeld is. Log hier uit en log in met die Exact-login om dat account te gebruiken, of kies bij Exact Online een andere login.",
    no_email_title: "Geen e-mailadres",
    no_email_text: "Exact Online gaf geen e-mailadres voor dit account; dat hebben we nodig om je te kunnen bereiken.",
    refused_title: "Verzoek geweigerd",
    refused_text: "Dit formulier kwam niet van deze site of is verlopen. Open het dashboard opnieuw en probeer het nog eens.",
    to_dashboard: "Naar het dashboard",
    account_deleted_title: "Account verwijderd",
    account_deleted_text: "Je account en alles wat we van je bewaarden zijn verwijderd, je Exact-tokens eerst. Je API-sleutels en sessies werken niet meer.",
    connect_intro: "Je logt in met je eigen Exact Online-account; wij krijgen nooit je wachtwoord. Kies waar je administratie staat.",
    region_label: "Exact Online-site",
    connect_after: "Na het inloggen kies je welke administraties je assistent mag lezen.",
    welcome_title: "Welkom",
    first_key_name: "Eerste sleutel",
    found_title: "Gevonden administraties",
    active: "actief",
    plan_note: "Je gebruikt het {0}-abonnement: {1} administraties tegelijk actief, {2} vragen per maand. Je kiest de administraties in het dashboard.",
    key_title: "Je API-sleutel",
    key_once: "Kopieer hem nu: we bewaren alleen een hash en kunnen hem je niet nog eens laten zien.",
    setup_title: "Koppel je assistent",
    ask_title: "Stel je eerste vraag",
    key_created_title: "Nieuwe API-sleutel",
    back_to_dashboard: "Terug naar het dashboard",
    signed_in_as: "Ingelogd als {0}",
    notice_revoked: "De sleutel is ingetrokken; hij werkt vanaf nu niet meer.",
    notice_renamed: "De sleutel heeft een nieuwe naam.",
    notice_toggled: "De administratie is bijgewerkt.",
    notice_default: "Dit is nu je standaardadministratie.",
    notice_saved: "Je voorkeuren zijn opgeslagen.",
    plan_title: "Abonnement en gebruik",
    usage_capped: "{0} van {1} vragen deze maand; de teller begint opnieuw op {2}",
    usage_unlimited: "{0} vragen deze maand",
    upgrade_label: "Abonnementen vergelijken",
    per_day_title: "Vragen per dag deze maand",
    per_day_desc: "{0} vragen in totaal deze maand",
    per_tool_title: "Vragen per tool deze maand",
    per_tool_desc: "De meest gebruikte tools, met het aantal vragen",
    no_usage: "Nog geen vragen deze maand.",
    connections_title: "Koppelingen met Exact Online",
    connection_active: "werkt",
    connection_retrying: "tijdelijke storing, we proberen het automatisch opnieuw",
    connection_expired: "verlopen: log opnieuw in bij Exact Online",
    last_refreshed: "laatst vernieuwd {0}",
    reconnect_label: "Opnieuw koppelen",
    add_connection: "Nog een Exact Online-login of -site koppelen",
    admins_title: "Administraties",
    admins_limit: "Je abonnement staat {0} actieve administraties toe. Een uitgezette administratie kan na een uur weer aan.",
    admin_label: "Administratie",
    state_label: "Toestand",
    actions_label: "Acties",
    admin_on: "aan",
    admin_off: "uit",
    admin_unserved: "aan, maar niet in je abonnement",
    default_label: "standaard",
    switch_on: "Aanzetten",
    switch_off: "Uitzetten",
    make_default: "Maak standaard",
    key_name_label: "Naam",
    key_start_label: "Begint met",
    key_used_label: "Laatst gebruikt",
    key_never_used: "nog niet gebruikt",
    rename_label: "Hernoemen",
    revoke_label: "Intrekken",
    new_key_label: "Naam van een nieuwe sleutel",
    create_label: "Sleutel maken",
    activity_title: "Recente vragen",
    time_label: "Tijd (UTC)",
    outcome_label: "Uitkomst",
    client_label: "Assistent",
    outcome_ok: "gelukt",
    outcome_tool_error: "fout in de vraag",
    outcome_invalid: "ongeldige invoer",
    outcome_limit: "limiet bereikt",
    outcome_forbidden: "geen toegang",
    outcome_upstream: "Exact-storing",
    outcome_other: "storing",
    prefs_title: "Voorkeuren",
    language_label: "Taal van het portaal en de e-mails",
    usage_mails_label: "Mail me bij 80 % en 100 % van mijn maandlimiet",
    product_mails_label: "Mail me over nieuwe functies",
    save_label: "Opslaan",
    account_title: "Account",
    signout_label: "Uitloggen",
    delete_label: "Account verwijderen: typ {0} om te bevestigen",
    delete_button: "Account definitief verwijderen",
    not_your_administration: "Deze administratie hoort niet bij je account.",
    administration_limit: "Je abonnement staat {0} actieve administraties toe. Zet er eerst een uit, of kies een groter abonnement.",
    cooling_down: "Deze administratie is net uitgezet; ze kan weer aan vanaf {0}.",
    active_elsewhere: "Deze administratie staat al aan via een andere Exact-login. Zet die eerst uit als je haar via deze login wilt lezen.",
    via: "via",
    default_needs_active: "Alleen een administratie die aan staat kan de standaard zijn.",
    key_name_invalid: "Geef de sleutel een naam van 1 tot 100 tekens.",
    key_limit: "Je abonnement staat {0} actieve sleutels toe. Trek er eerst een in, of kies een groter abonnement.",
    delete_unconfirmed: "Typ {0} om het verwijderen te bevestigen; er is niets verwijderd.",
    consent_title: "Een assistent toegang geven",
    consent_intro: "{0} vraagt om je boekhouding te mogen lezen. Na je toestemming gaat je browser terug naar {1}.",
    consent_admins: "Welke administraties mag deze assistent lezen?",
    consent_read_only: "Alleen lezen: de assistent kan niets boeken of wijzigen. Je trekt de toegang in wanneer je wilt, in het dashboard.",
    consent_allow: "Toestaan",
    consent_deny: "Weigeren",
    consent_none_active: "Er staat nog geen administratie aan. Zet er een aan in het dashboard en probeer het daarna opnieuw vanuit je assistent.",
    consent_choose_one: "Kies minstens één administratie die deze assistent mag lezen.",
    oauth_error_title: "Deze koppeling kan niet doorgaan",
    oauth_error_text: "Je assistent stuurde een aanvraag die we niet aannemen ({0}). Probeer het opnieuw vanuit je assistent; lukt het dan niet, neem contact op met de maker ervan.",
    apps_title: "Gekoppelde assistenten",
    apps_none: "Nog geen assistent gekoppeld met inloggen (OAuth).",
    app_last_used: "laatst gebruikt {0}",
    app_reads: "leest",
    app_revoke: "Toegang intrekken",
    notice_app_revoked: "De toegang van die assistent is ingetrokken.",
    billing_unavailable_title: "Betalen lukt nu even niet",
    billing_unavailable_text: "We konden Stripe, onze betaalpartner, niet bereiken. Er is niets betaald of veranderd; probeer het over een paar minuten opnieuw.",
    upgrade_title: "Meer vragen per maand",
    upgrade_text: "Met {0} stel je {1} vragen per maand. Je betaalt veilig bij Stripe; het nieuwe abonnement gaat direct in.",
    upgrade_pay: "Verder naar betalen",
    paid_title: "Bedankt voor je betaling",
    paid_text: "Stripe heeft je betaling ontvangen. Je nieuwe abonnement gaat in zodra Stripe het ons bevestigt, meestal binnen een paar seconden.",
    upgrade_to: "Overstappen naar {0}",
    manage_subscription: "Abonnement beheren",
    plan_changes: "Je abonnement wordt {0} op {1}.",
    notice_checkout_cancelled: "Het betalen is afgebroken; er is niets veranderd.",
    downgrade_note: "Stap je over naar {0}, dan: {1}.",
    would_pause: "worden deze administraties niet meer gelezen: {0}",
    would_stop: "stoppen deze sleutels (de nieuwste eerst): {0}",
    nothing_changes: "blijven al je administraties en sleutels werken",
};

pub static EN: Texts = Texts {
    skip: "Skip to content",
    nav_label: "Main menu",
    other_language: "Nederlands",
    sign_in: "Sign in with Exact Online",
    footer: "Praat met je Boekhouding reads your Exact Online books; it only reads, never writes.",
    tagline: "Ask your AI assistant about your own books.",
    intro: "Connect your Exact Online administration once, then ask Claude, ChatGPT, Cursor or VS Code which invoices are open, how revenue runs month by month or how much VAT you owe this quarter. The answer comes straight from your books.",
    start: "Connect Exact Online",
    try_demo: "Try the demo first",
    how_title: "How it works",
    how_steps: [
        "Sign in with your Exact Online account and choose which administrations your assistant may read.",
        "Paste the line you get into your assistant (or connect in one click in claude.ai and ChatGPT).",
        "Ask in plain language; the assistant fetches the figures through our tools.",
    ],
    examples_title: "Questions you can ask",
    examples: [
        "Which invoices are overdue, and who owes them?",
        "How does this quarter's revenue compare with last year?",
        "How much VAT do we owe this quarter?",
        "Why did the result drop in October?",
    ],
    safe_title: "Safe",
    per_month: "per month, excl. VAT",
    on_request: "on request",
    calls_month: "questions to your books per month",
    administrations: "administrations",
    api_keys: "API keys",
    unlimited: "unlimited",
    tools_intro: "This list comes from the same definitions the MCP server gives your assistant; every tool only reads.",
    tool_name: "Tool",
    tool_answers: "What it answers",
    setup_intro: "After connecting you get an API key in the dashboard. Choose your assistant below; the examples use a sample key.",
    setup_terminal: "Run in a terminal:",
    setup_file: "Put this in the file",
    setup_connector: "Add a connector with this URL; you then sign in with Exact Online, no key needed:",
    setup_key_hint: "Replace the sample key with your own key from the dashboard.",
    demo_intro: "Four demo companies with a full year of books. Use a demo key as a bearer key, or open the URL directly in an assistant that takes only a URL. Nothing is stored and nothing is metered.",
    demo_company: "Company",
    demo_key: "Demo key",
    demo_url: "URL without a key",
    status_intro: "The current health of the three parts.",
    status_service: "Part",
    status_state: "State",
    status_version: "Version",
    status_ok: "working",
    status_down: "down",
    not_found: "This page does not exist.",
    back_home: "Back to the home page",
    copy: "Copy",
    date_format: "%-d %B %Y",
    date_time_format: "%-d %b %Y %H:%M",
    short_date_time_format: "%-d %b %H:%M",
    dashboard: "Dashboard",
    switch_language_label: "Portal language",
    unavailable_title: "Temporarily unavailable",
    unavailable_text: "The service is temporarily unavailable. Please try again in a minute.",
    too_many_title: "Please wait",
    too_many_text: "Too many requests came from your address within a minute. Please try again in a minute.",
    unknown_region_title: "Unknown Exact site",
    unknown_region_text: "We do not know this Exact Online site. Please choose one from the list.",
    choose_again: "Choose again",
    sign_in_again: "Sign in again",
    login_failed_title: "Signing in did not work",
    consent_denied: "You did not give permission in Exact Online. Without it we cannot read your books; you can always try again.",
    exact_aborted: "Exact Online stopped the sign-in. Please try again.",
    callback_incomplete: "This page belongs to signing in with Exact Online and is missing details. Please start again.",
    expired_title: "This sign-in link has expired",
    expired_text: "This sign-in attempt has expired, was already used, or was started in another browser. Please start again; it only takes a minute.",
    code_refused_title: "Exact Online refused the sign-in code",
    code_refused_text: "The sign-in code from Exact Online has expired or was already used. Please start again.",
    login_held_title: "This Exact login belongs to another account",
    login_held_text: "You signed in at Exact Online with a login that is already connected to another Praat met je Boekhouding account. Sign out here and sign in with that Exact login to use that account, or choose another login at Exact Online.",
    no_email_title: "No e-mail address",
    no_email_text: "Exact Online gave no e-mail address for this account; we need one to be able to reach you.",
    refused_title: "Request refused",
    refused_text: "This form did not come from this site or has expired. Open the dashboard again and try once more.",
    to_dashboard: "Go to the dashboard",
    account_deleted_title: "Account deleted",
    account_deleted_text: "Your account and everything we kept of yours have been deleted, your Exact tokens first. Your API keys and sessions no longer work.",
    connect_intro: "You sign in with your own Exact Online account; we never get your password. Choose where your administration is.",
    region_label: "Exact Online site",
    connect_after: "After signing in you choose which administrations your assistant may read.",
    welcome_title: "Welcome",
    first_key_name: "First key",
    found_title: "Administrations found",
    active: "active",
    plan_note: "You are on the {0} plan: {1} administrations active at a time, {2} questions per month. You choose the administrations in the dashboard.",
    key_title: "Your API key",
    key_once: "Copy it now: we keep only a hash and cannot show it to you again.",
    setup_title: "Connect your assistant",
    ask_title: "Ask your first question",
    key_created_title: "New API key",
    back_to_dashboard: "Back to the dashboard",
    signed_in_as: "Signed in as {0}",
    notice_revoked: "The key has been revoked; it no longer works.",
    notice_renamed: "The key has a new name.",
    notice_toggled: "The administration has been updated.",
    notice_default: "This is now your default administration.",
    notice_saved: "Your preferences have been saved.",
    plan_title: "Plan and usage",
    usage_capped: "{0} of {1} questions this month; the count starts again on {2}",
    usage_unlimited: "{0} questions this month",
    upgrade_label: "Compare plans",
    per_day_title: "Questions per day this month",
    per_day_desc: "{0} questions in total this month",
    per_tool_title: "Questions per tool this month",
    per_tool_desc: "The most used tools, with their number of questions",
    no_usage: "No questions yet this month.",
    connections_title: "Connections with Exact Online",
    connection_active: "working",
    connection_retrying: "temporary problem, we retry automatically",
    connection_expired: "expired: sign in at Exact Online again",
    last_refreshed: "last renewed {0}",
    reconnect_label: "Reconnect",
    add_connection: "Connect another Exact Online login or site",
    admins_title: "Administrations",
    admins_limit: "Your plan allows {0} active administrations. An administration switched off can be switched on again after an hour.",
    admin_label: "Administration",
    state_label: "State",
    actions_label: "Actions",
    admin_on: "on",
    admin_off: "off",
    admin_unserved: "on, but not in your plan",
    default_label: "default",
    switch_on: "Switch on",
    switch_off: "Switch off",
    make_default: "Make default",
    key_name_label: "Name",
    key_start_label: "Starts with",
    key_used_label: "Last used",
    key_never_used: "not used yet",
    rename_label: "Rename",
    revoke_label: "Revoke",
    new_key_label: "Name of a new key",
    create_label: "Create key",
    activity_title: "Recent questions",
    time_label: "Time (UTC)",
    outcome_label: "Outcome",
    client_label: "Assistant",
    outcome_ok: "succeeded",
    outcome_tool_error: "error in the question",
    outcome_invalid: "invalid input",
    outcome_limit: "limit reached",
    outcome_forbidden: "no access",
    outcome_upstream: "Exact problem",
    outcome_other: "failure",
    prefs_title: "Preferences",
    language_label: "Language of the portal and the e-mails",
    usage_mails_label: "E-mail me at 80 % and 100 % of my monthly limit",
    product_mails_label: "E-mail me about new features",
    save_label: "Save",
    account_title: "Account",
    signout_label: "Sign out",
    delete_label: "Delete account: type {0} to confirm",
    delete_button: "Delete account permanently",
    not_your_administration: "This administration does not belong to your account.",
    administration_limit: "Your plan allows {0} active administrations. Switch one off first, or choose a larger plan.",
    cooling_down: "This administration was just switched off; it can be switched on again from {0}.",
    active_elsewhere: "This administration is already switched on through another Exact login. Switch that one off first to read it through this login.",
    via: "through",
    default_needs_active: "Only an administration that is switched on can be the default.",
    key_name_invalid: "Give the key a name of 1 to 100 characters.",
    key_limit: "Your plan allows {0} active keys. Revoke one first, or choose a larger plan.",
    delete_unconfirmed: "Type {0} to confirm the deletion; nothing has been deleted.",
    consent_title: "Give an assistant access",
    consent_intro: "{0} asks to read your books. After you agree, your browser returns to {1}.",
    consent_admins: "Which administrations may this assistant read?",
    consent_read_only: "Read only: the assistant cannot book or change anything. You can revoke its access whenever you like, on the dashboard.",
    consent_allow: "Allow",
    consent_deny: "Deny",
    consent_none_active: "No administration is switched on yet. Switch one on in the dashboard, then try again from your assistant.",
    consent_choose_one: "Choose at least one administration this assistant may read.",
    oauth_error_title: "This connection cannot go ahead",
    oauth_error_text: "Your assistant sent a request we cannot accept ({0}). Try again from your assistant; if that fails, contact its maker.",
    apps_title: "Connected assistants",
    apps_none: "No assistant connected by signing in (OAuth) yet.",
    app_last_used: "last used {0}",
    app_reads: "reads",
    app_revoke: "Revoke access",
    notice_app_revoked: "That assistant's access has been revoked.",
    billing_unavailable_title: "Payments are unavailable right now",
    billing_unavailable_text: "We could not reach Stripe, our payment provider. Nothing was paid or changed; please try again in a few minutes.",
    upgrade_title: "More questions a month",
    upgrade_text: "With {0} you ask {1} questions a month. You pay securely at Stripe; the new plan starts at once.",
    upgrade_pay: "Continue to payment",
    paid_title: "Thank you for your payment",
    paid_text: "Stripe has received your payment. Your new plan starts as soon as Stripe confirms it to us, usually within seconds.",
    upgrade_to: "Switch to {0}",
    manage_subscription: "Manage subscription",
    plan_changes: "Your plan becomes {0} on {1}.",
    notice_checkout_cancelled: "Payment was cancelled; nothing has changed.",
    downgrade_note: "If you move to {0}: {1}.",
    would_pause: "these administrations are no longer read: {0}",
    would_stop: "these keys stop working (newest first): {0}",
    nothing_changes: "all your administrations and keys keep working",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_a_distinct_path_per_language_and_paths_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for page in Page::ALL {
            for lang in [Lang::Nl, Lang::En] {
                let path = page.path(lang);
                assert!(seen.insert(path), "{path} twice");
                assert_eq!(Page::from_path(path), Some((page, lang)));
                assert_eq!(lang == Lang::En, path.starts_with("/en/"), "{path}");
            }
        }
        assert_eq!(Page::from_path("/en"), Some((Page::Home, Lang::En)));
        assert_eq!(Page::from_path("/nope"), None);
    }

    /// The placeholders `{0}`, `{1}`… a text uses.
    fn placeholders(text: &str) -> Vec<usize> {
        (0..10)
            .filter(|i| text.contains(&format!("{{{i}}}")))
            .collect()
    }

    #[test]
    fn every_text_exists_in_both_languages_filled_in_and_translated() {
        // Names and words both languages share.
        let same = ["tool_name", "dashboard", "account_title"];
        let (nl, en) = (NL.fields(), EN.fields());
        assert_eq!(nl.len(), en.len());
        assert!(nl.len() > 150, "the signed-in texts are here too");
        for ((name, dutch), (other, english)) in nl.into_iter().zip(en) {
            assert_eq!(name, other);
            assert_eq!(dutch.len(), english.len(), "{name}");
            for (d, e) in dutch.iter().zip(&english) {
                assert!(!d.trim().is_empty() && !e.trim().is_empty(), "{name} empty");
                assert_eq!(placeholders(d), placeholders(e), "{name}: placeholders");
                if !same.contains(&name) {
                    assert_ne!(d, e, "{name} is not translated");
                }
            }
        }
    }

    #[test]
    fn fill_puts_each_argument_in_its_place() {
        assert_eq!(fill("{0} of {1}, {0}", &["3", "200"]), "3 of 200, 3");
        assert_eq!(fill("no places", &["x"]), "no places");
    }
}
