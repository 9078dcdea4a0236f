//! A small SMTP server for the tests: enough of RFC 5321 for lettre to
//! deliver to it, with every message kept in memory, and a switch to take it
//! down (refusing connections, cutting open ones) and bring it back on the
//! same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const RESET_SUBJECT: &str = "Reset your password";
pub const VERIFY_SUBJECT: &str = "Verify your email address";

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Received {
    pub recipients: Vec<String>,
    pub data: String,
}

impl Received {
    /// The message with quoted-printable unfolded and base64 parts decoded.
    pub fn text(&self) -> String {
        use base64::Engine;
        let mut text = self.data.replace("=\r\n", "").replace("=3D", "=");
        for part in self.data.split("Content-Transfer-Encoding: base64\r\n\r\n").skip(1) {
            let encoded: String = part.split("\r\n--").next().unwrap_or("").split_whitespace().collect();
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        text
    }

    /// The `Subject` header.
    pub fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|line| line.strip_prefix("Subject: "))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// The reset token of the message's link.
    pub fn reset_token(&self) -> Option<String> {
        self.token("prt_")
    }

    /// The verification token of the message's link.
    pub fn verification_token(&self) -> Option<String> {
        self.token("pev_")
    }

    /// The emailed link, from `http` to the end of its token.
    pub fn link(&self) -> Option<String> {
        let text = self.text();
        let token = ["token=prt_", "token=pev_"].iter().find_map(|t| text.find(t))?;
        let start = text[..token].rfind("http")?;
        let end = token + text[token..].find(|c: char| !(c.is_ascii_alphanumeric() || "_=".contains(c)))?;
        Some(text[start..end].to_owned())
    }

    fn token(&self, prefix: &str) -> Option<String> {
        let text = self.text();
        let start = text.find(&format!("token={prefix}"))? + "token=".len();
        Some(text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
    }
}

pub struct SmtpServer {
    pub address: SocketAddr,
    pub inbox: Arc<Mutex<Vec<Received>>>,
    accept: Option<JoinHandle<()>>,
    cut: watch::Sender<u64>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (cut, _) = watch::channel(0);
        let mut server = Self { address, inbox: Arc::default(), accept: None, cut };
        server.serve(listener);
        server
    }

    /// Refuses new connections and cuts open ones.
    pub fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Listens again on the same address.
    pub async fn restart(&mut self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.address),
            }
        };
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().clone()
    }

    /// The reset emails received.
    pub fn resets(&self) -> Vec<Received> {
        self.received().into_iter().filter(|m| m.subject() == RESET_SUBJECT).collect()
    }

    /// The verification emails received.
    pub fn verifications(&self) -> Vec<Received> {
        self.received().into_iter().filter(|m| m.subject() == VERIFY_SUBJECT).collect()
    }

    /// Waits up to `limit` for a reset email to `to`.
    pub async fn wait_for_reset(&self, to: &str, limit: Duration) -> Option<Received> {
        self.wait_for(to, RESET_SUBJECT, 0, limit).await
    }

    /// Waits up to `limit` for the `nth` (from 0) verification email to `to`.
    pub async fn wait_for_verification(&self, to: &str, nth: usize, limit: Duration) -> Option<Received> {
        self.wait_for(to, VERIFY_SUBJECT, nth, limit).await
    }

    /// Waits up to `limit` for the `nth` (from 0) message to `to` with this subject.
    pub async fn wait_for(&self, to: &str, subject: &str, nth: usize, limit: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(found) = self
                .received()
                .into_iter()
                .filter(|m| m.subject() == subject && m.recipients.iter().any(|r| r.contains(to)))
                .nth(nth)
            {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn serve(&mut self, listener: TcpListener) {
        let inbox = Arc::clone(&self.inbox);
        let cut = self.cut.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (inbox, mut cut) = (Arc::clone(&inbox), cut.subscribe());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = session(stream, inbox) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        }));
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn session(stream: TcpStream, inbox: Arc<Mutex<Vec<Received>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 localhost test SMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        if command.starts_with("EHLO") {
            write.write_all(b"250-localhost\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n").await?;
        } else if command.starts_with("HELO")
            || command.starts_with("MAIL FROM")
            || command.starts_with("RSET")
            || command.starts_with("NOOP")
        {
            if command.starts_with("RSET") {
                recipients.clear();
            }
            write.write_all(b"250 OK\r\n").await?;
        } else if command.starts_with("RCPT TO") {
            recipients.push(line.trim_end()[8..].trim().to_owned());
            write.write_all(b"250 OK\r\n").await?;
        } else if command == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            inbox.lock().unwrap().push(Received { recipients: std::mem::take(&mut recipients), data });
            write.write_all(b"250 OK: queued\r\n").await?;
        } else if command == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 Command not implemented\r\n").await?;
        }
    }
}
