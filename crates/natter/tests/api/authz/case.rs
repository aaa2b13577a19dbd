//! The shape of the expectation table: one row per operation of the OpenAPI document, each with
//! the cases that matter for it beyond the bad tokens every authenticated row gets.

use reqwest::Method;
use serde_json::Value;

use super::world::{Ref, Who, World};

/// A request body, built per request (so `client_msg_id`s and usernames are fresh).
#[derive(Clone, Copy)]
pub(super) enum Body {
    Empty,
    Json(fn(&World) -> Value),
    /// `multipart/form-data` with one small PNG in the part `file`.
    Upload,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Http,
    WebSocket,
}

/// Why a case is in the table, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kind {
    /// A missing, malformed, expired, logged-out or refresh token on an authenticated call; a
    /// spent, revoked or wrong refresh token, or a wrong password, on a public one.
    BadToken,
    /// A public call, whatever token comes with it.
    Public,
    /// A caller who may do it (the row's proof that its parameters and body are valid).
    Allowed,
    /// A member whose role does not allow it, or a message that is not theirs.
    WithoutRole,
    /// Another user's request, session, friendship or block.
    OtherUser,
    /// Never a member of the conversation (or of the one the file was sent to).
    NonMember,
    /// A member who was removed, or a member of a group since dissolved.
    RemovedMember,
    /// A member asking about an entry (or its file) from before they joined.
    LateJoiner,
    /// A member asking for the file of a recalled message.
    Recalled,
    /// One of a pair blocked the other.
    Blocked,
    /// A refusal by a rule other than the caller's rights (`not_a_group`), or, for speech, the
    /// answer when no engine is configured.
    Rule,
}

impl Kind {
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::BadToken => "bad token (5 kinds) → 401 unauthorized; bad refresh token or password → 401",
            Kind::Public => "public call, any token → its success status",
            Kind::Allowed => "allowed caller → success (and sees what the others must not)",
            Kind::WithoutRole => "member without the role → 403 forbidden",
            Kind::OtherUser => "another user's thing → same answer as an unknown id",
            Kind::NonMember => "non-member → the unknown-id answer; nothing listed or found",
            Kind::RemovedMember => {
                "removed member (or of a dissolved group) → the unknown-id answer; nothing listed or found"
            }
            Kind::LateJoiner => {
                "member, about entries from before they joined → the unknown-id answer; not in history or search"
            }
            Kind::Recalled => "member, about a recalled message's file → the unknown-id answer",
            Kind::Blocked => "blocked pair → 403 blocked (or allowed where the contract says)",
            Kind::Rule => "other refusals (not_a_group, speech_unavailable)",
        }
    }
}

