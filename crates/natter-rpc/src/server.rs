//! The chat node's gRPC service: every method of [`Api`] under `/natter.chat.v1.Chat/<Method>`.
//!
//! Unary methods take their arguments as one JSON array (the method's parameters, in order) and
//! answer the JSON of the method's result; a failed call answers a status carrying the domain
//! error (see [`crate::wire`]). `Upload` is client-streaming (a JSON header, then the file's
//! bytes), `ReadFile` server-streaming (the bytes), `Transcribe` takes the audio bytes as is.
//!
//! The service is written by hand over tonic's `server::Grpc` rather than generated, because the
//! generator wants a protobuf (or per-method) type for every message; here one dispatcher serves
//! every method, which keeps the method table in one place ([`dispatch`]).

use std::convert::Infallible;
use std::net::IpAddr;
use std::ops::Range;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use natter_core::api::Api;
use natter_core::blob::BlobError;
use natter_core::error::DomainResult;
use natter_core::ids::{ConversationId, FileId, FriendRequestId, Seq, SessionId, UserId};
use natter_core::model::MemberRole;
use natter_core::service::accounts::AuthContext;
use natter_core::service::conversations::{ConversationChange, NewGroup};
use natter_core::service::files::{Grant, Readable, Upload};
use natter_core::service::messages::{Page, SendInput};
use natter_core::service::search::SearchInput;
use natter_core::service::users::ProfileChange;
use natter_core::store::RequestDirection;
use serde::Serialize;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::{ClientStreamingService, Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};

use crate::codec::BytesCodec;
use crate::wire::{carried, decode, encode, status_of};

/// The gRPC service name.
pub const SERVICE: &str = "natter.chat.v1.Chat";

/// Most sends one `SendMany` call carries.
pub const MAX_SEND_BATCH: usize = 64;

/// The largest message either side accepts (a transcription's audio is the largest).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Serves `api` (this process's services) over gRPC on `listener` until `shutdown` completes.
pub async fn serve(
    api: Api,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // The builder's `tcp_nodelay` applies only to listeners it binds itself: set it here, or
    // each small response may wait for the client's delayed acknowledgement (Nagle).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
        .add_service(ChatServer::new(api))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

#[derive(Clone)]
pub struct ChatServer {
    api: Api,
}

impl ChatServer {
    pub fn new(api: Api) -> Self {
        Self { api }
    }
}

impl NamedService for ChatServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for ChatServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(SERVICE))
            .and_then(|rest| rest.strip_prefix('/'))
            .map(str::to_owned);
        let api = self.api.clone();
        Box::pin(async move {
            let grpc = || {
                Grpc::new(BytesCodec)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES)
            };
            Ok(match method.as_deref() {
                Some("Upload") => grpc().client_streaming(UploadMethod(api), request).await,
                Some("ReadFile") => grpc().server_streaming(ReadFileMethod(api), request).await,
                Some(name) => grpc().unary(UnaryMethod { api, name: name.to_owned() }, request).await,
                None => Status::unimplemented("no such service").into_http(),
            })
        })
    }
}

struct UnaryMethod {
    api: Api,
    name: String,
}

impl UnaryService<Bytes> for UnaryMethod {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let api = self.api.clone();
        let name = std::mem::take(&mut self.name);
        Box::pin(async move { dispatch(&api, &name, request.into_inner()).await.map(Response::new) })
    }
}

fn answer<T: Serialize>(result: DomainResult<T>) -> Result<Bytes, Status> {
    match result {
        Ok(value) => encode(&value),
        Err(error) => Err(status_of(&error)),
    }
}

/// Decodes a method's arguments: `args!(body; name: Type, …)`.
macro_rules! args {
    ($body:expr; $($name:ident : $ty:ty),* $(,)?) => {
        let ($($name,)*): ($($ty,)*) = decode(&$body)?;
    };
}

