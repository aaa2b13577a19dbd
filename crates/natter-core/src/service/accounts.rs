//! Accounts and device sessions: register, login, refresh with rotation, logout, sessions,
//! password change, and checking access tokens.

use std::net::IpAddr;
use std::time::Duration;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Deps;
use super::password::PasswordHasher;
use super::rules;
use super::throttle::Limit;
use crate::bus::SessionEnd;
use crate::error::{DomainError, DomainResult, ErrorCode, Thing};
use crate::ids::{SessionId, UserId};
use crate::model::{Session, Time, User, UserRole};
use crate::store::{NewUser, RefreshOutcome};

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Password hashes computed at once (0: one per core).
    pub hash_workers: usize,
    /// Failed logins allowed per (account, client address) within the window.
    pub login_max_failures: u32,
    /// Failed logins allowed per account from all addresses together (looser, so that guessing
    /// from elsewhere does not lock the owner out).
    pub login_max_failures_per_account: u32,
    /// Failed logins allowed per client address over all accounts.
    pub login_max_failures_per_address: u32,
    pub login_window: Duration,
    /// Registrations allowed per client address within `register_window` (0: no limit).
    pub register_max_per_address: u32,
    pub register_window: Duration,
}

/// Who is calling: established from a valid access token of a live session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuthContext {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub role: UserRole,
    /// When the access token expires; a WebSocket opened with it closes then.
    pub expires_at: Time,
}

/// What register, login and refresh hand back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub session_id: SessionId,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    role: String,
    iat: i64,
    exp: i64,
}

pub struct AccountService {
    deps: Deps,
    settings: AuthSettings,
    encoding_key: EncodingKey,
    decoding_key: DecodingKey,
    passwords: PasswordHasher,
}

impl AccountService {
    pub fn new(deps: Deps, settings: AuthSettings) -> Self {
        Self {
            encoding_key: EncodingKey::from_secret(&settings.jwt_secret),
            decoding_key: DecodingKey::from_secret(&settings.jwt_secret),
            passwords: PasswordHasher::new(
                settings.argon2_memory_kib,
                settings.argon2_iterations,
                settings.hash_workers,
            ),
            deps,
            settings,
        }
    }

    pub async fn register(
        &self,
        username: &str,
        password: &str,
        nickname: Option<&str>,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        // Every attempt counts, valid or not: the limit is on accounts made from one address.
        let limit = match client {
            Some(client) if self.settings.register_max_per_address > 0 => {
                vec![Limit::new(format!("register:addr:{client}"), self.settings.register_max_per_address)]
            }
            _ => Vec::new(),
        };
        self.check_throttle(&limit, self.settings.register_window).await?;
        self.record_throttle(&limit, self.settings.register_window).await;
        rules::check_username(username)?;
        rules::check_password(password, username)?;
        let nickname = match nickname {
            Some(nickname) => rules::check_nickname(nickname)?,
            None => username.to_owned(),
        };
        let device_name = rules::check_device_name(device_name)?;
        let password_hash = self.passwords.hash(password).await?;
        let now = self.deps.clock.now();
        let user = User {
            id: UserId::generate(),
            username: username.to_owned(),
            nickname,
            bio: String::new(),
            avatar: None,
            role: UserRole::User,
            created_at: now,
            disabled: false,
        };
        let user = self.deps.store.create_user(NewUser { user, password_hash }).await.map_err(|error| match error {
            crate::store::StoreError::Conflict(_) => {
                DomainError::conflict(ErrorCode::UsernameTaken, "that username is taken")
            }
            other => other.into(),
        })?;
        self.start_session(user, device_name).await
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: Option<&str>,
        client: Option<IpAddr>,
    ) -> DomainResult<Tokens> {
        let account = username.to_lowercase();
        let address = client.map_or_else(|| "-".to_owned(), |client| client.to_string());
        let pair_key = format!("login:pair:{account}|{address}");
        let settings = &self.settings;
        let mut keys = vec![
            Limit::new(pair_key.clone(), settings.login_max_failures),
            Limit::new(format!("login:user:{account}"), settings.login_max_failures_per_account),
        ];
        if client.is_some() {
            keys.push(Limit::new(format!("login:addr:{address}"), settings.login_max_failures_per_address));
        }
        self.check_throttle(&keys, settings.login_window).await?;
        let device_name = rules::check_device_name(device_name)?;
        let found = self.deps.store.user_by_username(username).await?;
        let verified = match &found {
            Some((_, hash)) => self.passwords.verify(password, hash).await?,
            None => {
                // Spend the same time as a real check so that timing does not reveal accounts.
                let _ = self.passwords.hash(password).await?;
                false
            }
        };
        match found {
            Some((user, _)) if verified && !user.disabled => {
                if let Err(error) = self.deps.throttle.clear(&pair_key).await {
                    tracing::warn!(%error, "could not clear a login throttle key");
                }
                self.start_session(user, device_name).await
            }
            Some((user, _)) if verified && user.disabled => {
                Err(DomainError::forbidden(ErrorCode::AccountDisabled, "this account is disabled"))
            }
            _ => {
                self.record_throttle(&keys, settings.login_window).await;
                Err(DomainError::unauthenticated(ErrorCode::InvalidCredentials, "wrong username or password"))
            }
        }
    }

