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

/// The texts the layout and the public pages use.
#[derive(Debug)]
pub struct Texts {
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub other_language: &'static str,
    pub sign_in: &'static str,
    pub footer: &'static str,
    pub tagline: &'static str,
    pub intro: &'static str,
    pub start: &'static str,
    pub try_demo: &'static str,
    pub how_title: &'static str,
    pub how_steps: [&'static str; 3],
    pub examples_title: &'static str,
    pub examples: [&'static str; 4],
    pub safe_title: &'static str,
    pub per_month: &'static str,
    pub on_request: &'static str,
    pub calls_month: &'static str,
    pub administrations: &'static str,
    pub api_keys: &'static str,
    pub unlimited: &'static str,
    pub tools_intro: &'static str,
    pub tool_name: &'static str,
    pub tool_answers: &'static str,
    pub setup_intro: &'static str,
    pub setup_terminal: &'static str,
    pub setup_file: &'static str,
    pub setup_connector: &'static str,
    pub setup_key_hint: &'static str,
    pub demo_intro: &'static str,
    pub demo_company: &'static str,
    pub demo_key: &'static str,
    pub demo_url: &'static str,
    pub status_intro: &'static str,
    pub status_service: &'static str,
    pub status_state: &'static str,
    pub status_version: &'static str,
    pub status_ok: &'static str,
    pub status_down: &'static str,
    pub not_found: &'static str,
    pub back_home: &'static str,
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
}