/// The method table: every unary method, its arguments and the service call it makes.
async fn dispatch(api: &Api, name: &str, body: Bytes) -> Result<Bytes, Status> {
    match name {
        // Accounts.
        "Register" => {
            args!(body; username: String, password: String, nickname: Option<String>, device: Option<String>, client: Option<IpAddr>);
            let accounts = &api.accounts;
            answer(accounts.register(&username, &password, nickname.as_deref(), device.as_deref(), client).await)
        }
        "Login" => {
            args!(body; username: String, password: String, device: Option<String>, client: Option<IpAddr>);
            answer(api.accounts.login(&username, &password, device.as_deref(), client).await)
        }
        "Refresh" => {
            args!(body; token: String);
            answer(api.accounts.refresh(&token).await)
        }
        "Authenticate" => {
            args!(body; token: String);
            answer(api.accounts.authenticate(&token).await)
        }
        "Logout" => {
            args!(body; ctx: AuthContext);
            answer(api.accounts.logout(&ctx).await)
        }
        "Sessions" => {
            args!(body; ctx: AuthContext);
            answer(api.accounts.sessions(&ctx).await)
        }
        "RevokeSession" => {
            args!(body; ctx: AuthContext, id: SessionId);
            answer(api.accounts.revoke_session(&ctx, &id).await)
        }
        "ChangePassword" => {
            args!(body; ctx: AuthContext, old: String, new: String);
            answer(api.accounts.change_password(&ctx, &old, &new).await)
        }
        // Users.
        "GetUser" => {
            args!(body; id: UserId);
            answer(api.users.get(&id).await)
        }
        "UpdateProfile" => {
            args!(body; id: UserId, change: ProfileChange);
            answer(api.users.update_profile(&id, change).await)
        }
        "SearchUsers" => {
            args!(body; query: String, limit: Option<u32>);
            answer(api.users.search(&query, limit).await)
        }
        // Friends.
        "SendFriendRequest" => {
            args!(body; me: UserId, to: UserId, message: Option<String>);
            answer(api.friends.send_request(&me, &to, message.as_deref()).await)
        }
        "FriendRequests" => {
            args!(body; me: UserId, direction: RequestDirection);
            answer(api.friends.requests(&me, direction).await)
        }
        "AcceptFriendRequest" => {
            args!(body; me: UserId, id: FriendRequestId);
            answer(api.friends.accept(&me, &id).await)
        }
        "RejectFriendRequest" => {
            args!(body; me: UserId, id: FriendRequestId);
            answer(api.friends.reject(&me, &id).await)
        }
        "CancelFriendRequest" => {
            args!(body; me: UserId, id: FriendRequestId);
            answer(api.friends.cancel(&me, &id).await)
        }
        "Friends" => {
            args!(body; me: UserId);
            answer(api.friends.friends(&me).await)
        }
        "RemoveFriend" => {
            args!(body; me: UserId, other: UserId);
            answer(api.friends.remove(&me, &other).await)
        }
        "Block" => {
            args!(body; me: UserId, other: UserId);
            answer(api.friends.block(&me, &other).await)
        }
        "Unblock" => {
            args!(body; me: UserId, other: UserId);
            answer(api.friends.unblock(&me, &other).await)
        }
        "Blocked" => {
            args!(body; me: UserId);
            answer(api.friends.blocked(&me).await)
        }
        // Conversations.
        "ListConversations" => {
            args!(body; me: UserId);
            answer(api.conversations.list(&me).await)
        }
        "GetConversation" => {
            args!(body; me: UserId, id: ConversationId);
            answer(api.conversations.get(&me, &id).await)
        }
        "CreateGroup" => {
            args!(body; me: UserId, group: NewGroup);
            answer(api.conversations.create_group(&me, group).await)
        }
        "UpdateConversation" => {
            args!(body; me: UserId, id: ConversationId, change: ConversationChange);
            answer(api.conversations.update(&me, &id, change).await)
        }
        "DissolveConversation" => {
            args!(body; me: UserId, id: ConversationId);
            answer(api.conversations.dissolve(&me, &id).await)
        }
        "Members" => {
            args!(body; me: UserId, id: ConversationId);
            answer(api.conversations.members(&me, &id).await)
        }
        "AddMembers" => {
            args!(body; me: UserId, id: ConversationId, users: Vec<UserId>);
            answer(api.conversations.add_members(&me, &id, users).await)
        }
        "SetRole" => {
            args!(body; me: UserId, id: ConversationId, target: UserId, role: MemberRole);
            answer(api.conversations.set_role(&me, &id, &target, role).await)
        }
        "RemoveMember" => {
            args!(body; me: UserId, id: ConversationId, target: UserId);
            answer(api.conversations.remove_member(&me, &id, &target).await)
        }
        // Messages.
        "Send" => {
            args!(body; me: UserId, id: ConversationId, input: SendInput);
            answer(api.messages.send(&me, &id, input).await)
        }
        // Sends from many sockets of one gateway (see `client::SendQueue`), run at once; each
        // answers on its own, an entry or its error.
        "SendMany" => {
            args!(body; sends: Vec<(UserId, ConversationId, SendInput)>);
            if sends.len() > MAX_SEND_BATCH {
                return Err(Status::invalid_argument(format!("at most {MAX_SEND_BATCH} sends in a batch")));
            }
            let answers = futures_util::future::join_all(sends.into_iter().map(|(me, id, input)| async move {
                api.messages.send(&me, &id, input).await.map_err(|error| carried(&error))
            }))
            .await;
            encode(&answers)
        }
        "History" => {
            args!(body; me: UserId, id: ConversationId, page: Page, limit: Option<u32>);
            answer(api.messages.history(&me, &id, page, limit).await)
        }
        "MarkRead" => {
            args!(body; me: UserId, id: ConversationId, seq: Seq);
            answer(api.messages.mark_read(&me, &id, seq).await)
        }
        "Edit" => {
            args!(body; me: UserId, id: ConversationId, seq: Seq, text: String);
            answer(api.messages.edit(&me, &id, seq, &text).await)
        }
        "Recall" => {
            args!(body; me: UserId, id: ConversationId, seq: Seq);
            answer(api.messages.recall(&me, &id, seq).await)
        }
        "React" => {
            args!(body; me: UserId, id: ConversationId, seq: Seq, emoji: String, add: bool);
            answer(api.messages.react(&me, &id, seq, &emoji, add).await)
        }
        "Typing" => {
            args!(body; me: UserId, id: ConversationId);
            answer(api.messages.typing(&me, &id).await)
        }
        // Files (the bytes go through `Upload` and `ReadFile`).
        "Readable" => {
            args!(body; me: UserId, id: FileId);
            answer(api.files.readable(&me, &id).await.map(|file| (file.record().clone(), file.grant().clone())))
        }
        "Thumbnail" => {
            args!(body; me: UserId, id: FileId);
            answer(api.files.thumbnail(&me, &id).await.map(|file| (file.record().clone(), file.grant().clone())))
        }
        // Search, speech, health.
        "SearchMessages" => {
            args!(body; me: UserId, input: SearchInput);
            answer(api.search.messages(&me, input).await)
        }
        "CheckSpeech" => answer(api.speech.check_available().await),
        // The audio is the message itself, not JSON.
        "Transcribe" => answer(api.speech.transcribe(body.to_vec()).await),
        "TranscribeFile" => {
            args!(body; me: UserId, id: FileId);
            answer(api.speech.transcribe_file(&me, &id).await)
        }
        "Health" => answer(api.health.health().await),
        _ => Err(Status::unimplemented(format!("no method {name}"))),
    }
}

