//! Accounts and device sessions: register, login, refresh with rotation, logout, sessions,
//! password change, and checking access tokens.

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Deps;
use super::rules;
use super::throttle::LoginThrottle;
use crate::error::{DomainError, DomainResult};
use crate::ids::{SessionId, UserId};
use crate::model::{Session, User, UserRole};
use crate::store::{NewUser, RefreshOutcome};

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub login_max_failures: u32,
    pub login_window: Duration,
}

/// Who is calling: established from a valid access token of a live session.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthContext {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub role: UserRole,
}

/// What register, login and refresh hand back.
#[derive(Debug, Clone)]
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
    throttle: LoginThrottle,
}

impl AccountService {
    pub fn new(deps: Deps, settings: AuthSettings) -> Self {
        let throttle = LoginThrottle::new(settings.login_max_failures, settings.login_window);
        Self {
            encoding_key: EncodingKey::from_secret(&settings.jwt_secret),
            decoding_key: DecodingKey::from_secret(&settings.jwt_secret),
            deps,
            settings,
            throttle,
        }
    }

    pub async fn register(
        &self,
        username: &str,
        password: &str,
        nickname: Option<&str>,
        device_name: Option<&str>,
    ) -> DomainResult<Tokens> {
        rules::check_username(username)?;
        rules::check_password(password, username)?;
        let nickname = match nickname {
            Some(nickname) => rules::check_nickname(nickname)?,
            None => username.to_owned(),
        };
        let device_name = rules::check_device_name(device_name)?;
        let password_hash = self.hash_password(password).await?;
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
            crate::store::StoreError::Conflict(_) => DomainError::conflict("username_taken", "that username is taken"),
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
        let account_key = format!("user:{}", username.to_lowercase());
        let mut keys = vec![account_key.clone()];
        if let Some(client) = client {
            keys.push(format!("addr:{client}"));
        }
        self.throttle.check(&keys).map_err(|retry_after| DomainError::RateLimited { retry_after })?;
        let device_name = rules::check_device_name(device_name)?;
        let found = self.deps.store.user_by_username(username).await?;
        let verified = match &found {
            Some((_, hash)) => self.verify_password(password, hash).await?,
            None => {
                // Spend the same time as a real check so that timing does not reveal accounts.
                let _ = self.hash_password(password).await;
                false
            }
        };
        match found {
            Some((user, _)) if verified && !user.disabled => {
                self.throttle.record_success(&account_key);
                self.start_session(user, device_name).await
            }
            Some((user, _)) if verified && user.disabled => {
                Err(DomainError::forbidden("account_disabled", "this account is disabled"))
            }
            _ => {
                self.throttle.record_failure(&keys);
                Err(DomainError::unauthenticated("invalid_credentials", "wrong username or password"))
            }
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
                return Err(DomainError::unauthenticated(
                    "refresh_token_reused",
                    "this refresh token was already used; the session has been ended",
                ));
            }
            RefreshOutcome::Invalid => {
                return Err(DomainError::unauthenticated("invalid_refresh_token", "unknown or expired refresh token"));
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
            .map_err(|_| DomainError::unauthenticated("unauthorized", "invalid or expired access token"))?
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
                })
            }
            _ => Err(DomainError::unauthenticated("unauthorized", "this session has ended")),
        }
    }

    /// Ends the caller's session (or the session of the given refresh token, if it is theirs).
    pub async fn logout(&self, ctx: &AuthContext) -> DomainResult<()> {
        self.deps.store.revoke_session(&ctx.user_id, &ctx.session_id).await?;
        Ok(())
    }

    pub async fn sessions(&self, ctx: &AuthContext) -> DomainResult<Vec<Session>> {
        Ok(self.deps.store.sessions_of(&ctx.user_id, self.deps.clock.now()).await?)
    }

    pub async fn revoke_session(&self, ctx: &AuthContext, id: &SessionId) -> DomainResult<()> {
        if self.deps.store.revoke_session(&ctx.user_id, id).await? {
            Ok(())
        } else {
            Err(DomainError::not_found("session"))
        }
    }

    /// Changes the password and ends every other session of the account.
    pub async fn change_password(&self, ctx: &AuthContext, old: &str, new: &str) -> DomainResult<()> {
        let user = self.live_user(&ctx.user_id).await?;
        let hash = self.deps.store.password_hash(&ctx.user_id).await?.ok_or(DomainError::not_found("user"))?;
        if !self.verify_password(old, &hash).await? {
            return Err(DomainError::forbidden("invalid_credentials", "the current password is wrong"));
        }
        rules::check_password(new, &user.username)?;
        let new_hash = self.hash_password(new).await?;
        self.deps.store.set_password_hash(&ctx.user_id, &new_hash).await?;
        self.deps.store.revoke_other_sessions(&ctx.user_id, Some(&ctx.session_id)).await?;
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
            _ => Err(DomainError::unauthenticated("unauthorized", "this account is not available")),
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

    fn argon2(&self) -> Argon2<'static> {
        let params =
            Params::new(self.settings.argon2_memory_kib, self.settings.argon2_iterations, 1, None).unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// argon2 is deliberately slow: run it off the async workers.
    async fn hash_password(&self, password: &str) -> DomainResult<String> {
        let argon2 = self.argon2();
        let password = password.to_owned();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        tokio::task::spawn_blocking(move || {
            argon2.hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
        })
        .await
        .map_err(|error| internal(format!("hashing task: {error}")))?
        .map_err(|error| internal(format!("argon2: {error}")))
    }

    async fn verify_password(&self, password: &str, hash: &str) -> DomainResult<bool> {
        let argon2 = self.argon2();
        let password = password.to_owned();
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
            Ok(parsed) => argon2.verify_password(password.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        })
        .await
        .map_err(|error| internal(format!("verify task: {error}")))
    }
}

fn internal(message: String) -> DomainError {
    DomainError::Store(crate::store::StoreError::Backend(message))
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Refresh tokens are stored only as hashes: a leaked database does not leak live tokens.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