pub(super) enum Expect {
    /// This success status.
    Status(u16),
    Error(u16, &'static str),
    /// Exactly the answer (status and body) the same call gets when the row's subject is an
    /// unknown id; that answer being `status` with `code`.
    LikeUnknown(u16, &'static str),
}

pub(super) struct Case {
    pub(super) who: Who,
    pub(super) kind: Kind,
    /// Parameters that differ from the row's.
    pub(super) params: Vec<(&'static str, Ref)>,
    pub(super) body: Option<Body>,
    /// What must look unknown, when not the row's subject.
    pub(super) subject: Option<Subject>,
    pub(super) expect: Expect,
    /// How the summary names the case, when not by its caller.
    note: Option<&'static str>,
}

impl Case {
    fn new(who: Who, kind: Kind, expect: Expect) -> Case {
        Case { who, kind, params: Vec::new(), body: None, subject: None, expect, note: None }
    }

    pub(super) fn at(mut self, name: &'static str, value: Ref) -> Case {
        self.params.push((name, value));
        self
    }

    pub(super) fn body(mut self, body: fn(&World) -> Value) -> Case {
        self.body = Some(Body::Json(body));
        self
    }

    pub(super) fn subject(mut self, name: &'static str) -> Case {
        self.subject = Some(Subject::Param(name));
        self
    }

    pub(super) fn subject_in_body(mut self, field: &'static str) -> Case {
        self.subject = Some(Subject::BodyField(field));
        self
    }

    /// The conversation a WebSocket frame case names.
    pub(super) fn params_for_frame(&self) -> Ref {
        match self.params.as_slice() {
            [("conversation_id", conversation)] => *conversation,
            other => panic!("a frame case names its conversation_id and nothing else: {other:?}"),
        }
    }

    pub(super) fn note(mut self, note: &'static str) -> Case {
        self.note = Some(note);
        self
    }

    pub(super) fn describe(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
        let who = self.note.map_or_else(|| self.who.to_string(), str::to_owned);
        if params.is_empty() { who } else { format!("{who} ({})", params.join(", ")) }
    }
}

pub(super) fn allowed(who: Who, status: u16) -> Case {
    Case::new(who, Kind::Allowed, Expect::Status(status))
}

pub(super) fn without_role(who: Who) -> Case {
    Case::new(who, Kind::WithoutRole, Expect::Error(403, "forbidden"))
}

pub(super) fn other_user(who: Who) -> Case {
    Case::new(who, Kind::OtherUser, Expect::LikeUnknown(404, "not_found"))
}

pub(super) fn non_member(who: Who) -> Case {
    Case::new(who, Kind::NonMember, Expect::LikeUnknown(404, "not_found"))
}

pub(super) fn removed(who: Who) -> Case {
    Case::new(who, Kind::RemovedMember, Expect::LikeUnknown(404, "not_found"))
}

pub(super) fn late_joiner(who: Who) -> Case {
    Case::new(who, Kind::LateJoiner, Expect::LikeUnknown(404, "not_found"))
}

pub(super) fn recalled(who: Who) -> Case {
    Case::new(who, Kind::Recalled, Expect::LikeUnknown(404, "not_found"))
}

/// A call of a public row refused for its credential (sent without a token; `who` only names it).
pub(super) fn bad_credential(status: u16, code: &'static str) -> Case {
    Case::new(Who::Max, Kind::BadToken, Expect::Error(status, code))
}

pub(super) fn blocked(who: Who) -> Case {
    Case::new(who, Kind::Blocked, Expect::Error(403, "blocked"))
}

/// A blocked pair's call refused with another answer than `blocked`.
pub(super) fn blocked_with(who: Who, status: u16, code: &'static str) -> Case {
    Case::new(who, Kind::Blocked, Expect::Error(status, code))
}

/// A blocked pair's call the contract still allows.
pub(super) fn blocked_but_allowed(who: Who, status: u16) -> Case {
    Case::new(who, Kind::Blocked, Expect::Status(status))
}

/// An allowed caller whose call fails for a reason other than their rights (the matrix's server
/// has no speech engine).
pub(super) fn allowed_but(who: Who, status: u16, code: &'static str) -> Case {
    Case::new(who, Kind::Allowed, Expect::Error(status, code))
}

pub(super) fn refused(who: Who, status: u16, code: &'static str) -> Case {
    Case::new(who, Kind::Rule, Expect::Error(status, code))
}

/// A case whose answer must equal the unknown-id answer, which is `status code`.
pub(super) fn like_unknown(who: Who, kind: Kind, status: u16, code: &'static str) -> Case {
    Case::new(who, kind, Expect::LikeUnknown(status, code))
}

/// Where a row names the thing whose existence a refusal must not reveal.
#[derive(Clone, Copy)]
pub(super) enum Subject {
    /// A path or query parameter.
    Param(&'static str),
    /// A field of the JSON body.
    BodyField(&'static str),
}

pub(super) struct Row {
    pub(super) method: Method,
    /// As the OpenAPI document names it.
    pub(super) path: &'static str,
    /// `Some(status)`: no token needed; every credential (bad ones too) gets `status`. The cases
    /// of a public row are sent without a token.
    pub(super) public: Option<u16>,
    pub(super) transport: Transport,
    /// Path parameters by their `{name}`; the others go to the query string.
    pub(super) params: Vec<(&'static str, Ref)>,
    pub(super) body: Body,
    /// What a refused caller must not learn exists.
    pub(super) subject: Option<Subject>,
    /// Run in order: refusals first, then what changes state.
    pub(super) cases: Vec<Case>,
}

impl Row {
    pub(super) fn new(method: Method, path: &'static str) -> Row {
        Row {
            method,
            path,
            public: None,
            transport: Transport::Http,
            params: Vec::new(),
            body: Body::Empty,
            subject: None,
            cases: Vec::new(),
        }
    }

    pub(super) fn public(mut self, status: u16) -> Row {
        self.public = Some(status);
        self
    }

    pub(super) fn websocket(mut self) -> Row {
        self.transport = Transport::WebSocket;
        self
    }

    pub(super) fn at(mut self, name: &'static str, value: Ref) -> Row {
        self.params.push((name, value));
        self
    }

    pub(super) fn body(mut self, body: fn(&World) -> Value) -> Row {
        self.body = Body::Json(body);
        self
    }

    pub(super) fn upload(mut self) -> Row {
        self.body = Body::Upload;
        self
    }

    pub(super) fn subject(mut self, name: &'static str) -> Row {
        self.subject = Some(Subject::Param(name));
        self
    }

    pub(super) fn subject_in_body(mut self, field: &'static str) -> Row {
        self.subject = Some(Subject::BodyField(field));
        self
    }

    pub(super) fn cases(mut self, cases: Vec<Case>) -> Row {
        self.cases = cases;
        self
    }

    pub(super) fn key(&self) -> (String, String) {
        (self.method.as_str().to_owned(), self.path.to_owned())
    }

    /// The row's parameters with `case`'s overrides applied.
    pub(super) fn params_for(&self, case: Option<&Case>) -> Vec<(&'static str, Ref)> {
        let mut params = self.params.clone();
        for (name, value) in case.map(|c| c.params.as_slice()).unwrap_or_default() {
            match params.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = *value,
                None => params.push((name, *value)),
            }
        }
        params
    }
}