/// `Upload`: the first message is `[me, name, claimed_mime]`, every later one a chunk of the file.
struct UploadMethod(Api);

impl ClientStreamingService<Bytes> for UploadMethod {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Streaming<Bytes>>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let mut stream = request.into_inner();
            let header = stream.message().await?.ok_or_else(|| Status::invalid_argument("an upload needs a header"))?;
            let (me, name, claimed_mime): (UserId, String, Option<String>) = decode(&header)?;
            // A client that goes away mid-upload ends the stream with an error: the upload fails
            // and nothing is stored.
            let data = stream.map_err(|status| BlobError::Aborted(status.message().to_owned())).boxed();
            answer(api.files.upload(&me, Upload { name, claimed_mime, data }).await).map(Response::new)
        })
    }
}

/// `ReadFile`: `[grant, range]` in, the bytes out. The grant is checked again here.
struct ReadFileMethod(Api);

impl ServerStreamingService<Bytes> for ReadFileMethod {
    type Response = Bytes;
    type ResponseStream = futures_util::stream::BoxStream<'static, Result<Bytes, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let (grant, range): (Grant, Option<Range<u64>>) = decode(request.get_ref())?;
            let file: Readable = if grant.thumbnail {
                api.files.thumbnail(&grant.reader, &grant.asked).await
            } else {
                api.files.readable(&grant.reader, &grant.asked).await
            }
            .map_err(|error| status_of(&error))?;
            let bytes = api.files.stream(&file, range).await.map_err(|error| status_of(&error))?;
            let bytes = bytes.map_err(|error| Status::internal(format!("reading the file failed: {error}"))).boxed();
            Ok(Response::new(bytes))
        })
    }
}
