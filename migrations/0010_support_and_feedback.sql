-- Customer support conversations and product feedback from the portal.

CREATE TABLE support_conversations (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject      TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
    status       TEXT NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'waiting_user', 'waiting_support', 'resolved', 'closed', 'spam')),
    category     TEXT NOT NULL DEFAULT 'general'
                 CHECK (category IN ('connection', 'billing', 'bug', 'feature', 'account', 'general')),
    priority     TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    resolved_at  INTEGER
);

CREATE INDEX idx_support_conversations_user ON support_conversations (user_id, updated_at);
CREATE INDEX idx_support_conversations_status ON support_conversations (status, updated_at);

CREATE TABLE support_messages (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES support_conversations (id) ON DELETE CASCADE,
    sender_type      TEXT NOT NULL CHECK (sender_type IN ('user', 'admin', 'system')),
    sender_id        TEXT REFERENCES users (id) ON DELETE SET NULL,
    body             TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 20000),
    is_internal      INTEGER NOT NULL DEFAULT 0 CHECK (is_internal IN (0, 1)),
    created_at       INTEGER NOT NULL,
    read_at          INTEGER
);

CREATE INDEX idx_support_messages_conversation ON support_messages (conversation_id, created_at);

CREATE TABLE feedback (
    id             TEXT PRIMARY KEY,
    user_id        TEXT REFERENCES users (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('nps', 'widget', 'testimonial', 'churn')),
    nps_score      INTEGER CHECK (nps_score IS NULL OR nps_score BETWEEN 0 AND 10),
    body           TEXT CHECK (body IS NULL OR length(body) <= 5000),
    may_publish    INTEGER NOT NULL DEFAULT 0 CHECK (may_publish IN (0, 1)),
    status         TEXT NOT NULL DEFAULT 'received'
                   CHECK (status IN ('received', 'reviewed', 'published', 'archived', 'spam')),
    created_at     INTEGER NOT NULL
);

CREATE INDEX idx_feedback_created ON feedback (created_at);
