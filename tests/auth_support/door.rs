//! A way into a hub for the authentication tests: its own listener, or an axum route.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use backtest_stream::server::{Hub, ServerConfig};
use backtest_stream::wire::{Envelope, Event, Topic};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::server_support::{Client, TestServer};

/// A way into a hub: its own listener, or an axum route.
pub enum Door {
    Standalone(TestServer),
    Embedded { hub: Hub, addr: SocketAddr },
}

async fn live(State(hub): State<Hub>, request: Request) -> impl IntoResponse {
    hub.upgrade(request)
}

impl Door {
    pub async fn standalone(config: ServerConfig) -> Self {
        Door::Standalone(TestServer::start(config).await)
    }

    pub async fn embedded(config: ServerConfig) -> Self {
        let hub = Hub::new(config).expect("hub");
        let app = Router::new()
            .route("/ws", get(live))
            .with_state(hub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Door::Embedded { hub, addr }
    }

    pub fn hub(&self) -> &Hub {
        match self {
            Door::Standalone(server) => &server.hub,
            Door::Embedded { hub, .. } => hub,
        }
    }

    pub fn url(&self) -> String {
        match self {
            Door::Standalone(server) => server.url(),
            Door::Embedded { addr, .. } => format!("ws://{addr}/ws"),
        }
    }

    pub fn publish(&self, topic: Topic, event: Event) {
        self.hub()
            .publish(&Envelope::new(topic, event))
            .expect("publish");
    }

    /// Connects with `token` in the `Authorization` header (or none): the client, or
    /// the HTTP status and `WWW-Authenticate` of the refusal.
    pub async fn connect(&self, token: Option<&str>) -> Result<Client, (u16, Option<String>)> {
        let mut request = self.url().into_client_request().expect("request");
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
            request.headers_mut().insert("authorization", value);
        }
        refusal(tokio_tungstenite::connect_async(request).await)
    }

    pub async fn connect_query(&self, token: &str) -> Result<Client, (u16, Option<String>)> {
        let url = format!("{}?token={token}", self.url());
        refusal(tokio_tungstenite::connect_async(url).await)
    }

    pub async fn client(&self, token: &str) -> Client {
        self.connect(Some(token)).await.expect("token accepted")
    }
}

type Connected = Result<
    (
        Client,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    WsError,
>;

fn refusal(result: Connected) -> Result<Client, (u16, Option<String>)> {
    match result {
        Ok((client, _)) => Ok(client),
        Err(WsError::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Err((response.status().as_u16(), challenge))
        }
        Err(other) => panic!("unexpected failure: {other}"),
    }
}
