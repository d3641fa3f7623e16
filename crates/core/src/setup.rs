//! How each AI assistant is connected to the MCP server: the ready-to-paste
//! set-up every place shows (the portal's first run and set-up pages,
//! `cargo xtask dev`), written once so they cannot disagree.

use serde_json::json;

/// The assistants we give set-up for, in the order pages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assistant {
    ClaudeCode,
    ClaudeDesktop,
    ClaudeAi,
    ChatGpt,
    Cursor,
    VsCode,
}

impl Assistant {
    pub const ALL: [Assistant; 6] = [
        Assistant::ClaudeCode,
        Assistant::ClaudeDesktop,
        Assistant::ClaudeAi,
        Assistant::ChatGpt,
        Assistant::Cursor,
        Assistant::VsCode,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Assistant::ClaudeCode => "Claude Code",
            Assistant::ClaudeDesktop => "Claude Desktop",
            Assistant::ClaudeAi => "claude.ai",
            Assistant::ChatGpt => "ChatGPT",
            Assistant::Cursor => "Cursor",
            Assistant::VsCode => "VS Code",
        }
    }

    /// A stable identifier for anchors and element ids.
    pub const fn slug(self) -> &'static str {
        match self {
            Assistant::ClaudeCode => "claude-code",
            Assistant::ClaudeDesktop => "claude-desktop",
            Assistant::ClaudeAi => "claude-ai",
            Assistant::ChatGpt => "chatgpt",
            Assistant::Cursor => "cursor",
            Assistant::VsCode => "vscode",
        }
    }
}

/// Where the snippet goes (a file, a terminal, a settings screen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub assistant: Assistant,
    /// Where to paste it, in English (pages translate the few kinds).
    pub place: Place,
    /// The text to paste.
    pub text: String,
}

/// The kinds of places a snippet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Terminal,
    /// A JSON configuration file at this path.
    ConfigFile(&'static str),
    /// The assistant's connector screen: paste the URL.
    ConnectorUrl,
}

/// The set-up of every assistant for an MCP URL and an API key. Assistants
/// that take only a URL (claude.ai, ChatGPT connectors) get the URL: with
/// a key they cannot pass, they sign in through OAuth instead.
pub fn snippets(mcp_url: &str, api_key: &str) -> Vec<Snippet> {
    let bearer = format!("Bearer {api_key}");
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    Assistant::ALL
        .into_iter()
        .map(|assistant| {
            let (place, text) = match assistant {
                Assistant::ClaudeCode => (
                    Place::Terminal,
                    format!(
                        "claude mcp add --transport http boekhouding {mcp_url} --header \"Authorization: {bearer}\""
                    ),
                ),
                Assistant::ClaudeDesktop => (
                    Place::ConfigFile("claude_desktop_config.json"),
                    pretty(json!({"mcpServers": {"boekhouding": {
                        "command": "npx",
                        "args": ["mcp-remote", mcp_url, "--header", format!("Authorization: {bearer}")]
                    }}})),
                ),
                Assistant::ClaudeAi | Assistant::ChatGpt => {
                    (Place::ConnectorUrl, mcp_url.to_owned())
                }
                Assistant::Cursor => (
                    Place::ConfigFile("~/.cursor/mcp.json"),
                    pretty(json!({"mcpServers": {"boekhouding": {
                        "url": mcp_url,
                        "headers": {"Authorization": bearer}
                    }}})),
                ),
                Assistant::VsCode => (
                    Place::ConfigFile(".vscode/mcp.json"),
                    pretty(json!({"servers": {"boekhouding": {
                        "type": "http",
                        "url": mcp_url,
                        "headers": {"Authorization": bearer}
                    }}})),
                ),
            };
            Snippet {
                assistant,
                place,
                text,
            }
        })
        .collect()
}

/// A first question that shows what the product does on any books.
pub const fn first_question(dutch: bool) -> &'static str {
    if dutch {
        "Welke facturen staan er nog open, en welke daarvan zijn over de vervaldatum?"
    } else {
        "Which invoices are still open, and which of them are overdue?"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assistant_gets_a_snippet_with_the_url_and_the_key_where_it_can_take_one() {
        let all = snippets("https://api.example/mcp", "pmjb_abc");
        assert_eq!(all.len(), Assistant::ALL.len());
        for s in &all {
            assert!(s.text.contains("https://api.example/mcp"), "{s:?}");
            match s.place {
                Place::ConnectorUrl => assert!(!s.text.contains("pmjb_abc")),
                _ => assert!(s.text.contains("Bearer pmjb_abc"), "{s:?}"),
            }
            if let Place::ConfigFile(_) = s.place {
                assert!(serde_json::from_str::<serde_json::Value>(&s.text).is_ok());
            }
        }
    }
}