    /// Refuses with `RateLimited` past a limit. A throttle store that cannot be reached lets the
    /// attempt through (logged): sign-in stays available, and every attempt still costs an
    /// argon2 hash.
    async fn check_throttle(&self, limits: &[Limit], window: Duration) -> DomainResult<()> {
        match self.deps.throttle.check(limits, window).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(retry_after)) => Err(DomainError::RateLimited { code: ErrorCode::TooManyAttempts, retry_after }),
            Err(error) => {
                tracing::warn!(%error, "login throttle unavailable; attempt not limited");
                Ok(())
            }
        }
    }

    async fn record_throttle(&self, limits: &[Limit], window: Duration) {
        if let Err(error) = self.deps.throttle.record(limits, window).await {
            tracing::warn!(%error, "login throttle unavailable; attempt not counted");
        }
    }

    /// Spends a refresh token and issues a new pair. A token that was already spent revokes its
    /// session: either the client raced itself or the token was stolen.
    pub async fn refresh(&self, refresh_token: &str) -> DomainResult<Tokens> {
        let new_refresh = random_token();
        let now = self.deps.clock.now();
        let outcome =
            self.deps.store.rotate_refresh_token(&token_hash(refresh_token), &token_hash(&new_refresh), now).await?;
        let session = match outcome {
            RefreshOutcome::Rotated(session) => session,
            RefreshOutcome::Reused(session_id) => {
                tracing::warn!(session = %session_id, "refresh token reused; session revoked");
                if let Some(session) = self.deps.store.session(&session_id).await? {
                    self.deps.notifier.end_sessions(session.user_id, SessionEnd::Session(session_id)).await;
                }
                return Err(DomainError::unauthenticated(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; the session has been ended",
                ));
            }
            RefreshOutcome::Invalid => {
                return Err(DomainError::unauthenticated(
                    ErrorCode::InvalidRefreshToken,
                    "unknown or expired refresh token",
                ));
            }
        };
        let user = self.live_user(&session.user_id).await?;
        let access_token = self.issue_access_token(&user, &session.id)?;
        Ok(Tokens {
            user,
            access_token,
            refresh_token: new_refresh,
            expires_in: self.settings.access_token_ttl.as_secs(),
            session_id: session.id,
        })
    }

    /// Validates an access token and that its session is still live.
    pub async fn authenticate(&self, access_token: &str) -> DomainResult<AuthContext> {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<Claims>(access_token, &self.decoding_key, &validation)
            .map_err(|_| DomainError::unauthenticated(ErrorCode::Unauthorized, "invalid or expired access token"))?
            .claims;
        let session_id = SessionId(claims.sid);
        let session = self.deps.store.session(&session_id).await?;
        let now = self.deps.clock.now();
        match session {
            Some(session) if !session.revoked && session.expires_at > now && session.user_id.0 == claims.sub => {
                Ok(AuthContext {
                    user_id: session.user_id,
                    session_id,
                    role: UserRole::parse(&claims.role).unwrap_or(UserRole::User),
                    expires_at: chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now),
                })
            }
            _ => Err(DomainError::unauthenticated(ErrorCode::Unauthorized, "this session has ended")),
        }
    }

    /// Ends the caller's session (or the session of the given refresh token, if it is theirs).
    pub async fn logout(&self, ctx: &AuthContext) -> DomainResult<()> {
        self.deps.store.revoke_session(&ctx.user_id, &ctx.session_id).await?;
        self.deps.notifier.end_sessions(ctx.user_id.clone(), SessionEnd::Session(ctx.session_id.clone())).await;
        Ok(())
    }

    pub async fn sessions(&self, ctx: &AuthContext) -> DomainResult<Vec<Session>> {
        Ok(self.deps.store.sessions_of(&ctx.user_id, self.deps.clock.now()).await?)
    }

    pub async fn revoke_session(&self, ctx: &AuthContext, id: &SessionId) -> DomainResult<()> {
        if self.deps.store.revoke_session(&ctx.user_id, id).await? {
            self.deps.notifier.end_sessions(ctx.user_id.clone(), SessionEnd::Session(id.clone())).await;
            Ok(())
        } else {
            Err(DomainError::not_found(Thing::Session))
        }
    }

    /// Changes the password and ends every other session of the account.
    pub async fn change_password(&self, ctx: &AuthContext, old: &str, new: &str) -> DomainResult<()> {
        let user = self.live_user(&ctx.user_id).await?;
        let hash = self.deps.store.password_hash(&ctx.user_id).await?.ok_or(DomainError::not_found(Thing::User))?;
        if !self.passwords.verify(old, &hash).await? {
            return Err(DomainError::forbidden(ErrorCode::InvalidCredentials, "the current password is wrong"));
        }
        rules::check_password(new, &user.username)?;
        let new_hash = self.passwords.hash(new).await?;
        self.deps.store.set_password_hash(&ctx.user_id, &new_hash).await?;
        self.deps.store.revoke_other_sessions(&ctx.user_id, Some(&ctx.session_id)).await?;
        self.deps.notifier.end_sessions(ctx.user_id.clone(), SessionEnd::AllBut(Some(ctx.session_id.clone()))).await;
        Ok(())
    }

    async fn start_session(&self, user: User, device_name: Option<String>) -> DomainResult<Tokens> {
        let now = self.deps.clock.now();
        let ttl = chrono::Duration::from_std(self.settings.refresh_token_ttl).unwrap_or(chrono::Duration::days(30));
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            device_name,
            created_at: now,
            last_used_at: now,
            expires_at: now + ttl,
            revoked: false,
        };
        let refresh_token = random_token();
        self.deps.store.create_session(&session, &token_hash(&refresh_token)).await?;
        let access_token = self.issue_access_token(&user, &session.id)?;
        Ok(Tokens {
            user,
            access_token,
            refresh_token,
            expires_in: self.settings.access_token_ttl.as_secs(),
            session_id: session.id,
        })
    }

    async fn live_user(&self, id: &UserId) -> DomainResult<User> {
        match self.deps.store.user(id).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(DomainError::unauthenticated(ErrorCode::Unauthorized, "this account is not available")),
        }
    }

    fn issue_access_token(&self, user: &User, session: &SessionId) -> DomainResult<String> {
        let now = self.deps.clock.now().timestamp();
        let claims = Claims {
            sub: user.id.0.clone(),
            sid: session.0.clone(),
            role: user.role.as_str().to_owned(),
            iat: now,
            exp: now + self.settings.access_token_ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding_key)
            .map_err(|error| DomainError::Store(crate::store::StoreError::Backend(format!("jwt: {error}"))))
    }
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Refresh tokens are stored only as hashes: a leaked database does not leak live tokens.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
